package lazaret

import (
	"fmt"
	"strings"
	"time"
)

// VerdictKind says why a scanner quarantined a message.
type VerdictKind int

// Verdict kinds, in the order MailScanner-style UIs rank them.
const (
	VerdictOther    VerdictKind = iota // anything else a scanner flagged
	VerdictSpam                        // spam
	VerdictHighSpam                    // high-scoring spam
	VerdictVirus                       // malware
	VerdictPolicy                      // policy violation (banned attachment, ...)
)

var verdictNames = [...]string{"other", "spam", "highspam", "virus", "policy"}

func (k VerdictKind) String() string {
	if k < 0 || int(k) >= len(verdictNames) {
		return fmt.Sprintf("VerdictKind(%d)", int(k))
	}
	return verdictNames[k]
}

// ParseVerdictKind parses the names String returns; "high-spam" and
// "high_spam" are accepted for highspam.
func ParseVerdictKind(s string) (VerdictKind, error) {
	norm := strings.NewReplacer("-", "", "_", "", " ", "").Replace(strings.ToLower(s))
	for i, n := range verdictNames {
		if n == norm {
			return VerdictKind(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown verdict %q (want spam, highspam, virus, policy or other)", ErrInvalidArgument, s)
}

// Verdict is what the scanner said about a message.
type Verdict struct {
	Kind    VerdictKind `json:"kind"`
	Score   float64     `json:"score,omitempty"`
	Scanner string      `json:"scanner,omitempty"` // e.g. "spamassassin", "rspamd", "clamav"
	Report  string      `json:"report,omitempty"`  // the scanner's report text
}

// State is where a message is in its life. The merge rules for replicas
// (see Merge) only ever move a message forward: quarantined → released →
// deleted, and deleted is final.
type State int

// Message states.
const (
	StateQuarantined State = iota
	StateReleased
	StateDeleted
)

var stateNames = [...]string{"quarantined", "released", "deleted"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// ParseState parses the names String returns.
func ParseState(s string) (State, error) {
	for i, n := range stateNames {
		if strings.EqualFold(n, s) {
			return State(i), nil
		}
	}
	return 0, fmt.Errorf("%w: unknown state %q (want quarantined, released or deleted)", ErrInvalidArgument, s)
}

// LearnKind is what a message was taught to the spam filter as.
type LearnKind int

// Learn kinds.
const (
	LearnNone LearnKind = iota
	LearnSpam
	LearnHam
)

var learnNames = [...]string{"", "spam", "ham"}

func (l LearnKind) String() string {
	if l < 0 || int(l) >= len(learnNames) {
		return fmt.Sprintf("LearnKind(%d)", int(l))
	}
	return learnNames[l]
}

// Event is one entry in a message's history: who did what, when.
type Event struct {
	Time   time.Time `json:"time"`
	Actor  string    `json:"actor,omitempty"`  // user or component, e.g. "cli:root", "retention"
	Action string    `json:"action"`           // "quarantine", "learn", "release-request", "release", "delete", ...
	Detail string    `json:"detail,omitempty"` // free text: learner output, recipients, error
	Node   int       `json:"node"`             // node number that recorded the event
	// Request is the idempotency key of the request that caused the event
	// (release requests carry one; see WithRequestID).
	Request string `json:"request,omitempty"`
}

// Metadata is everything Lazaret knows about a quarantined message except its
// body. It is replicated to every node; the store is its source of truth and
// any SQL index is derived from it.
type Metadata struct {
	ID       ID        `json:"id"`
	Node     int       `json:"node"`     // number of the node that took the message in
	Received time.Time `json:"received"` // when that node took it in

	// Envelope.
	Sender     string   `json:"sender"` // envelope MAIL FROM; "" for the null sender
	Recipients []string `json:"recipients"`
	ClientIP   string   `json:"client_ip,omitempty"`
	Helo       string   `json:"helo,omitempty"`

	// Parsed from the message header unless the writer supplied them.
	From      string    `json:"from,omitempty"`
	To        string    `json:"to,omitempty"`
	Subject   string    `json:"subject,omitempty"` // RFC 2047 decoded
	Date      time.Time `json:"date,omitzero"`
	MessageID string    `json:"message_id,omitempty"`

	Size   int64    `json:"size"`
	SHA256 [32]byte `json:"sha256"`
	// MD5 is the body's MD5, kept because S3 clients (rclone, aws cli)
	// check downloads against an ETag that is the MD5. Zero for messages
	// stored before it was recorded.
	MD5 [16]byte `json:"md5,omitzero"`
	// Placement says how the body is stored and where its shards are.
	Placement Placement `json:"placement"`

	Verdict Verdict `json:"verdict"`

	State     State     `json:"state"`
	LearnedAs LearnKind `json:"learned_as,omitempty"`
	History   []Event   `json:"history,omitempty"`

	// Version orders changes to this record across replicas.
	Version Version `json:"version"`
}

// Clone returns a deep copy of m.
func (m *Metadata) Clone() *Metadata {
	c := *m
	c.Recipients = append([]string(nil), m.Recipients...)
	c.History = append([]Event(nil), m.History...)
	c.Placement.Shards = append([]ShardLoc(nil), m.Placement.Shards...)
	return &c
}

// Placement records how a body was erasure-coded and which node holds each
// shard. The zero Placement means a whole copy on the node that took the
// message in (a 1+0 code), as a single node stores it.
type Placement struct {
	K         int        `json:"k"`                    // data shards
	M         int        `json:"m"`                    // parity shards
	ChunkSize int        `json:"chunk_size,omitempty"` // bytes per shard per stripe
	Shards    []ShardLoc `json:"shards,omitempty"`     // one per stored shard
	// UnderProtected is set when fewer than K+M shards were stored on
	// distinct nodes (too few nodes answered); repair clears it.
	UnderProtected bool `json:"under_protected,omitempty"`
	// Version orders changes of the placement itself (repair moving or
	// adding shards). Merge takes the newest placement whichever record wins
	// otherwise, so a learn or release made elsewhere at the same time can
	// never bring back a placement whose shards are gone. Zero for the
	// placement a message was stored with.
	Version Version `json:"version,omitzero"`
}

// ShardLoc is where one shard of a body lives.
type ShardLoc struct {
	Index  int      `json:"index"`
	Node   int      `json:"node"` // node number
	Size   int64    `json:"size"`
	SHA256 [32]byte `json:"sha256"`
	// MD5 is the body's MD5, kept because S3 clients (rclone, aws cli)
	// check downloads against an ETag that is the MD5. Zero for messages
	// stored before it was recorded.
	MD5 [16]byte `json:"md5,omitzero"`
}

// Version is a hybrid logical clock timestamp: wall time in nanoseconds, a
// logical counter for events in the same nanosecond, and the node number as a
// tie-breaker. Versions are totally ordered, so replicas that see the same
// changes agree on which is newest.
type Version struct {
	Wall    int64  `json:"wall"`
	Logical uint32 `json:"logical,omitempty"`
	Node    int    `json:"node"`
}

// Compare returns -1, 0 or +1 as v is older than, equal to or newer than o.
func (v Version) Compare(o Version) int {
	switch {
	case v.Wall != o.Wall:
		return cmp3(v.Wall, o.Wall)
	case v.Logical != o.Logical:
		return cmp3(v.Logical, o.Logical)
	default:
		return cmp3(v.Node, o.Node)
	}
}

func cmp3[T int | int64 | uint32](a, b T) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// IsZero reports whether v is the zero Version.
func (v Version) IsZero() bool { return v == Version{} }

func (v Version) String() string { return fmt.Sprintf("%d.%d@%d", v.Wall, v.Logical, v.Node) }

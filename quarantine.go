package lazaret

import (
	"context"
	"io"
	"time"
)

// Quarantine is the set of operations a node offers to scanners, MTAs, UIs and
// operators. Every node offers all of them for every message of its cluster;
// the gRPC API (package proto), the SMTP filter and the CLI are adapters over it.
type Quarantine interface {
	// Put stores a message durably and returns its metadata, complete with id,
	// size and checksum. It returns only after the bytes are fsync'd as the
	// durability policy says. Nothing is visible if it fails.
	Put(ctx context.Context, req PutRequest, body io.Reader) (*Metadata, error)
	// Open returns a message's metadata and a reader of its body. The reader
	// verifies checksums as it goes and fails with ErrCorrupt rather than
	// return wrong bytes. The caller must close it.
	Open(ctx context.Context, id ID) (*Metadata, io.ReadCloser, error)
	// Stat returns a message's metadata.
	Stat(ctx context.Context, id ID) (*Metadata, error)
	// List returns metadata matching q, newest first, a page at a time.
	List(ctx context.Context, q ListQuery) (*ListPage, error)
	// Delete marks a message deleted (a tombstone) and removes its body.
	Delete(ctx context.Context, id ID, actor string) (*Metadata, error)
	// Learn teaches the spam filter that a message is spam or ham and records
	// the learner's result in the history.
	Learn(ctx context.Context, id ID, kind LearnKind, actor string) (*Metadata, error)
	// Release asks for a message to be delivered to its recipients, or to the
	// given ones, and records the request.
	Release(ctx context.Context, id ID, recipients []string, actor string) (*Metadata, error)
	// AllocateID reserves a cluster-unique id for a message to be put later.
	AllocateID(ctx context.Context) (ID, error)
	// Status describes the node.
	Status(ctx context.Context) (*NodeStatus, error)
}

// PutRequest carries what the writer knows about a message besides its body.
// Header fields (From, To, Subject, Date, MessageID) that are left empty are
// parsed from the body.
type PutRequest struct {
	// ID may name an id from AllocateID. Empty means allocate one. Putting the
	// same id twice with the same body is a no-op that returns the stored
	// metadata, so a writer can safely retry after a lost acknowledgement.
	ID ID

	Sender     string
	Recipients []string
	ClientIP   string
	Helo       string
	Verdict    Verdict

	From      string
	To        string
	Subject   string
	Date      time.Time
	MessageID string

	// Received overrides the arrival time; zero means now.
	Received time.Time
	// Actor names who is writing, for the history ("grpc", "smtp", "cli:alice").
	Actor string

	// Restore, when set, recreates a message from a backup (see
	// ValidateRestore): the message keeps Restore's id, node, received
	// time, envelope, header fields, verdict, state, learned-as and history
	// verbatim, and the other fields above are ignored. The body must match
	// Restore's Size and SHA256. A restore of an id already stored with the
	// same body replaces that message's metadata with Restore's (a newer
	// version, replicated as any change); another body is a conflict.
	Restore *Metadata
}

// ListQuery selects messages for List. Zero fields do not filter.
type ListQuery struct {
	Since, Until time.Time // received time in [Since, Until)

	// Sender and Recipient match an envelope address case-insensitively, or a
	// whole domain when they start with "@" ("@example.com").
	Sender    string
	Recipient string
	// Domain matches sender or any recipient domain ("example.com").
	Domain string
	// Subject matches when every word of it occurs in the subject,
	// case-insensitively.
	Subject string

	Verdicts []VerdictKind // any of these kinds
	MinScore *float64
	MaxScore *float64
	// States selects states; empty means quarantined and released (not deleted).
	States []State
	Node   *int // taken in by this node number

	// Limit is the page size; 0 means 100. Larger values are capped at 1000.
	Limit int
	// Cursor continues a previous List; it is opaque.
	Cursor string
}

// ListPage is one page of List results.
type ListPage struct {
	Messages   []*Metadata
	NextCursor string // empty on the last page
	Source     string // which index answered: "local" or "postgres"
}

// NodeStatus describes one node as it sees itself.
type NodeStatus struct {
	Node      int       `json:"node"`
	Name      string    `json:"name"`
	Version   string    `json:"version"` // software version
	Started   time.Time `json:"started"`
	DataDir   string    `json:"data_dir"`
	Messages  int64     `json:"messages"` // live (not deleted) messages
	Bytes     int64     `json:"bytes"`    // body bytes of live messages
	DiskBytes int64     `json:"disk_bytes"`
	// Retention is how long messages are kept. In JSON it is
	// "retention_seconds", a whole number of seconds (see MarshalJSON).
	Retention time.Duration `json:"-"`
	// Health lists problems; empty means healthy.
	Health []string `json:"health,omitempty"`
	// Index describes the feed into the shared PostgreSQL index; nil when
	// none is configured.
	Index *IndexStatus `json:"index,omitempty"`
	// Members is every cluster member as this node sees it, with the
	// figures each alive member reported; empty on a single node.
	Members []MemberStatus `json:"members,omitempty"`
	// Lag is this node's replication lag (anti-entropy and repair); nil on
	// a single node.
	Lag *ReplicationLag `json:"lag,omitempty"`
}

// ReplicationLag is how far behind full protection and agreement one
// cluster member is: what repair still has to do and when it last agreed
// with each peer.
type ReplicationLag struct {
	// Under-protected messages this node took in (fewer shards than their
	// code wants, or a whole copy): count, body bytes, oldest receive time.
	UnderProtected       int64     `json:"under_protected"`
	UnderProtectedBytes  int64     `json:"under_protected_bytes"`
	OldestUnderProtected time.Time `json:"oldest_under_protected,omitzero"`
	// RepairQueue is how many messages wait for (or are in) a repair check.
	RepairQueue int64 `json:"repair_queue"`
	// Repaired and RepairedBytes count the shards repair wrote since start.
	Repaired      int64 `json:"repaired"`
	RepairedBytes int64 `json:"repaired_bytes"`
	// CorruptShards counts shards that failed a checksum since start.
	CorruptShards int64 `json:"corrupt_shards"`
	// RemovedNodes are the node numbers retired by `lazaret node remove`.
	RemovedNodes []int `json:"removed_nodes,omitempty"`
	// Peers is the last reconciliation with each peer, by node number.
	Peers []PeerSyncStatus `json:"peers,omitempty"`
}

// PeerSyncStatus is one node's last metadata reconciliation with a peer.
type PeerSyncStatus struct {
	Node        int       `json:"node"`
	LastSuccess time.Time `json:"last_success,omitzero"` // zero: never
	Differences int64     `json:"differences"`           // records that differed then
	Bytes       int64     `json:"bytes"`                 // bytes the session exchanged
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastError   string    `json:"last_error,omitempty"` // empty after a success
}

// MemberStatus is one cluster member in NodeStatus.
type MemberStatus struct {
	Node       int    `json:"node"`
	Name       string `json:"name"`
	PeerAddr   string `json:"peer_addr"`
	GossipAddr string `json:"gossip_addr,omitempty"`
	State      string `json:"state"` // alive, suspect, failed, left
	Zone       string `json:"zone,omitempty"`
	Version    string `json:"version,omitempty"`
	// Self marks the node that answered.
	Self bool `json:"self,omitempty"`
	// Reported is true when the figures below came from the member itself.
	Reported             bool      `json:"reported"`
	Messages             int64     `json:"messages"`
	Shards               int64     `json:"shards"`
	ShardBytes           int64     `json:"shard_bytes"`
	UnderProtected       int64     `json:"under_protected"`
	UnderProtectedBytes  int64     `json:"under_protected_bytes"`
	OldestUnderProtected time.Time `json:"oldest_under_protected,omitzero"`
	// Error says why the figures are missing.
	Error string `json:"error,omitempty"`
}

// IndexStatus describes how far a node's feed into the shared PostgreSQL
// index is behind its store.
type IndexStatus struct {
	Backend   string `json:"backend"`   // "postgres"
	Reachable bool   `json:"reachable"` // the last attempt to reach it succeeded
	// Backlog is the number of changes waiting in the outbox, and BacklogAge
	// the age of the oldest.
	Backlog int64 `json:"backlog"`
	// In JSON "backlog_age_seconds", in seconds (see MarshalJSON).
	BacklogAge time.Duration `json:"-"`
	// Resync says a full resynchronisation from the store is pending (the
	// outbox overflowed, or was off).
	Resync    bool      `json:"resync,omitempty"`
	LastError string    `json:"last_error,omitempty"`
	LastFlush time.Time `json:"last_flush,omitzero"` // last successful write
	Applied   int64     `json:"applied"`             // changes written since start
}

// Learner teaches a spam filter (sa-learn, rspamc) about one message.
type Learner interface {
	Learn(ctx context.Context, kind LearnKind, body io.Reader) (output string, err error)
}

package reconcile

import (
	"errors"
	"fmt"
)

// Config tunes a reconciliation. Both peers may use different values; the
// protocol does not depend on them agreeing.
type Config struct {
	// Branch is the number of sub-ranges a differing range is split into.
	Branch int
	// ListMax is the largest number of items a differing range may hold to
	// be settled by listing them (ModeIDList) instead of being split.
	ListMax int
}

// DefaultConfig returns the configuration chosen by measurement in
// docs/antientropy.md: Branch 4, ListMax 16. A branch of 4 sends about half
// the bytes of 16 when differences are sparse, for two or three more round
// trips at a million records.
func DefaultConfig() Config { return Config{Branch: 4, ListMax: 16} }

// Validate checks c.
func (c Config) Validate() error {
	switch {
	case c.Branch < 2 || c.Branch > 1024:
		return fmt.Errorf("reconcile: Branch %d: want 2 to 1024", c.Branch)
	case c.ListMax < c.Branch || c.ListMax > 65536:
		return fmt.Errorf("reconcile: ListMax %d: want Branch (%d) to 65536", c.ListMax, c.Branch)
	}
	return nil
}

// ErrSessionDone is returned by a Session used after it finished.
var ErrSessionDone = errors.New("reconcile: session already done")

// Session reconciles one replica with one peer. It does no I/O: the caller
// sends each returned Message to the peer (as MarshalBinary bytes) and
// passes the peer's answer to Handle, until a Step says Done. One side
// calls Initiate; the other starts with Handle. A Session is not safe for
// concurrent use.
type Session struct {
	set     Set
	cfg     Config
	started bool
	done    bool
	// pending holds the id lists sent in the last message, by upper bound;
	// the peer's next message answers each of them.
	pending map[Bound]pendingList
	// replied holds the id replies sent in the last message that said items
	// were missing, by upper bound; the peer's next message names them.
	replied map[Bound]pendingReply
	stats   Stats
}

type pendingList struct {
	lower Bound
	items []Item
}

type pendingReply struct {
	lower   Bound
	missing int
}

// Stats counts what a Session did so far.
type Stats struct {
	Sent, Received int // messages
	Have, Need     int // keys reported in Steps
}

// Step is the outcome of one Initiate or Handle.
type Step struct {
	// Reply is the message to send to the peer, or nil if nothing is to be
	// sent. A Reply with no ranges must still be sent: the peer waits for it.
	Reply *Message
	// Done means the session is over once Reply (if any) is sent.
	Done bool
	// Have lists the keys, found in this step, of items this side holds and
	// the peer lacks or holds with other content: this side pushes them.
	Have []string
	// Need lists the keys, found in this step, of items the peer holds and
	// this side lacks or holds with other content: this side pulls them.
	// A key whose content differs on the two sides is in both lists.
	Need []string
}

// NewSession returns a session over set. It fails only if cfg is invalid.
func NewSession(set Set, cfg Config) (*Session, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Session{set: set, cfg: cfg, pending: map[Bound]pendingList{}, replied: map[Bound]pendingReply{}}, nil
}

// Stats returns the session's counters.
func (s *Session) Stats() Stats { return s.stats }

// Done reports whether the session is over.
func (s *Session) Done() bool { return s.done }

// Initiate returns the first message of a session: the fingerprint of the
// whole set, or its id list if it is small.
func (s *Session) Initiate() (Step, error) {
	if s.started {
		return Step{}, errors.New("reconcile: Initiate on a session already started")
	}
	s.started = true
	var out builder
	s.split(&out, Bound{}, Bound{Infinite: true}, 0, s.set.Len(), true)
	s.stats.Sent++
	return Step{Reply: out.message()}, nil
}

// Handle processes the peer's message and returns what to send back. On an
// error the session is unusable; errors about the message wrap
// ErrBadMessage.
func (s *Session) Handle(m *Message) (Step, error) {
	if s.done {
		return Step{}, ErrSessionDone
	}
	if err := m.validate(); err != nil {
		s.done = true
		return Step{}, err
	}
	s.started = true
	s.stats.Received++
	expect, expectKeys := s.pending, s.replied
	s.pending, s.replied = map[Bound]pendingList{}, map[Bound]pendingReply{}
	var (
		out  builder
		step Step
		buf  []Item
	)
	lower := Bound{}
	for _, r := range m.Ranges {
		lo := s.set.Seek(lower.Key)
		hi := s.set.Len()
		if !r.Upper.Infinite {
			hi = s.set.Seek(r.Upper.Key)
		}
		switch r.Mode {
		case ModeSkip:
			out.skip(r.Upper)
		case ModeFingerprint:
			if s.set.Fingerprint(lo, hi) == r.Fingerprint {
				out.skip(r.Upper)
			} else {
				s.split(&out, lower, r.Upper, lo, hi, false)
			}
		case ModeIDList:
			buf = s.set.Items(lo, hi, buf[:0])
			rep := s.answer(r, buf, &step)
			if missing := len(rep.Match) - countTrue(rep.Match); missing > 0 {
				s.replied[r.Upper] = pendingReply{lower: lower, missing: missing}
			}
			out.add(rep)
		case ModeIDReply:
			p, ok := expect[r.Upper]
			if !ok || p.lower != lower {
				s.done = true
				return Step{}, badf("id reply for range (%q, %q) that was not listed", lower.Key, r.Upper.Key)
			}
			delete(expect, r.Upper)
			keys, err := s.settle(r, p.items, &step)
			if err != nil {
				s.done = true
				return Step{}, err
			}
			if len(keys) > 0 {
				out.add(Range{Upper: r.Upper, Mode: ModeIDKeys, Keys: keys})
			} else {
				out.skip(r.Upper)
			}
		case ModeIDKeys:
			p, ok := expectKeys[r.Upper]
			if !ok || p.lower != lower || p.missing != len(r.Keys) {
				s.done = true
				return Step{}, badf("id keys for range (%q, %q) do not answer an id reply", lower.Key, r.Upper.Key)
			}
			delete(expectKeys, r.Upper)
			step.Need = append(step.Need, r.Keys...)
			out.skip(r.Upper)
		}
		lower = r.Upper
	}
	if len(expect)+len(expectKeys) > 0 {
		s.done = true
		return Step{}, badf("%d id lists and %d id replies left unanswered", len(expect), len(expectKeys))
	}
	s.stats.Have += len(step.Have)
	s.stats.Need += len(step.Need)
	if reply := out.message(); m.needsAnswer() || !reply.empty() {
		step.Reply = reply
		s.stats.Sent++
	}
	step.Done = step.Reply == nil || !step.Reply.needsAnswer()
	s.done = step.Done
	return step, nil
}

// split settles a range whose fingerprints differ: by listing its items if
// there are few, else by sending the fingerprints of Branch sub-ranges.
// whole asks for a single fingerprint instead (the first message).
func (s *Session) split(out *builder, lower, upper Bound, lo, hi int, whole bool) {
	n := hi - lo
	if n <= s.cfg.ListMax {
		items := s.set.Items(lo, hi, nil)
		shorts := make([]uint64, len(items))
		for i, it := range items {
			shorts[i] = it.Hash.short()
		}
		s.pending[upper] = pendingList{lower: lower, items: items}
		out.add(Range{Upper: upper, Mode: ModeIDList, Shorts: shorts})
		return
	}
	if whole {
		out.add(Range{Upper: upper, Mode: ModeFingerprint, Fingerprint: s.set.Fingerprint(lo, hi)})
		return
	}
	b := s.cfg.Branch
	var pair []Item
	start := lo
	for i := 1; i <= b; i++ {
		end := lo + n*i/b
		ub := upper
		if i < b {
			pair = s.set.Items(end-1, end+1, pair[:0])
			ub = Bound{Key: separator(pair[0].Key, pair[1].Key)}
		}
		out.add(Range{Upper: ub, Mode: ModeFingerprint, Fingerprint: s.set.Fingerprint(start, end)})
		start = end
	}
}

// separator returns the shortest prefix of b that sorts above a (a < b).
func separator(a, b string) string { return b[:shared(a, b)+1] }

// answer compares the peer's id list r with mine, this side's items in the
// same range, and returns the id reply: which listed hashes this side holds,
// and the keys of its items the list lacks (which this side pushes).
func (s *Session) answer(r Range, mine []Item, step *Step) Range {
	listed := make(map[uint64]bool, len(r.Shorts))
	for _, v := range r.Shorts {
		listed[v] = false
	}
	rep := Range{Upper: r.Upper, Mode: ModeIDReply, Match: make([]bool, len(r.Shorts))}
	for _, it := range mine {
		v := it.Hash.short()
		if _, ok := listed[v]; ok {
			listed[v] = true
			continue
		}
		rep.Keys = append(rep.Keys, it.Key)
		step.Have = append(step.Have, it.Key)
	}
	for i, v := range r.Shorts {
		rep.Match[i] = listed[v]
	}
	return rep
}

// settle reads the peer's id reply r to the list of items this side sent:
// listed items the peer lacks go to Have, the peer's extra keys to Need. It
// returns the keys of the unmatched listed items, for the id keys answer.
func (s *Session) settle(r Range, items []Item, step *Step) ([]string, error) {
	if len(r.Match) != len(items) {
		return nil, badf("id reply has %d match bits for %d listed items", len(r.Match), len(items))
	}
	var keys []string
	for i, ok := range r.Match {
		if !ok {
			keys = append(keys, items[i].Key)
			step.Have = append(step.Have, items[i].Key)
		}
	}
	// The peer cannot lack an item with a key it says it holds the same.
	i := 0
	for _, k := range r.Keys {
		for i < len(items) && items[i].Key < k {
			i++
		}
		if i < len(items) && items[i].Key == k && r.Match[i] {
			return nil, badf("id reply names key %q both matched and unmatched", k)
		}
		step.Need = append(step.Need, k)
	}
	return keys, nil
}

func countTrue(bs []bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

// builder assembles a message, merging adjacent skipped ranges.
type builder struct{ ranges []Range }

func (b *builder) skip(upper Bound) {
	if n := len(b.ranges); n > 0 && b.ranges[n-1].Mode == ModeSkip {
		b.ranges[n-1].Upper = upper
		return
	}
	b.ranges = append(b.ranges, Range{Upper: upper, Mode: ModeSkip})
}

func (b *builder) add(r Range) { b.ranges = append(b.ranges, r) }

// message returns the message, without its trailing skipped range.
func (b *builder) message() *Message {
	r := b.ranges
	if n := len(r); n > 0 && r[n-1].Mode == ModeSkip {
		r = r[:n-1]
	}
	return &Message{Ranges: r}
}

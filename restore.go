package lazaret

import "fmt"

// ValidateRestore checks a record to be restored with PutRequest.Restore:
// a valid id, a received time, a state a stored body can be in
// (quarantined or released: a deleted message has no body to restore), a
// positive size, known verdict and learn kinds, and a history whose
// events name an action and a time. It returns an error wrapping
// ErrInvalidArgument that names what is wrong.
func ValidateRestore(m *Metadata) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: restore %s: %s", ErrInvalidArgument, m.ID, fmt.Sprintf(format, args...))
	}
	if _, err := ParseID(string(m.ID)); err != nil {
		return fmt.Errorf("%w: restore: %v", ErrInvalidArgument, err)
	}
	switch {
	case m.Received.IsZero():
		return bad("no received time")
	case m.State != StateQuarantined && m.State != StateReleased:
		return bad("state %v cannot be restored (only quarantined or released)", m.State)
	case m.Size <= 0:
		return bad("size %d", m.Size)
	case m.SHA256 == [32]byte{}:
		return bad("no sha256")
	case m.Verdict.Kind < VerdictOther || m.Verdict.Kind > VerdictPolicy:
		return bad("unknown verdict %v", m.Verdict.Kind)
	case m.LearnedAs < LearnNone || m.LearnedAs > LearnHam:
		return bad("unknown learn kind %v", m.LearnedAs)
	case m.Node < 0:
		return bad("node %d", m.Node)
	}
	for i, e := range m.History {
		if e.Action == "" || e.Time.IsZero() {
			return bad("history event %d has no action or time", i)
		}
	}
	return nil
}

// Restored returns the metadata a restore of r creates, before the store
// sets size, checksums, placement and version: r's id, node, received time,
// envelope (sender and recipients as given, already cleaned by the
// caller), header fields, verdict, state, learned-as and history.
func Restored(r *Metadata, sender string, rcpts []string) *Metadata {
	m := &Metadata{
		ID: r.ID, Node: r.Node, Received: r.Received.UTC(),
		Sender: sender, Recipients: rcpts, ClientIP: r.ClientIP, Helo: r.Helo,
		From: r.From, To: r.To, Subject: r.Subject, Date: r.Date, MessageID: r.MessageID,
		Verdict: r.Verdict, State: r.State, LearnedAs: r.LearnedAs,
		History: append([]Event(nil), r.History...),
	}
	return m
}

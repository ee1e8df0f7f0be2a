package replicator_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator"
)

// recordingRelay is a lazaret.Deliverer that keeps what it is given.
type recordingRelay struct {
	sender string
	rcpts  []string
	body   []byte
}

func (r *recordingRelay) Deliver(ctx context.Context, sender string, rcpts []string, body io.Reader) (string, error) {
	b, err := io.ReadAll(body)
	if err != nil {
		return "", err
	}
	r.sender, r.rcpts, r.body = sender, rcpts, b
	return "250 2.0.0 Ok: queued as TEST1", nil
}

func TestReleaseRecordsRequest(t *testing.T) {
	relay := &recordingRelay{}
	f := newFx(t, func(c *replicator.Config) { c.Deliverer = relay; c.RelayName = "test-relay" })
	ctx := fxCtx(t)
	body := fxMail(20<<10, 1)
	m := f.put(body, "b@example.com", "c@example.com")

	for _, bad := range [][]string{{"not an address"}, {"b@example.com", ""}, {"<x>y@example.com"}} {
		if _, err := f.node.Release(ctx, m.ID, bad, "alice"); !errors.Is(err, lazaret.ErrInvalidArgument) {
			t.Errorf("Release to %q: %v, want ErrInvalidArgument", bad, err)
		}
	}
	if st, _ := f.node.Stat(ctx, m.ID); len(st.History) != 1 || relay.body != nil {
		t.Fatalf("refused releases changed the message or delivered: %+v", st.History)
	}

	// To the original recipients.
	got, err := f.node.Release(ctx, m.ID, nil, "alice")
	if err != nil {
		t.Fatalf("Release: %v", err)
	}
	if !hasEvent(got, "release-request", "b@example.com,c@example.com") {
		t.Errorf("history %+v has no release-request to the original recipients", got.History)
	}
	if strings.Join(relay.rcpts, ",") != "b@example.com,c@example.com" || relay.sender != "a@example.org" || !bytes.Equal(relay.body, body) {
		t.Errorf("relay got sender %q rcpts %v and %d bytes; want the original envelope and body", relay.sender, relay.rcpts, len(relay.body))
	}
	// To given recipients.
	got, err = f.node.Release(ctx, m.ID, []string{"<postmaster@example.com>"}, "bob")
	if err != nil {
		t.Fatalf("Release to postmaster: %v", err)
	}
	if !hasEvent(got, "release-request", "postmaster@example.com") || strings.Join(relay.rcpts, ",") != "postmaster@example.com" {
		t.Errorf("release to given recipients: history %+v, relay rcpts %v", got.History, relay.rcpts)
	}
	// A message without recipients must be given some.
	bare := f.put(fxMail(1000, 2))
	if _, err := f.node.Release(ctx, bare.ID, nil, "alice"); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Errorf("Release of a message without recipients: %v, want ErrInvalidArgument", err)
	}
}

func hasEvent(m *lazaret.Metadata, action, detail string) bool {
	for _, e := range m.History {
		if e.Action == action && strings.Contains(e.Detail, detail) {
			return true
		}
	}
	return false
}

func TestReleaseWithoutRelay(t *testing.T) {
	f := newFx(t, nil)
	ctx := fxCtx(t)
	m := f.put(fxMail(1000, 1), "b@example.com")
	if _, err := f.node.Release(ctx, m.ID, []string{"bad address"}, "alice"); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Errorf("Release to an invalid recipient: %v, want ErrInvalidArgument", err)
	}
	if _, err := f.node.Release(ctx, m.ID, nil, "alice"); !errors.Is(err, lazaret.ErrUnavailable) {
		t.Errorf("Release with no relay: %v, want ErrUnavailable", err)
	}
	if st, err := f.node.Stat(ctx, m.ID); err != nil || len(st.History) != 1 || st.State != lazaret.StateQuarantined {
		t.Errorf("failed releases changed the message: %+v, %v", st, err)
	}
}

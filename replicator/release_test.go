package replicator_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator"
)

// countingRelay counts deliveries; it fails with err when set, and waits for
// gate when set.
type countingRelay struct {
	n    atomic.Int32
	mu   sync.Mutex
	err  error
	gate chan struct{}
}

func (r *countingRelay) Deliver(ctx context.Context, sender string, rcpts []string, body io.Reader) (string, error) {
	if r.gate != nil {
		<-r.gate
	}
	if _, err := io.Copy(io.Discard, body); err != nil {
		return "", err
	}
	r.mu.Lock()
	err := r.err
	r.mu.Unlock()
	if err != nil {
		return "", err
	}
	n := r.n.Add(1)
	return fmt.Sprintf("250 2.0.0 Ok: queued as Q%d", n), nil
}

func (r *countingRelay) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
}

func TestReleaseIdempotent(t *testing.T) {
	relay := &countingRelay{}
	f := newFx(t, func(c *replicator.Config) { c.Deliverer = relay; c.RelayName = "relay:25" })
	ctx := fxCtx(t)
	m := f.put(fxMail(5000, 1), "b@example.com")

	rctx := lazaret.WithRequestID(ctx, "req-1")
	first, err := f.node.Release(rctx, m.ID, nil, "alice")
	if err != nil {
		t.Fatal(err)
	}
	again, err := f.node.Release(rctx, m.ID, nil, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if relay.n.Load() != 1 || len(again.History) != len(first.History) || again.State != lazaret.StateReleased {
		t.Errorf("a repeated request delivered again or changed the history: %d deliveries, %d vs %d events", relay.n.Load(), len(again.History), len(first.History))
	}
	last := first.History[len(first.History)-1]
	if last.Action != "release" || last.Request != "req-1" || last.Detail != "to b@example.com via relay:25: 250 2.0.0 Ok: queued as Q1" {
		t.Errorf("last event %+v", last)
	}
	// Another request id delivers again.
	if _, err := f.node.Release(lazaret.WithRequestID(ctx, "req-2"), m.ID, nil, "alice"); err != nil || relay.n.Load() != 2 {
		t.Errorf("a new request: %v, %d deliveries", err, relay.n.Load())
	}
	if _, err := f.node.Release(lazaret.WithRequestID(ctx, "bad id"), m.ID, nil, "alice"); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Errorf("a request id with a space: %v", err)
	}
}

func TestReleaseConcurrentSameRequest(t *testing.T) {
	relay := &countingRelay{gate: make(chan struct{})}
	f := newFx(t, func(c *replicator.Config) { c.Deliverer = relay })
	ctx := lazaret.WithRequestID(fxCtx(t), "same")
	m := f.put(fxMail(5000, 2), "b@example.com")
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := f.node.Release(ctx, m.ID, nil, "alice")
			errs <- err
		}()
	}
	time.Sleep(100 * time.Millisecond)
	close(relay.gate)
	for range 8 {
		if err := <-errs; err != nil {
			t.Errorf("Release: %v", err)
		}
	}
	if n := relay.n.Load(); n != 1 {
		t.Errorf("8 concurrent calls with one request id delivered %d times, want 1", n)
	}
}

func TestReleaseFailureKeepsMessageQuarantined(t *testing.T) {
	relay := &countingRelay{}
	f := newFx(t, func(c *replicator.Config) { c.Deliverer = relay })
	ctx := fxCtx(t)
	m := f.put(fxMail(5000, 3), "b@example.com")
	rctx := lazaret.WithRequestID(ctx, "r")

	// A definite refusal: recorded, reported, and the same request may retry.
	relay.fail(&lazaret.DeliveryError{Relay: "relay", Stage: "rcpt", Recipients: []lazaret.RecipientError{{Recipient: "b@example.com", Reply: "550 5.1.1 no such user"}}})
	_, err := f.node.Release(rctx, m.ID, nil, "alice")
	if !errors.Is(err, lazaret.ErrDeliveryFailed) || errors.Is(err, lazaret.ErrUnavailable) {
		t.Fatalf("refused delivery: %v", err)
	}
	st, _ := f.node.Stat(ctx, m.ID)
	if last := st.History[len(st.History)-1]; st.State != lazaret.StateQuarantined || last.Action != "release-failed" || last.Request != "r" {
		t.Errorf("after a failed release: state %v, last %+v", st.State, last)
	}
	relay.fail(nil)
	if _, err := f.node.Release(rctx, m.ID, nil, "alice"); err != nil || relay.n.Load() != 1 {
		t.Fatalf("retry after a definite failure: %v, %d deliveries", err, relay.n.Load())
	}

	// An uncertain outcome: the same request is never tried again.
	m2 := f.put(fxMail(5000, 4), "b@example.com")
	relay.fail(&lazaret.DeliveryError{Relay: "relay", Stage: "end of data", Uncertain: true, Temporary: true, Err: io.ErrUnexpectedEOF})
	if _, err := f.node.Release(rctx, m2.ID, nil, "alice"); !errors.Is(err, lazaret.ErrDeliveryFailed) {
		t.Fatalf("uncertain delivery: %v", err)
	}
	relay.fail(nil)
	if _, err := f.node.Release(rctx, m2.ID, nil, "alice"); !errors.Is(err, lazaret.ErrConflict) || relay.n.Load() != 1 {
		t.Errorf("retry of an uncertain request: %v, %d deliveries; want ErrConflict and no delivery", err, relay.n.Load())
	}
	if _, err := f.node.Release(lazaret.WithRequestID(ctx, "r2"), m2.ID, nil, "alice"); err != nil || relay.n.Load() != 2 {
		t.Errorf("a new request id after an uncertain one: %v", err)
	}
}

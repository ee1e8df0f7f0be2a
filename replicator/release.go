package replicator

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret"
)

// History actions of a release. Every one carries the request id
// (Event.Request), so the history alone says what became of each request:
//
//	release-request  recorded durably before delivery starts
//	release          the relay accepted the message (Detail: recipients and its reply)
//	release-failed   the relay did not take it; the same request may be retried
//	release-unknown  the data was sent but no reply came: it may have been
//	                 delivered, so the request is never retried
const (
	actionReleaseRequest = "release-request"
	actionRelease        = "release"
	actionReleaseFailed  = "release-failed"
	actionReleaseUnknown = "release-unknown"
)

// recordTimeout bounds recording a release's outcome, which must happen even
// when the caller has gone away.
const recordTimeout = 30 * time.Second

// releaseLocks serialises releases of one message on this node, so that two
// concurrent calls with the same request id deliver once: the second waits,
// then finds the first one's outcome in the history.
type releaseLocks struct {
	mu   sync.Mutex
	busy map[lazaret.ID]*releaseLock
}

type releaseLock struct {
	sync.Mutex
	users int
}

func (l *releaseLocks) lock(id lazaret.ID) func() {
	l.mu.Lock()
	if l.busy == nil {
		l.busy = make(map[lazaret.ID]*releaseLock)
	}
	rl := l.busy[id]
	if rl == nil {
		rl = &releaseLock{}
		l.busy[id] = rl
	}
	rl.users++
	l.mu.Unlock()
	rl.Lock()
	return func() {
		rl.Unlock()
		l.mu.Lock()
		if rl.users--; rl.users == 0 {
			delete(l.busy, id)
		}
		l.mu.Unlock()
	}
}

// requestState is what the history says about one release request.
type requestState int

const (
	requestNew       requestState = iota // never seen, or failed before delivery: deliver
	requestDone                          // delivered: return the recorded result
	requestPending                       // recorded, no outcome: interrupted or running elsewhere
	requestUncertain                     // may have been delivered
)

// releaseState returns the state of request rid from the last history event
// that names it.
func releaseState(h []lazaret.Event, rid string) requestState {
	for i := len(h) - 1; i >= 0; i-- {
		if h[i].Request != rid {
			continue
		}
		switch h[i].Action {
		case actionRelease:
			return requestDone
		case actionReleaseRequest:
			return requestPending
		case actionReleaseUnknown:
			return requestUncertain
		case actionReleaseFailed:
			return requestNew
		}
	}
	return requestNew
}

// newRequestID makes up an idempotency key for a request that came without one.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "node-" + hex.EncodeToString(b[:])
}

// release delivers a message through the configured Deliverer and records the
// request and its outcome in the history (see the action constants). It works
// on whatever n.Open and n.update reach: on one node the local store; in a
// cluster any node's view of the message, since both the body and the
// history are readable from every node.
//
// A request id (lazaret.WithRequestID; made up when absent) is delivered at
// most once: the request is recorded durably before delivery, and a repeat
// of a delivered request returns the recorded result. A request whose
// outcome is unknown (the node died during delivery, or the relay went quiet
// after the data) is refused with ErrConflict rather than risk a duplicate.
func (n *Node) release(ctx context.Context, id lazaret.ID, recipients []string, who string) (*lazaret.Metadata, error) {
	const op = "release"
	rcpts, err := lazaret.CleanRecipients(recipients)
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	rid := lazaret.RequestID(ctx)
	if rid == "" {
		rid = newRequestID()
	} else if !lazaret.ValidRequestID(rid) {
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: request id must be 1-128 printable characters without spaces", lazaret.ErrInvalidArgument)}
	}
	if n.cfg.Deliverer == nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: no relay is configured for releases", lazaret.ErrUnavailable)}
	}

	unlock := n.releasing.lock(id)
	defer unlock()

	// 1. Record the request durably, unless the history already settles it.
	var (
		to       []string
		recorded *lazaret.Metadata
		errDone  = errors.New("already delivered")
	)
	m, err := n.update(ctx, op, id, func(m *lazaret.Metadata) error {
		switch releaseState(m.History, rid) {
		case requestDone:
			recorded = m
			return errDone
		case requestPending:
			return fmt.Errorf("%w: release request %s was interrupted and may have been delivered; check the recipients' mailboxes, or release again with a new request id", lazaret.ErrConflict, rid)
		case requestUncertain:
			return fmt.Errorf("%w: release request %s may have been delivered (the relay did not answer after the data); check the recipients' mailboxes, or release again with a new request id", lazaret.ErrConflict, rid)
		}
		to = rcpts
		if len(to) == 0 {
			to = m.Recipients
		}
		if len(to) == 0 {
			return fmt.Errorf("%w: the message has no envelope recipients; name them", lazaret.ErrInvalidArgument)
		}
		ev := n.event(who, actionReleaseRequest, "to "+strings.Join(to, ","))
		ev.Request = rid
		m.History = append(m.History, ev)
		return nil
	})
	if recorded != nil && errors.Is(err, errDone) {
		return recorded, nil
	}
	if err != nil {
		return nil, err
	}

	// 2. Deliver the stored bytes, byte for byte, from the original sender.
	reply, derr := n.deliver(ctx, id, m.Sender, to)

	// 3. Record the outcome, even if the caller has given up meanwhile.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	m, err = n.update(rctx, op, id, func(m *lazaret.Metadata) error {
		var ev lazaret.Event
		var de *lazaret.DeliveryError
		switch {
		case derr == nil:
			m.State = lazaret.StateReleased
			ev = n.event(who, actionRelease, fmt.Sprintf("to %s via %s: %s", strings.Join(to, ","), n.cfg.RelayName, reply))
		case errors.As(derr, &de) && de.Uncertain:
			ev = n.event(who, actionReleaseUnknown, derr.Error())
		default:
			ev = n.event(who, actionReleaseFailed, derr.Error())
		}
		ev.Request = rid
		m.History = append(m.History, ev)
		return nil
	})
	switch {
	case err != nil && derr == nil:
		// Delivered, but the outcome could not be recorded: the pending
		// request stops a retry with this id from delivering twice.
		n.log.Error("release: delivered but not recorded", "id", id, "request", rid, "reply", reply, "err", err)
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: delivered (%s) but recording the release failed: %v", lazaret.ErrUnavailable, reply, err)}
	case err != nil:
		n.log.Error("release: recording the failure failed", "id", id, "request", rid, "err", err, "delivery", derr)
	case derr == nil:
		n.log.Info("released", "id", id, "request", rid, "to", to, "reply", reply)
		return m, nil
	}
	n.log.Warn("release failed", "id", id, "request", rid, "err", derr)
	return nil, &lazaret.Error{Op: op, ID: id, Err: derr}
}

// deliver streams the message's body to the relay. A body that fails its
// checksum on the way aborts the transaction before the end of data.
func (n *Node) deliver(ctx context.Context, id lazaret.ID, sender string, to []string) (string, error) {
	_, body, err := n.Open(ctx, id)
	if err != nil {
		return "", err
	}
	defer body.Close()
	return n.cfg.Deliverer.Deliver(ctx, sender, to, body)
}

package smtpfilter

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/lazaret/lazaret"
)

// fakeQuarantine is an in-memory lazaret.Quarantine whose Put is atomic, as
// the real one is: a message is kept only if its whole body was read.
type fakeQuarantine struct {
	mu      sync.Mutex
	max     int64
	putErr  error         // returned by Put after reading the body, when set
	started chan struct{} // if set, receives once per Put as it starts
	block   chan struct{} // if set, Put waits for it before reading
	results chan error    // if set, receives every Put's outcome
	msgs    []stored
}

type stored struct {
	req  lazaret.PutRequest
	body []byte
	id   lazaret.ID
}

var _ lazaret.Quarantine = (*fakeQuarantine)(nil)

func (q *fakeQuarantine) Put(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	md, err := q.put(ctx, req, body)
	if q.results != nil {
		q.results <- err
	}
	return md, err
}

func (q *fakeQuarantine) put(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	if q.started != nil {
		q.started <- struct{}{}
	}
	if q.block != nil {
		select {
		case <-q.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	max := q.max
	if max == 0 {
		max = 64 << 20
	}
	b, err := io.ReadAll(io.LimitReader(body, max+1))
	if err != nil {
		return nil, &lazaret.Error{Op: "put", Err: fmt.Errorf("reading body: %w", err)}
	}
	if int64(len(b)) > max {
		return nil, &lazaret.Error{Op: "put", Err: fmt.Errorf("%w: over the limit", lazaret.ErrTooLarge)}
	}
	if len(b) == 0 {
		return nil, &lazaret.Error{Op: "put", Err: fmt.Errorf("%w: empty body", lazaret.ErrInvalidArgument)}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.putErr != nil {
		return nil, q.putErr
	}
	id := lazaret.ID(fmt.Sprintf("1aaaaa-%06d-01", len(q.msgs)+1))
	q.msgs = append(q.msgs, stored{req: req, body: b, id: id})
	return &lazaret.Metadata{ID: id, Sender: req.Sender, Recipients: req.Recipients, Size: int64(len(b)),
		Verdict: req.Verdict, ClientIP: req.ClientIP, Helo: req.Helo}, nil
}

func (q *fakeQuarantine) stored() []stored {
	q.mu.Lock()
	defer q.mu.Unlock()
	return append([]stored(nil), q.msgs...)
}

func (q *fakeQuarantine) find(body []byte) (stored, bool) {
	for _, m := range q.stored() {
		if bytes.Equal(m.body, body) {
			return m, true
		}
	}
	return stored{}, false
}

var errFake = errors.New("not implemented by the fake")

func (q *fakeQuarantine) Open(context.Context, lazaret.ID) (*lazaret.Metadata, io.ReadCloser, error) {
	return nil, nil, errFake
}
func (q *fakeQuarantine) Stat(context.Context, lazaret.ID) (*lazaret.Metadata, error) {
	return nil, errFake
}
func (q *fakeQuarantine) List(context.Context, lazaret.ListQuery) (*lazaret.ListPage, error) {
	return nil, errFake
}
func (q *fakeQuarantine) Delete(context.Context, lazaret.ID, string) (*lazaret.Metadata, error) {
	return nil, errFake
}
func (q *fakeQuarantine) Learn(context.Context, lazaret.ID, lazaret.LearnKind, string) (*lazaret.Metadata, error) {
	return nil, errFake
}
func (q *fakeQuarantine) Release(context.Context, lazaret.ID, []string, string) (*lazaret.Metadata, error) {
	return nil, errFake
}
func (q *fakeQuarantine) AllocateID(context.Context) (lazaret.ID, error) { return "", errFake }
func (q *fakeQuarantine) Status(context.Context) (*lazaret.NodeStatus, error) {
	return nil, errFake
}

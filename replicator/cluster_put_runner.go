package replicator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret"
)

// runnerBuffers is how many pieces may wait for one shard's sink: the put
// reads ahead of the slowest healthy sink by at most this many stripes.
const runnerBuffers = 2

// errPutEnded ends a runner whose put stopped before the end of the body.
var errPutEnded = errors.New("put ended before the body was complete")

// shardRunner feeds one shardSink from its own goroutine, so that a slow or
// hung node holds up neither the other shards nor, past the straggler
// grace, the put. The put hands it copies of its pieces through a queue of
// runnerBuffers reusable buffers; a runner whose buffers are all taken and
// that made no progress for the grace period is abandoned (its stream
// cancelled). After the body, the runner finishes the sink and reports on
// results; its outcome (loc, err, sink) may be read once done is closed.
type shardRunner struct {
	index int // shard index
	node  int
	local bool

	q       chan []byte   // pieces to write; closed after the last
	free    chan []byte   // buffers the put may fill
	failed  chan struct{} // closed when the runner stops writing
	done    chan struct{} // closed when the runner has ended
	results chan<- *shardRunner

	ctx       context.Context // bounds the transfer (PeerTimeout)
	cancel    context.CancelFunc
	progress  atomic.Int64 // Unix nanoseconds of the last piece written
	abandoned atomic.Bool

	mu  sync.Mutex
	why error

	// Set by the put before it closes q.
	eof  bool
	size int64

	// Outcome, valid once done is closed.
	sink shardSink // nil if it could not be opened
	loc  lazaret.ShardLoc
	err  error

	// collected is set by the put when it counted the runner's result.
	collected bool
}

// newShardRunner starts a runner that opens its sink with open (under a
// context bounded by PeerTimeout and cancelled on abandon) and reports on
// results, which must have room for it. It returns nil if the node is
// closing.
func (n *Node) newShardRunner(index, node int, local bool, results chan<- *shardRunner, open func(ctx context.Context) (shardSink, error)) *shardRunner {
	ctx, cancel := context.WithTimeout(n.cl.ctx, n.cl.cfg.PeerTimeout)
	r := &shardRunner{
		index: index, node: node, local: local,
		q: make(chan []byte, runnerBuffers), free: make(chan []byte, runnerBuffers),
		failed: make(chan struct{}), done: make(chan struct{}), results: results,
		ctx: ctx, cancel: cancel,
	}
	for range runnerBuffers {
		r.free <- nil
	}
	r.progress.Store(time.Now().UnixNano())
	if !n.cl.goBackground(func() { r.run(open) }) {
		cancel()
		return nil
	}
	return r
}

// run opens the sink, writes the pieces, finishes the sink after the last
// one and reports.
func (r *shardRunner) run(open func(ctx context.Context) (shardSink, error)) {
	defer func() {
		r.cancel()
		close(r.done)
		r.results <- r
	}()
	stopped := false
	stop := func(err error) {
		r.err = err
		if !stopped {
			stopped = true
			close(r.failed)
		}
	}
	sink, err := open(r.ctx)
	if err != nil {
		stop(err)
	} else {
		r.sink = sink
	}
	for p := range r.q {
		if !stopped {
			if r.abandoned.Load() {
				stop(r.abandonReason())
			} else if err := r.sink.write(p); err != nil {
				stop(r.reason(err))
			} else {
				r.progress.Store(time.Now().UnixNano())
			}
		}
		r.free <- p
	}
	if stopped {
		return
	}
	switch {
	case r.abandoned.Load():
		stop(r.abandonReason())
	case !r.eof:
		stop(errPutEnded)
	default:
		loc, err := r.sink.finish(r.size)
		if err != nil {
			stop(r.reason(err))
			return
		}
		r.loc = loc
	}
}

// reason returns why the runner stopped: the abandonment if it caused err.
func (r *shardRunner) reason(err error) error {
	if r.abandoned.Load() {
		return r.abandonReason()
	}
	return err
}

func (r *shardRunner) abandonReason() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.why
}

// abandon stops the runner: its transfer is cancelled and it reports why.
// It does nothing to a runner that has already ended.
func (r *shardRunner) abandon(why error) {
	r.mu.Lock()
	if r.why == nil {
		r.why = why
	}
	r.mu.Unlock()
	r.abandoned.Store(true)
	r.cancel()
}

// feed queues a copy of piece. If every buffer is taken it waits for one,
// but not for a straggler: a runner that has made no progress for grace
// while enough others (behind reports whether it is so) have written all
// they were given is abandoned. It fails only when ctx is cancelled; a
// runner that stopped is skipped.
func (r *shardRunner) feed(ctx context.Context, grace time.Duration, behind func(*shardRunner) bool, piece []byte) error {
	var buf []byte
	select {
	case buf = <-r.free:
	case <-r.failed:
		return nil
	default:
		var ok bool
		var err error
		if buf, ok, err = r.waitBuffer(ctx, grace, behind); !ok {
			return err
		}
	}
	buf = append(buf[:0], piece...)
	r.q <- buf // never blocks: q holds as many as there are buffers
	return nil
}

// waitBuffer waits for a free buffer; ok is false if the runner stopped or
// was abandoned, or ctx was cancelled (err). A runner that made no
// progress for grace is abandoned if behind says it lags the others;
// otherwise (everything is slow) the wait goes on, checked every grace/4.
func (r *shardRunner) waitBuffer(ctx context.Context, grace time.Duration, behind func(*shardRunner) bool) (buf []byte, ok bool, err error) {
	for {
		wait := grace - time.Since(time.Unix(0, r.progress.Load()))
		if wait <= 0 {
			if behind(r) {
				r.abandon(fmt.Errorf("%w: node %d took no data for %v while the others kept up: given up as a straggler", lazaret.ErrUnavailable, r.node, (grace - wait).Round(time.Millisecond)))
				return nil, false, nil
			}
			wait = grace / 4
		}
		t := time.NewTimer(wait)
		select {
		case buf = <-r.free:
			t.Stop()
			return buf, true, nil
		case <-r.failed:
			t.Stop()
			return nil, false, nil
		case <-ctx.Done():
			t.Stop()
			return nil, false, ctx.Err()
		case <-t.C:
		}
	}
}

// end tells the runner the body is complete (eof, with its size) or not,
// and lets it finish.
func (r *shardRunner) end(eof bool, size int64) {
	r.eof, r.size = eof, size
	close(r.q)
}

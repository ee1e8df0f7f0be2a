package replicator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/member"
)

// errDiscarded ends a runner whose shard the put does not keep.
var errDiscarded = errors.New("shard not needed: the put kept other copies or failed")

// shardPut is the set of shard runners of one put.
type shardPut struct {
	n       *Node
	id      lazaret.ID
	code    erasure.Code
	chunk   int
	runners []*shardRunner // one per target, by shard index
	results chan *shardRunner
}

// startShards starts a runner per target: shard i on targets[i].
func (n *Node) startShards(id lazaret.ID, code erasure.Code, chunk int, targets []member.Member) (*shardPut, error) {
	p := &shardPut{n: n, id: id, code: code, chunk: chunk, results: make(chan *shardRunner, len(targets))}
	self := n.cfg.NodeNumber
	for i, t := range targets {
		var r *shardRunner
		if t.Number == self {
			r = n.newShardRunner(i, t.Number, true, p.results, func(context.Context) (shardSink, error) {
				return n.newLocalSink(id, code, i)
			})
		} else {
			r = n.newShardRunner(i, t.Number, false, p.results, func(ctx context.Context) (shardSink, error) {
				return n.newRemoteSink(ctx, id, code, i, chunk, t.Number)
			})
		}
		if r == nil {
			p.end(false, 0)
			p.discardAll(nil)
			return nil, fmt.Errorf("%w: node closing", lazaret.ErrUnavailable)
		}
		p.runners = append(p.runners, r)
	}
	return p, nil
}

// end tells every runner the body is complete (eof) or abandoned.
func (p *shardPut) end(eof bool, size int64) {
	for _, r := range p.runners {
		r.end(eof, size)
	}
}

// collect waits for the shard runners' results and returns how many stored
// their shard. Once the write quorum is stored it waits at most grace more
// for the others (stragglers are adopted later, see adopt); it returns
// earlier when every runner answered or the quorum can no longer be
// reached, but never before this node's own shard answered (a put cannot
// do without this node's disk). Before the quorum, the runners' own bounds
// apply (PeerTimeout, cancelled on node close). The runners counted are
// marked collected.
func (p *shardPut) collect(ctx context.Context, quorum int, grace time.Duration) (int, error) {
	var local *shardRunner
	for _, r := range p.runners {
		if r.local {
			local = r
		}
	}
	var deadline <-chan time.Time
	expired := false
	stored, pending := 0, len(p.runners)
	for pending > 0 {
		if (stored+pending < quorum || expired) && (local == nil || local.collected) {
			break
		}
		if stored >= quorum && deadline == nil && !expired {
			t := time.NewTimer(grace)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case r := <-p.results:
			r.collected = true
			pending--
			if r.err == nil {
				stored++
			}
		case <-deadline:
			deadline, expired = nil, true
		case <-ctx.Done():
			return stored, ctx.Err()
		}
	}
	return stored, nil
}

// caughtUp returns how many runners other than r are still writing and
// have every piece they were given written: they wait for the put.
func (p *shardPut) caughtUp(r *shardRunner) int {
	n := 0
	for _, o := range p.runners {
		if o != r && len(o.free) == runnerBuffers && !o.abandoned.Load() {
			select {
			case <-o.failed:
			default:
				n++
			}
		}
	}
	return n
}

// storedLocs returns the locations of the collected shards, by index.
func (p *shardPut) storedLocs() []lazaret.ShardLoc {
	var locs []lazaret.ShardLoc
	for _, r := range p.runners {
		if r.collected && r.err == nil {
			locs = append(locs, r.loc)
		}
	}
	slices.SortFunc(locs, func(a, b lazaret.ShardLoc) int { return a.Index - b.Index })
	return locs
}

// localWriter returns this node's collected, stored shard writer, or nil.
func (p *shardPut) localWriter() *objstore.ShardWriter {
	for _, r := range p.runners {
		if r.local && r.collected && r.err == nil {
			return r.sink.(*localSink).w
		}
	}
	return nil
}

// failures returns why the collected runners that failed did, and which
// runners did not answer.
func (p *shardPut) failures() error {
	var errs []error
	for _, r := range p.runners {
		switch {
		case !r.collected:
			errs = append(errs, fmt.Errorf("shard %d on node %d: no answer in time", r.index, r.node))
		case r.err != nil:
			errs = append(errs, fmt.Errorf("shard %d on node %d: %w", r.index, r.node, r.err))
		}
	}
	return errors.Join(errs...)
}

// discardAll discards every runner's shard, except on the nodes in keep.
func (p *shardPut) discardAll(keep map[int]bool) {
	for _, r := range p.runners {
		p.discard(r, keep)
	}
}

// discard stops r and, once it has ended, removes what it stored: a local
// writer is aborted, a peer not in keep is asked to delete the message's
// shards. Both happen in the background.
func (p *shardPut) discard(r *shardRunner, keep map[int]bool) {
	r.abandon(errDiscarded)
	p.n.cl.goBackground(func() {
		<-r.done
		if r.sink == nil || (!r.local && keep[r.node]) {
			return
		}
		r.sink.abort()
	})
	// If the node is closing, the runner ends with its context; a local
	// writer left pending is swept when the store is next opened, a
	// peer's shard expires as an orphan.
}

// adopt waits in the background for a runner that had not answered when
// the message was committed, and adds its shard to the placement if it
// stored it.
func (p *shardPut) adopt(r *shardRunner) {
	if !p.n.cl.goBackground(func() { p.n.adoptLate(p.id, p.code, p.chunk, r) }) {
		r.abandon(errDiscarded)
	}
}

// adoptLate adds the shard of a runner that ended after its message was
// committed to the message's placement: a new metadata version, stored
// and pushed to every member, no longer under-protected once every shard
// is there. A shard that failed leaves the message under-protected; one
// the placement can no longer take (the message was deleted, or its
// placement changed meanwhile) is removed unless its node holds another
// shard of the message.
func (n *Node) adoptLate(id lazaret.ID, code erasure.Code, chunk int, r *shardRunner) {
	<-r.done
	if r.err != nil {
		n.log.Warn("put: late shard not stored; message stays under-protected", "id", id, "shard", r.index, "node", r.node, "err", r.err)
		if r.sink != nil {
			r.sink.abort()
		}
		return
	}
	ctx := n.cl.ctx
	if r.local {
		if err := n.store.CommitShards(ctx, r.sink.(*localSink).w); err != nil {
			n.log.Warn("put: committing a late local shard failed; message stays under-protected", "id", id, "shard", r.index, "err", err)
			r.sink.abort()
			return
		}
	}
	unlock := n.lock(id)
	added, holds := false, false
	m, err := n.store.Meta(id)
	if err == nil && m.State != lazaret.StateDeleted {
		pl := m.Placement
		taken := false
		for _, s := range pl.Shards {
			holds = holds || s.Node == r.node
			taken = taken || s.Index == r.loc.Index
		}
		if !taken && pl.K == code.K && pl.M == code.M && pl.ChunkSize == chunk {
			m.Placement.Shards = append(slices.Clone(pl.Shards), r.loc)
			slices.SortFunc(m.Placement.Shards, func(a, b lazaret.ShardLoc) int { return a.Index - b.Index })
			m.Placement.UnderProtected = len(m.Placement.Shards) < code.Shards()
			m.Version = n.versionAfter(m)
			m.Placement.Version = m.Version // see lazaret.Merge rule 4
			if err := n.store.PutMeta(ctx, m); err != nil {
				n.log.Warn("put: recording a late shard failed; message stays under-protected", "id", id, "shard", r.index, "node", r.node, "err", err)
			} else {
				n.changed(m) // push.go: to every member
				added = true
			}
		}
	}
	unlock()
	switch {
	case added:
		n.log.Info("put: late shard added to the placement", "id", id, "shard", r.index, "node", r.node)
	case holds:
	case r.local:
		// Only this write: a spread committing its own shard here since
		// (its placement names it) must keep it.
		w := r.sink.(*localSink).w
		if _, err := n.store.DeleteShard(id, r.index, w.Gen()); err != nil {
			n.log.Warn("put: removing a late local shard failed; retention will", "id", id, "err", err)
		}
	default:
		r.sink.abort()
	}
}

// placementNodes returns the nodes that hold a shard of m.
func placementNodes(m *lazaret.Metadata) map[int]bool {
	nodes := map[int]bool{}
	for _, s := range bodyPlacement(m).Shards {
		nodes[s.Node] = true
	}
	return nodes
}

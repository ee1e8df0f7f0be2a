package replicator

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
)

// Metadata everywhere
//
// Every metadata change a node makes (a put, learn, release, delete) is
// queued as it is stored and pushed to every other alive member with
// PushMeta; receivers merge with lazaret.Merge (the further state wins, then
// the newer version; a tombstone is final) and store the winner. The push is
// eager and best-effort: the queue is bounded, a failed push is logged, and
// what it misses (a member down, a full queue) is left to anti-entropy.

// pushBatch is the most changes sent in one PushMeta.
const pushBatch = 256

// pusher sends queued metadata changes to the other members.
type pusher struct {
	n       *Node
	q       chan *lazaret.Metadata
	dropped atomic.Int64
	queued  atomic.Int64 // changes accepted into the queue
	done    atomic.Int64 // changes whose push was attempted
}

func newPusher(n *Node, size int) *pusher {
	return &pusher{n: n, q: make(chan *lazaret.Metadata, size)}
}

// enqueue queues m (which must not be modified afterwards) for every other
// member, without blocking: when the queue is full the change is dropped.
func (p *pusher) enqueue(m *lazaret.Metadata) {
	select {
	case p.q <- m:
		p.queued.Add(1)
	default:
		if p.dropped.Add(1)%1000 == 1 {
			p.n.log.Warn("metadata push queue full; changes left to anti-entropy", "id", m.ID, "dropped", p.dropped.Load())
		}
	}
}

// run pushes batches until ctx is cancelled.
func (p *pusher) run(ctx context.Context) {
	for {
		var first *lazaret.Metadata
		select {
		case <-ctx.Done():
			return
		case first = <-p.q:
		}
		batch := []*lazaret.Metadata{first}
	more:
		for len(batch) < pushBatch {
			select {
			case m := <-p.q:
				batch = append(batch, m)
			default:
				break more
			}
		}
		p.push(ctx, batch)
		p.done.Add(int64(len(batch)))
	}
}

// push sends one batch to every alive member but this one, concurrently.
func (p *pusher) push(ctx context.Context, batch []*lazaret.Metadata) {
	cl := p.n.cl
	// The latest change per message is enough: receivers merge.
	latest := make(map[lazaret.ID]*lazaret.Metadata, len(batch))
	var order []lazaret.ID
	for _, m := range batch {
		if _, ok := latest[m.ID]; !ok {
			order = append(order, m.ID)
		}
		latest[m.ID] = lazaret.Merge(latest[m.ID], m)
	}
	req := &pb.PushMetaRequest{}
	for _, id := range order {
		req.Messages = append(req.Messages, wire.MessageToPB(latest[id]))
	}
	_, alive, self := cl.liveMembers()
	var wg sync.WaitGroup
	for _, mb := range alive {
		if mb.Number == self.Number {
			continue
		}
		wg.Go(func() {
			client, err := cl.peer(mb.Number)
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, cl.cfg.PeerTimeout)
				_, err = client.PushMeta(cctx, req)
				cancel()
				err = wire.PeerError(err)
			}
			if err != nil && ctx.Err() == nil {
				p.n.log.Warn("metadata push failed; left to anti-entropy", "node", mb.Number, "messages", len(req.Messages), "err", err)
			}
		})
	}
	wg.Wait()
}

// pushToHolders pushes a new message's metadata to the other nodes that
// hold its shards, concurrently, before the put is acknowledged, so that
// losing this node right afterwards does not lose the message: it waits
// for every holder's answer, at most StragglerGrace. Fewer than quorum-1
// holders storing it (when there are that many) is logged and counted
// (Status health); the pushes still running go on in the background, and
// the asynchronous push and anti-entropy catch up the rest. It returns how
// many holders stored the metadata.
func (n *Node) pushToHolders(m *lazaret.Metadata, quorum int) int {
	cl := n.cl
	var holders []int
	for node := range placementNodes(m) {
		if node != n.cfg.NodeNumber {
			holders = append(holders, node)
		}
	}
	if len(holders) == 0 {
		return 0
	}
	req := &pb.PushMetaRequest{Messages: []*pb.Message{wire.MessageToPB(m)}}
	answers := make(chan error, len(holders))
	for _, node := range holders {
		started := cl.goBackground(func() {
			client, err := cl.peer(node)
			if err == nil {
				ctx, cancel := context.WithTimeout(cl.ctx, cl.cfg.PeerTimeout)
				_, err = client.PushMeta(ctx, req)
				cancel()
				err = wire.PeerError(err)
			}
			if err != nil {
				err = fmt.Errorf("node %d: %w", node, err)
			}
			answers <- err
		})
		if !started {
			answers <- fmt.Errorf("node %d: %w: node closing", node, lazaret.ErrUnavailable)
		}
	}
	timer := time.NewTimer(cl.cfg.StragglerGrace)
	defer timer.Stop()
	acked := 0
	var errs []error
wait:
	for range holders {
		select {
		case err := <-answers:
			if err != nil {
				errs = append(errs, err)
				continue
			}
			acked++
		case <-timer.C:
			errs = append(errs, fmt.Errorf("%d holders did not answer within %v", len(holders)-acked-len(errs), cl.cfg.StragglerGrace))
			break wait
		}
	}
	if need := min(quorum-1, len(holders)); acked < need {
		cl.metaShort.Add(1)
		n.log.Warn("put: acknowledged with the metadata on fewer shard holders than the write quorum wants; the asynchronous push and anti-entropy will retry",
			"id", m.ID, "stored_on", acked, "want", need, "err", errors.Join(errs...))
	} else if len(errs) > 0 {
		n.log.Info("put: metadata not stored on every shard holder yet", "id", m.ID, "stored_on", acked, "holders", len(holders), "err", errors.Join(errs...))
	}
	return acked
}

// changed is called with every metadata record this node stored (under the
// message's lock): it keeps the under-protected set and queues the record
// for the other members. No-op on a single node.
func (n *Node) changed(m *lazaret.Metadata) {
	if n.cl == nil {
		return
	}
	n.trackUnder(m)
	n.cl.push.enqueue(m.Clone())
}

// removeShardsEverywhere asks every node of m's placement to drop its
// shards of m (the pushed tombstone does the same on every receiver; this
// reaches the holders directly). Failures are logged: retention removes the
// shards of tombstoned messages later. No-op on a single node.
func (n *Node) removeShardsEverywhere(ctx context.Context, m *lazaret.Metadata) {
	if n.cl == nil {
		return
	}
	nodes := map[int]bool{}
	for _, s := range bodyPlacement(m).Shards {
		if s.Node != n.cfg.NodeNumber {
			nodes[s.Node] = true
		}
	}
	var wg sync.WaitGroup
	for node := range nodes {
		wg.Go(func() {
			client, err := n.cl.peer(node)
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, n.cl.cfg.PeerTimeout)
				_, err = client.DeleteShards(cctx, &pb.DeleteShardsRequest{Id: string(m.ID)})
				cancel()
				err = wire.PeerError(err)
			}
			if err != nil {
				n.log.Warn("delete: removing shards on a peer failed; its copy of the tombstone or retention will", "id", m.ID, "node", node, "err", err)
			}
		})
	}
	wg.Wait()
}

// applyPushed merges pushed metadata records into the local store and
// returns how many changed it. A record that loses to the stored one
// changes nothing; a tombstone also drops this node's shards of the
// message.
func (n *Node) applyPushed(ctx context.Context, ms []*lazaret.Metadata) (int, error) {
	applied := 0
	var errs []error
	for _, m := range ms {
		ok, err := n.mergeOne(ctx, m)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if ok {
			applied++
		}
	}
	return applied, errors.Join(errs...)
}

// mergeOne merges one pushed record; it reports whether the store changed.
func (n *Node) mergeOne(ctx context.Context, in *lazaret.Metadata) (bool, error) {
	const op = "push"
	if _, err := lazaret.ParseID(string(in.ID)); err != nil {
		return false, &lazaret.Error{Op: op, Err: err}
	}
	n.hlc.Observe(in.Version)
	n.hlc.Observe(in.Placement.Version) // a placement can be newer than the record carrying it (merge rule 4)
	unlock := n.lock(in.ID)
	defer unlock()
	old, err := n.store.Meta(in.ID)
	if err != nil && !errors.Is(err, lazaret.ErrNotFound) {
		return false, err
	}
	if err != nil {
		old = nil
	}
	win := lazaret.Merge(old, in)
	if win == old {
		return false, nil
	}
	if err := n.store.PutMeta(ctx, win); err != nil {
		return false, &lazaret.Error{Op: op, ID: in.ID, Err: lazaret.Temporary(err)}
	}
	if n.cl != nil {
		n.trackUnder(win)
	}
	if win.State == lazaret.StateDeleted {
		if err := n.store.DeleteShards(in.ID); err != nil {
			n.log.Warn("push: removing shards of a deleted message failed; retention will", "id", in.ID, "err", err)
		}
	}
	return true, nil
}

package replicator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/member"
)

// clusterNode is the cluster side of a Node: membership, peers, the code
// policy, the metadata pusher and the figures the status table shows. It is
// nil on a single node.
type clusterNode struct {
	cfg     ClusterConfig // with defaults applied
	members member.Membership
	peers   member.PeerDialer
	policy  erasure.Code // zero: by cluster size
	codecs  erasure.Codecs
	push    *pusher
	ae      *antiEntropy // anti-entropy and repair (antientropy.go, repair.go)

	corrupt atomic.Int64 // shards that failed a checksum when read
	// metaShort counts puts acknowledged before their metadata reached
	// quorum-1 of the other shard holders (see pushToHolders).
	metaShort atomic.Int64

	// ctx lives as long as the node: shard streams and pushes that may
	// outlive the put that started them run under it.
	ctx context.Context

	mu    sync.Mutex
	under map[lazaret.ID]underEntry // under-protected messages taken in here
	bad   map[shardKey]time.Time    // shards that recently failed a checksum

	wg      sync.WaitGroup
	bgMu    sync.Mutex
	closing bool // no more background work (stopCluster waits)
}

// underEntry is what the status needs of an under-protected message.
type underEntry struct {
	size     int64
	received time.Time
}

// shardKey names one shard of one message.
type shardKey struct {
	id    lazaret.ID
	index int
}

// Bad-shard memory: a shard that failed its checksum is tried last for a
// while, so a retried read does not stumble on it again.
const (
	badShardTTL = 10 * time.Minute
	maxBadShard = 10000
)

// startCluster sets up the cluster side of n if cfg.Cluster has members.
// Background work stops when ctx is cancelled; Close waits for it.
func (n *Node) startCluster(ctx context.Context) error {
	cc := n.cfg.Cluster
	if cc.Members == nil {
		return nil
	}
	policy, err := erasure.ParsePolicy(cc.Policy)
	if err != nil {
		return err
	}
	cl := &clusterNode{
		cfg: cc.withDefaults(), members: cc.Members, peers: cc.Peers, policy: policy,
		under: make(map[lazaret.ID]underEntry), bad: make(map[shardKey]time.Time),
		ctx: ctx,
	}
	n.cl = cl
	cl.push = newPusher(n, cl.cfg.PushQueue)
	if err := n.startAntiEntropy(ctx); err != nil {
		return err
	}
	cl.wg.Add(2)
	go func() {
		defer cl.wg.Done()
		cl.push.run(ctx)
	}()
	go func() {
		defer cl.wg.Done()
		if err := n.scanUnderProtected(ctx); err != nil && ctx.Err() == nil {
			n.log.Error("scanning for under-protected messages failed; status undercounts them", "err", err)
		}
	}()
	return nil
}

// stopCluster waits for the cluster's background work after n.stop.
func (n *Node) stopCluster() {
	if n.cl != nil {
		n.cl.bgMu.Lock()
		n.cl.closing = true
		n.cl.bgMu.Unlock()
		n.cl.wg.Wait()
	}
}

// goBackground runs fn in a goroutine that Close waits for. Once the node is
// closing it runs nothing and returns false. fn should watch cl.ctx, which
// is cancelled when the node closes.
func (cl *clusterNode) goBackground(fn func()) bool {
	cl.bgMu.Lock()
	defer cl.bgMu.Unlock()
	if cl.closing {
		return false
	}
	cl.wg.Go(fn)
	return true
}

// scanUnderProtected finds the under-protected messages taken in by this
// node, once at start; changes keep the set current afterwards.
func (n *Node) scanUnderProtected(ctx context.Context) error {
	q := lazaret.ListQuery{Limit: 1000}
	for {
		page, err := n.store.List(ctx, q)
		if err != nil {
			return err
		}
		for _, m := range page.Messages {
			if !m.Placement.UnderProtected || m.Node != n.cfg.NodeNumber {
				continue
			}
			// Re-read under the message's lock: a change made since the
			// page was read is already tracked and must not be undone.
			unlock := n.lock(m.ID)
			cur, err := n.store.Meta(m.ID)
			if err == nil {
				n.trackUnder(cur)
			}
			unlock()
		}
		if page.NextCursor == "" {
			return nil
		}
		q.Cursor = page.NextCursor
	}
}

// trackUnder updates the under-protected set with m's current state. Call
// it under m's lock after storing m. Every metadata change passes here, so
// it also keeps anti-entropy's set and the repair queue current (noteMeta).
func (n *Node) trackUnder(m *lazaret.Metadata) {
	cl := n.cl
	if cl == nil || m == nil {
		return
	}
	n.noteMeta(m)
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if m.Placement.UnderProtected && m.State != lazaret.StateDeleted && m.Node == n.cfg.NodeNumber {
		cl.under[m.ID] = underEntry{size: m.Size, received: m.Received}
	} else {
		delete(cl.under, m.ID)
	}
}

// UnderProtected returns the messages taken in by this node that are stored
// with fewer shards than their code wants (count, body bytes and the
// receive time of the oldest; zero time if none). Summed over the nodes of
// a cluster they count each such message once. Zero on a single node.
func (n *Node) UnderProtected() (count, bytes int64, oldest time.Time) {
	if n.cl == nil {
		return 0, 0, time.Time{}
	}
	n.cl.mu.Lock()
	defer n.cl.mu.Unlock()
	for _, e := range n.cl.under {
		count++
		bytes += e.size
		if oldest.IsZero() || e.received.Before(oldest) {
			oldest = e.received
		}
	}
	return count, bytes, oldest
}

// CorruptShards returns how many shards failed a checksum (CRC32C of a
// chunk, or SHA-256 of the shard against its placement) while this node read
// them since it started, its own or fetched from peers.
func (n *Node) CorruptShards() int64 {
	if n.cl == nil {
		return 0
	}
	return n.cl.corrupt.Load()
}

// PushBacklog returns how many metadata changes wait to be pushed and how
// many were dropped because the queue was full (left to anti-entropy).
func (n *Node) PushBacklog() (queued int, dropped int64) {
	if n.cl == nil {
		return 0, 0
	}
	return len(n.cl.push.q), n.cl.push.dropped.Load()
}

// markBad remembers a shard that failed its checksum.
func (cl *clusterNode) markBad(id lazaret.ID, index int, now time.Time) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if len(cl.bad) >= maxBadShard {
		clear(cl.bad)
	}
	cl.bad[shardKey{id, index}] = now
}

// isBad reports whether a shard failed its checksum recently.
func (cl *clusterNode) isBad(id lazaret.ID, index int, now time.Time) bool {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	t, ok := cl.bad[shardKey{id, index}]
	if ok && now.Sub(t) > badShardTTL {
		delete(cl.bad, shardKey{id, index})
		return false
	}
	return ok
}

// liveMembers returns every member and the subset that is alive, with this
// node always counted alive (it is running this code).
func (cl *clusterNode) liveMembers() (all, alive []member.Member, self member.Member) {
	self = cl.members.Self()
	all = slices.DeleteFunc(cl.members.Members(), func(m member.Member) bool {
		return m.Number != self.Number && cl.isRemoved(m.Number) // retired: out of placement
	})
	foundSelf := false
	for i, m := range all {
		if m.Number == self.Number {
			foundSelf = true
			all[i].State = member.Alive
			m.State = member.Alive
		}
		if m.State == member.Alive {
			alive = append(alive, m)
		}
	}
	if !foundSelf {
		self.State = member.Alive
		all = append(all, self)
		alive = append(alive, self)
	}
	return all, alive, self
}

// isAlive reports whether node number is alive as far as membership knows.
func (cl *clusterNode) isAlive(number int) bool {
	if number == cl.members.Self().Number {
		return true
	}
	for _, m := range cl.members.Members() {
		if m.Number == number {
			return m.State == member.Alive
		}
	}
	return false
}

// peer returns a client for node number.
func (cl *clusterNode) peer(number int) (pb.PeerClient, error) {
	c, err := cl.peers.Peer(number)
	if err != nil {
		if !errors.Is(err, lazaret.ErrUnavailable) {
			err = fmt.Errorf("%w: node %d: %v", lazaret.ErrUnavailable, number, err)
		}
		return nil, err
	}
	return c, nil
}

// countCorrupt counts a shard that failed a checksum.
func (n *Node) countCorrupt() {
	if n.cl != nil {
		n.cl.corrupt.Add(1)
	}
}

// ShortMetadataPuts returns how many puts were acknowledged before their
// metadata reached enough shard holders since the node started (0 on a
// single node).
func (n *Node) ShortMetadataPuts() int64 {
	if n.cl == nil {
		return 0
	}
	return n.cl.metaShort.Load()
}

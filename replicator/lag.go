package replicator

import (
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
)

// Replication lag: the figures `lazaret status`, the metrics and /health
// show about anti-entropy and repair on this node.

// RepairQueue returns how many messages wait for a repair check, are being
// checked, or wait for a retry. Zero on a single node.
func (n *Node) RepairQueue() int {
	if n.cl == nil || n.cl.ae == nil {
		return 0
	}
	return n.cl.ae.rep.queueLen()
}

// Repaired returns how many shards repair wrote since start and their
// bytes, and how many repair checks failed (each is retried).
func (n *Node) Repaired() (shards, bytes, failures int64) {
	if n.cl == nil || n.cl.ae == nil {
		return 0, 0, 0
	}
	r := n.cl.ae.rep
	return r.repaired.Load(), r.repairedBytes.Load(), r.failures.Load()
}

// PeerSyncs returns the last reconciliation with each peer this node has
// reconciled with (either side starting it), by node number.
func (n *Node) PeerSyncs() []PeerSync {
	if n.cl == nil || n.cl.ae == nil {
		return nil
	}
	ae := n.cl.ae
	ae.mu.Lock()
	defer ae.mu.Unlock()
	out := make([]PeerSync, 0, len(ae.peers))
	for _, p := range ae.peers {
		out = append(out, *p)
	}
	slices.SortFunc(out, func(a, b PeerSync) int { return a.Node - b.Node })
	return out
}

// ReplicationLag returns every lag figure of this node; nil on a single
// node.
func (n *Node) ReplicationLag() *lazaret.ReplicationLag {
	if n.cl == nil {
		return nil
	}
	count, bytes, oldest := n.UnderProtected()
	shards, rbytes, _ := n.Repaired()
	lag := &lazaret.ReplicationLag{
		UnderProtected: count, UnderProtectedBytes: bytes, OldestUnderProtected: oldest,
		RepairQueue: int64(n.RepairQueue()), Repaired: shards, RepairedBytes: rbytes,
		CorruptShards: n.CorruptShards(),
	}
	for _, r := range n.RemovedNodes() {
		lag.RemovedNodes = append(lag.RemovedNodes, r.Number)
	}
	for _, p := range n.PeerSyncs() {
		lag.Peers = append(lag.Peers, lazaret.PeerSyncStatus{
			Node: p.Node, LastSuccess: p.LastSuccess, Differences: int64(p.Differences), Bytes: p.Bytes,
			LastAttempt: p.LastAttempt, LastError: p.LastError,
		})
	}
	return lag
}

// lagToPB fills the lag fields of a NodeStatus answer.
func (n *Node) lagToPB(resp *pb.NodeStatusResponse) {
	_, rbytes, _ := n.Repaired()
	resp.RepairQueue = int64(n.RepairQueue())
	resp.RepairedBytes = rbytes
	resp.CorruptShards = n.CorruptShards()
	for _, r := range n.RemovedNodes() {
		resp.RemovedNodes = append(resp.RemovedNodes, int32(r.Number))
	}
	for _, p := range n.PeerSyncs() {
		ps := &pb.PeerSync{Node: int32(p.Node), Differences: int64(p.Differences), Bytes: p.Bytes, LastError: p.LastError}
		if !p.LastSuccess.IsZero() {
			ps.LastSuccess = timestamppb.New(p.LastSuccess)
		}
		if !p.LastAttempt.IsZero() {
			ps.LastAttempt = timestamppb.New(p.LastAttempt)
		}
		resp.Peers = append(resp.Peers, ps)
	}
}

package replicator

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
	"github.com/lazaret/lazaret/replicator/erasure"
)

// openCluster returns a reader of m's body on a member of a cluster: it
// reads any K healthy shards of the placement, local ones first, then the
// data shards of alive members (no decoding needed), then the rest; a shard
// that cannot be read or fails a checksum is logged, counted (corruption)
// and replaced by another. Memory is bounded by one stripe. An
// under-protected whole copy is read from this node's store or from the
// node that holds it (GetShard 0 of the 1+0 code).
func (n *Node) openCluster(ctx context.Context, m *lazaret.Metadata) (*lazaret.Metadata, io.ReadCloser, error) {
	pl := bodyPlacement(m)
	c := erasure.Code{K: pl.K, M: pl.M}
	if err := c.Validate(); err != nil || len(pl.Shards) == 0 {
		return nil, nil, &lazaret.Error{Op: "get", ID: m.ID, Err: fmt.Errorf("%w: placement %v with %d shards", lazaret.ErrCorrupt, c, len(pl.Shards))}
	}
	enc, err := n.cl.codecs.Get(c)
	if err != nil {
		return nil, nil, &lazaret.Error{Op: "get", ID: m.ID, Err: err}
	}
	r := erasure.NewStripeReader(ctx, m.ID, pl, m.Size, m.SHA256, enc, n.shardCandidates(m.ID, pl), n.openPlacedShard(m.ID, c, m.Size), n.shardFailed(m.ID))
	// Open K shards now, so an unreadable message fails here rather than
	// on the first Read.
	if err := r.Fill(); err != nil {
		r.Close()
		return nil, nil, err
	}
	return m, r, nil
}

// openClusterFresh is openCluster, once more with the peers' record when
// too few shards of m's placement are readable or good: this node may hold an
// older placement than the shards (a spread or fill, or a late shard,
// published since; its push may still be on the way). See meta_peers.go.
func (n *Node) openClusterFresh(ctx context.Context, m *lazaret.Metadata) (*lazaret.Metadata, io.ReadCloser, error) {
	got, rc, err := n.openCluster(ctx, m)
	// A stale placement fails as unavailable shards, or as corrupt ones
	// (the holder's shard is a newer placement's, with another SHA-256).
	if err == nil || ctx.Err() != nil || !(errors.Is(err, lazaret.ErrUnavailable) || errors.Is(err, lazaret.ErrCorrupt)) {
		return got, rc, err
	}
	if ferr := n.fetchFromPeers(ctx, "get", m.ID); ferr != nil {
		return nil, nil, err
	}
	cur, lerr := n.live("get", m.ID)
	if lerr != nil {
		return nil, nil, lerr
	}
	if cur.Placement.Version == m.Placement.Version && cur.Placement.K == m.Placement.K && len(cur.Placement.Shards) == len(m.Placement.Shards) {
		return nil, nil, err // nothing newer to read by
	}
	n.log.Info("get: read again by a newer placement a peer holds", "id", m.ID, "err", err)
	return n.openCluster(ctx, cur)
}

// bodyPlacement returns m's placement; the zero Placement (a message stored
// by a single node) is a whole copy, shard 0 of a 1+0 code, on m.Node.
func bodyPlacement(m *lazaret.Metadata) lazaret.Placement {
	if m.Placement.K > 0 {
		return m.Placement
	}
	return lazaret.Placement{K: 1, Shards: []lazaret.ShardLoc{{Index: 0, Node: m.Node, Size: m.Size, SHA256: m.SHA256}}}
}

// shardCandidates orders the shards of pl for reading: local ones, then
// those on alive members, then the rest (members down, shards that failed a
// checksum recently); within each group by index, data shards first.
func (n *Node) shardCandidates(id lazaret.ID, pl lazaret.Placement) []lazaret.ShardLoc {
	now := n.clock.Now()
	self := n.cfg.NodeNumber
	rank := func(l lazaret.ShardLoc) int {
		switch {
		case n.cl.isBad(id, l.Index, now):
			return 3
		case l.Node == self:
			return 0
		case n.cl.isAlive(l.Node):
			return 1
		}
		return 2
	}
	out := slices.Clone(pl.Shards)
	slices.SortStableFunc(out, func(a, b lazaret.ShardLoc) int {
		if c := cmp.Compare(rank(a), rank(b)); c != 0 {
			return c
		}
		return cmp.Compare(a.Index, b.Index)
	})
	return out
}

// shardFailed returns the stripeReader callback that logs and counts a
// shard given up on.
func (n *Node) shardFailed(id lazaret.ID) erasure.ShardFailure {
	return func(loc lazaret.ShardLoc, err error, corrupt bool) {
		if corrupt {
			n.cl.corrupt.Add(1)
			n.cl.markBad(id, loc.Index, n.clock.Now())
			n.log.Error("shard failed its checksum; reading another", "id", id, "shard", loc.Index, "node", loc.Node, "err", err)
			if loc.Node == n.cfg.NodeNumber {
				n.repairHint(id) // repair.go rebuilds it
			}
			return
		}
		n.log.Warn("shard unreadable; reading another", "id", id, "shard", loc.Index, "node", loc.Node, "err", err)
	}
}

// openPlacedShard returns the opener of id's shards of code c (body size
// bytes): from the local store when the placement puts the shard here,
// else over GetShard.
func (n *Node) openPlacedShard(id lazaret.ID, c erasure.Code, size int64) erasure.ShardOpener {
	return func(ctx context.Context, loc lazaret.ShardLoc) (io.ReadCloser, error) {
		if loc.Node == n.cfg.NodeNumber {
			info, rc, err := n.store.OpenShard(id, loc.Index)
			if err != nil {
				return nil, err
			}
			if info.Size != loc.Size || info.SHA256 != loc.SHA256 {
				rc.Close()
				return nil, &lazaret.Error{Op: "get", ID: id, Err: fmt.Errorf("shard %d: %w: stored shard (%d bytes, SHA-256 %x) is not the placed one (%d bytes, %x)", loc.Index, lazaret.ErrCorrupt, info.Size, info.SHA256[:8], loc.Size, loc.SHA256[:8])}
			}
			return rc, nil
		}
		return n.openRemoteShard(ctx, id, loc, c, size)
	}
}

// openRemoteShard starts a GetShard stream and waits for its header. A
// shard of another code than c is another placement's (this node's
// record is older or newer than the holder's): unavailable here, so that
// the reader tries another shard, or Open a fresher record, rather than
// reading it to the end to find its checksum wrong.
func (n *Node) openRemoteShard(ctx context.Context, id lazaret.ID, loc lazaret.ShardLoc, c erasure.Code, size int64) (io.ReadCloser, error) {
	client, err := n.cl.peer(loc.Node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	stream, err := client.GetShard(ctx, &pb.GetShardRequest{Id: string(id), Index: int32(loc.Index)})
	if err != nil {
		cancel()
		return nil, wire.PeerError(err)
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, wire.PeerError(err)
	}
	h := first.GetHeader()
	if h == nil || h.GetId() != string(id) || int(h.GetIndex()) != loc.Index {
		cancel()
		return nil, fmt.Errorf("%w: node %d answered GetShard %s/%d with another header", lazaret.ErrUnavailable, loc.Node, id, loc.Index)
	}
	if (erasure.Code{K: int(h.GetK()), M: int(h.GetM())}) != c || h.GetBodySize() != size {
		cancel()
		return nil, fmt.Errorf("%w: node %d holds shard %s/%d of %d+%d (body %d bytes), the placement read is %v (%d bytes)", lazaret.ErrUnavailable, loc.Node, id, loc.Index, h.GetK(), h.GetM(), h.GetBodySize(), c, size)
	}
	return &remoteShardReader{stream: stream, cancel: cancel}, nil
}

// remoteShardReader reads the chunks of a GetShard stream.
type remoteShardReader struct {
	stream pb.Peer_GetShardClient
	cancel context.CancelFunc
	buf    []byte
	err    error
}

func (r *remoteShardReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		msg, err := r.stream.Recv()
		if err == io.EOF {
			r.err = io.EOF
			continue
		}
		if err != nil {
			r.err = wire.PeerError(err)
			continue
		}
		r.buf = msg.GetChunk()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *remoteShardReader) Close() error {
	r.cancel()
	return nil
}

package replicator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
	"github.com/lazaret/lazaret/replicator/erasure"
)

// maxWireChunk caps the data in one PutShard/GetShard message, well below
// gRPC's default 4 MiB message limit.
const maxWireChunk = 1 << 20

// shardSink receives one shard of a put (or the whole body, for the local
// whole copy). A sink is used by one goroutine at a time: its shardRunner,
// then whoever waited for the runner to end.
type shardSink interface {
	// write appends a piece; the slice may be reused once write returns.
	write(p []byte) error
	// finish ends the shard and returns where it is stored. A remote
	// shard is fsync'd when finish returns; a local one is committed
	// later, with the metadata (Commit) or on its own (CommitShards).
	finish(bodySize int64) (lazaret.ShardLoc, error)
	// abort discards the shard, best effort: a local writer is aborted; a
	// peer that may have stored the shard is asked to delete exactly this
	// write of it (what it misses expires as an orphan). Never another
	// writer's shard: a placement may name that one.
	abort()
}

// localSink writes a shard into this node's store.
type localSink struct {
	w    *objstore.ShardWriter
	node int
}

func (n *Node) newLocalSink(id lazaret.ID, c erasure.Code, index int) (shardSink, error) {
	w, err := n.store.NewShardWriter(id, objstore.ShardSpec{K: c.K, M: c.M, Index: index, BodySize: -1})
	if err != nil {
		return nil, err
	}
	return &localSink{w: w, node: n.cfg.NodeNumber}, nil
}

func (s *localSink) write(p []byte) error {
	_, err := s.w.Write(p)
	return err
}

func (s *localSink) finish(bodySize int64) (lazaret.ShardLoc, error) {
	if s.w.Spec().K > 1 {
		if err := s.w.SetBodySize(bodySize); err != nil {
			return lazaret.ShardLoc{}, err
		}
	}
	info, err := s.w.Finish()
	if err != nil {
		return lazaret.ShardLoc{}, err
	}
	return lazaret.ShardLoc{Index: info.Index, Node: s.node, Size: info.Size, SHA256: info.SHA256}, nil
}

func (s *localSink) abort() { _ = s.w.Abort() }

// remoteSink streams a shard to a peer over PutShard.
type remoteSink struct {
	n       *Node
	id      lazaret.ID
	index   int
	node    int
	gen     uint64 // names this write on the peer (abort)
	stream  pb.Peer_PutShardClient
	sha     hash.Hash
	size    int64
	trailer bool // the trailer was sent: the peer may have stored the shard
}

// newRemoteSink opens a PutShard stream to node under ctx (which bounds the
// whole transfer) and sends the shard header.
func (n *Node) newRemoteSink(ctx context.Context, id lazaret.ID, c erasure.Code, index, chunk, node int) (shardSink, error) {
	client, err := n.cl.peer(node)
	if err != nil {
		return nil, err
	}
	stream, err := client.PutShard(ctx)
	if err != nil {
		return nil, wire.PeerError(err)
	}
	gen := objstore.NewGen()
	hdr := &pb.ShardHeader{Id: string(id), Index: int32(index), K: int32(c.K), M: int32(c.M), BodySize: -1, ChunkSize: int32(chunk), Generation: gen}
	if err := stream.Send(&pb.PutShardRequest{Part: &pb.PutShardRequest_Header{Header: hdr}}); err != nil {
		s := &remoteSink{stream: stream}
		return nil, s.recvErr(err)
	}
	return &remoteSink{n: n, id: id, index: index, node: node, gen: gen, stream: stream, sha: sha256.New()}, nil
}

func (s *remoteSink) write(p []byte) error {
	s.sha.Write(p)
	s.size += int64(len(p))
	for len(p) > 0 {
		c := p[:min(len(p), maxWireChunk)]
		p = p[len(c):]
		if err := s.stream.Send(&pb.PutShardRequest{Part: &pb.PutShardRequest_Chunk{Chunk: c}}); err != nil {
			return s.recvErr(err)
		}
	}
	return nil
}

// recvErr turns a failed Send into the peer's reason: gRPC reports a
// stream the server ended as io.EOF on Send, and the status on Recv.
func (s *remoteSink) recvErr(err error) error {
	if err == io.EOF {
		if _, rerr := s.stream.CloseAndRecv(); rerr != nil {
			return wire.PeerError(rerr)
		}
	}
	return wire.PeerError(err)
}

func (s *remoteSink) finish(bodySize int64) (lazaret.ShardLoc, error) {
	var sum [32]byte
	s.sha.Sum(sum[:0])
	tr := &pb.ShardTrailer{Size: s.size, BodySize: bodySize, Sha256: sum[:]}
	s.trailer = true
	if err := s.stream.Send(&pb.PutShardRequest{Part: &pb.PutShardRequest_Trailer{Trailer: tr}}); err != nil {
		return lazaret.ShardLoc{}, s.recvErr(err)
	}
	resp, err := s.stream.CloseAndRecv()
	if err != nil {
		return lazaret.ShardLoc{}, wire.PeerError(err)
	}
	if resp.GetSize() != s.size || !bytes.Equal(resp.GetSha256(), sum[:]) {
		return lazaret.ShardLoc{}, fmt.Errorf("%w: node %d stored shard %d as %d bytes SHA-256 %x, sent %d bytes %x", lazaret.ErrCorrupt, s.node, s.index, resp.GetSize(), resp.GetSha256(), s.size, sum)
	}
	return lazaret.ShardLoc{Index: s.index, Node: s.node, Size: s.size, SHA256: sum}, nil
}

// abort asks the peer to delete this write of the shard if it may have
// stored it; a stream that ended before its trailer left nothing there
// (the peer aborts its writer). Deleting by generation leaves every other
// shard of the message alone, including one another writer (a spread or
// fill of the same message) stored under the same index since: deleting
// all of the message's shards there removed placed shards (issue 10).
func (s *remoteSink) abort() {
	if !s.trailer {
		return
	}
	client, err := s.n.cl.peer(s.node)
	if err == nil {
		ctx, cancel := context.WithTimeout(s.n.cl.ctx, s.n.cl.cfg.PeerTimeout)
		_, err = client.DeleteShards(ctx, &pb.DeleteShardsRequest{Id: string(s.id), Index: int32(s.index), Generation: s.gen})
		cancel()
		err = wire.PeerError(err)
	}
	if err != nil {
		s.n.log.Info("put: removing a shard that is not in the placement failed; retention removes it (as an orphan if the message has no metadata there)", "id", s.id, "node", s.node, "err", err)
	}
}

package replicator

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
)

// PeerHandler serves the data side of the peer API (lazaretpb.PeerServer)
// for a Node: PutShard, GetShard, DeleteShards, PushMeta and NodeStatus.
//
// It deliberately does not embed lazaretpb.UnimplementedPeerServer and has
// no Join method: the membership side adds Join and composes the two. Embed
// *PeerHandler and put UnimplementedPeerServer one level deeper, so that
// PeerHandler's methods win:
//
//	type joinServer struct{ lazaretpb.UnimplementedPeerServer }
//	type peerServer struct {
//		*replicator.PeerHandler
//		joinServer
//	}
//	func (s *peerServer) Join(ctx context.Context, r *lazaretpb.JoinRequest) (*lazaretpb.JoinResponse, error) { ... }
//
// Authentication (mutual TLS under the cluster CA) is the server's job.
type PeerHandler struct {
	n *Node
}

// PeerHandler returns the handler of n's peer API.
func (n *Node) PeerHandler() *PeerHandler { return &PeerHandler{n: n} }

// PutShard stores one shard: a ShardHeader, data chunks, a ShardTrailer.
// The shard is committed (fsync'd) without metadata, which arrives by
// PushMeta, before the response; its size and SHA-256 must match the
// trailer's, else nothing is stored.
func (h *PeerHandler) PutShard(stream grpc.ClientStreamingServer[pb.PutShardRequest, pb.PutShardResponse]) error {
	info, err := h.putShard(stream)
	if err != nil {
		return wire.Status(err)
	}
	return stream.SendAndClose(&pb.PutShardResponse{Sha256: info.SHA256[:], Size: info.Size})
}

func (h *PeerHandler) putShard(stream grpc.ClientStreamingServer[pb.PutShardRequest, pb.PutShardResponse]) (objstore.ShardInfo, error) {
	const op = "peer.putshard"
	var none objstore.ShardInfo
	first, err := stream.Recv()
	if err != nil {
		return none, &lazaret.Error{Op: op, Err: err}
	}
	hdr := first.GetHeader()
	if hdr == nil {
		return none, &lazaret.Error{Op: op, Err: fmt.Errorf("%w: stream must start with a shard header", lazaret.ErrInvalidArgument)}
	}
	id, err := lazaret.ParseID(hdr.GetId())
	if err != nil {
		return none, &lazaret.Error{Op: op, Err: err}
	}
	spec := objstore.ShardSpec{K: int(hdr.GetK()), M: int(hdr.GetM()), Index: int(hdr.GetIndex()), BodySize: hdr.GetBodySize(), Gen: hdr.GetGeneration()}
	if spec.BodySize < 0 {
		spec.BodySize = -1
	}
	w, err := h.n.store.NewShardWriter(id, spec)
	if err != nil {
		return none, err
	}
	defer w.Abort() // no-op once committed
	for {
		msg, err := stream.Recv()
		if err == io.EOF {
			return none, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: stream ended without a trailer", lazaret.ErrInvalidArgument)}
		}
		if err != nil {
			return none, &lazaret.Error{Op: op, ID: id, Err: err}
		}
		if c := msg.GetChunk(); c != nil {
			if _, err := w.Write(c); err != nil {
				return none, lazaret.Temporary(err)
			}
			continue
		}
		tr := msg.GetTrailer()
		if tr == nil {
			return none, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: unexpected message in shard stream", lazaret.ErrInvalidArgument)}
		}
		if spec.BodySize == -1 && spec.K > 1 {
			if err := w.SetBodySize(tr.GetBodySize()); err != nil {
				return none, err
			}
		}
		info, err := w.Finish()
		if err != nil {
			return none, err
		}
		if info.Size != tr.GetSize() || !bytes.Equal(info.SHA256[:], tr.GetSha256()) {
			return none, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: shard %d received as %d bytes SHA-256 %x, sender says %d bytes %x", lazaret.ErrCorrupt, spec.Index, info.Size, info.SHA256[:8], tr.GetSize(), tr.GetSha256())}
		}
		if err := h.n.store.CommitShards(stream.Context(), w); err != nil {
			return none, lazaret.Temporary(err)
		}
		return info, nil
	}
}

// GetShard streams one shard this node holds: a ShardHeader, then chunks.
// Each chunk's CRC32C is checked as it is read (a failure ends the stream
// with DataLoss); if this node has the message's metadata, the shard must
// also be the one its placement names (same size and SHA-256). The reader
// checks the SHA-256 of what it receives against the placement as well.
func (h *PeerHandler) GetShard(req *pb.GetShardRequest, stream grpc.ServerStreamingServer[pb.GetShardResponse]) error {
	return wire.Status(h.getShard(req, stream))
}

func (h *PeerHandler) getShard(req *pb.GetShardRequest, stream grpc.ServerStreamingServer[pb.GetShardResponse]) error {
	const op = "peer.getshard"
	id, err := lazaret.ParseID(req.GetId())
	if err != nil {
		return &lazaret.Error{Op: op, Err: err}
	}
	index := int(req.GetIndex())
	info, rc, err := h.n.store.OpenShard(id, index)
	if err != nil {
		return err
	}
	defer rc.Close()
	if m, err := h.n.store.Meta(id); err == nil {
		for _, loc := range bodyPlacement(m).Shards {
			if loc.Index == index && loc.Node == h.n.cfg.NodeNumber && (loc.Size != info.Size || loc.SHA256 != info.SHA256) {
				h.n.countCorrupt()
				h.n.repairHint(id)
				return &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("shard %d: %w: stored shard is not the placed one", index, lazaret.ErrCorrupt)}
			}
		}
	}
	hdr := &pb.ShardHeader{Id: string(id), Index: int32(index), K: int32(info.K), M: int32(info.M), BodySize: info.BodySize, ChunkSize: int32(info.ChunkSize)}
	if err := stream.Send(&pb.GetShardResponse{Part: &pb.GetShardResponse_Header{Header: hdr}}); err != nil {
		return err
	}
	buf := make([]byte, min(maxWireChunk, max(info.Size, 1)))
	for {
		k, err := io.ReadFull(rc, buf)
		if k > 0 {
			if err := stream.Send(&pb.GetShardResponse{Part: &pb.GetShardResponse_Chunk{Chunk: buf[:k]}}); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			if errors.Is(err, lazaret.ErrCorrupt) {
				h.n.countCorrupt()
				h.n.repairHint(id)
				h.n.log.Error("shard failed its checksum while a peer read it", "id", id, "shard", index, "err", err)
			}
			return err
		}
	}
}

// DeleteShards removes every shard of a message this node holds or, with
// a generation, takes back one write of one shard: a shard committed
// since under the same index by another write (which a placement may
// name) stays.
func (h *PeerHandler) DeleteShards(ctx context.Context, req *pb.DeleteShardsRequest) (*pb.DeleteShardsResponse, error) {
	id, err := lazaret.ParseID(req.GetId())
	if err != nil {
		return nil, wire.Status(&lazaret.Error{Op: "peer.deleteshards", Err: err})
	}
	if gen := req.GetGeneration(); gen != 0 {
		if _, err := h.n.store.DeleteShard(id, int(req.GetIndex()), gen); err != nil {
			return nil, wire.Status(lazaret.Temporary(err))
		}
		return &pb.DeleteShardsResponse{}, nil
	}
	if err := h.n.store.DeleteShards(id); err != nil {
		return nil, wire.Status(lazaret.Temporary(err))
	}
	return &pb.DeleteShardsResponse{}, nil
}

// PushMeta merges pushed metadata (see lazaret.Merge) and reports how many
// records changed this node's store.
func (h *PeerHandler) PushMeta(ctx context.Context, req *pb.PushMetaRequest) (*pb.PushMetaResponse, error) {
	ms := make([]*lazaret.Metadata, 0, len(req.GetMessages()))
	for _, p := range req.GetMessages() {
		ms = append(ms, wire.MessageFromPB(p))
	}
	applied, err := h.n.applyPushed(ctx, ms)
	if err != nil {
		return nil, wire.Status(err)
	}
	return &pb.PushMetaResponse{Applied: int32(applied)}, nil
}

// GetMeta returns the records this node stores of the requested ids,
// tombstones included, from its own store only (it never asks further).
func (h *PeerHandler) GetMeta(ctx context.Context, req *pb.GetMetaRequest) (*pb.GetMetaResponse, error) {
	const op = "peer.getmeta"
	if len(req.GetIds()) > pushBatch {
		return nil, wire.Status(&lazaret.Error{Op: op, Err: fmt.Errorf("%w: %d ids, at most %d", lazaret.ErrInvalidArgument, len(req.GetIds()), pushBatch)})
	}
	resp := &pb.GetMetaResponse{}
	for _, s := range req.GetIds() {
		id, err := lazaret.ParseID(s)
		if err != nil {
			return nil, wire.Status(&lazaret.Error{Op: op, Err: err})
		}
		m, err := h.n.store.Meta(id)
		if errors.Is(err, lazaret.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, wire.Status(lazaret.Temporary(err))
		}
		resp.Messages = append(resp.Messages, wire.MessageToPB(m))
	}
	return resp, nil
}

// NodeStatus reports this node's figures for the cluster status table:
// messages (metadata of live messages, which every node holds), shards and
// their bytes, and the under-protected messages this node took in.
func (h *PeerHandler) NodeStatus(ctx context.Context, req *pb.NodeStatusRequest) (*pb.NodeStatusResponse, error) {
	st, err := h.n.store.Stats()
	if err != nil {
		return nil, wire.Status(lazaret.Temporary(err))
	}
	count, bytes, oldest := h.n.UnderProtected()
	resp := &pb.NodeStatusResponse{
		Node: int32(h.n.cfg.NodeNumber), Name: h.n.cfg.Name,
		Messages: st.Messages, Shards: st.Shards, ShardBytes: st.ShardBytes,
		UnderProtected: count, UnderProtectedBytes: bytes,
	}
	if !oldest.IsZero() {
		resp.OldestUnderProtected = timestamppb.New(oldest)
	}
	h.n.lagToPB(resp) // lag.go
	return resp, nil
}

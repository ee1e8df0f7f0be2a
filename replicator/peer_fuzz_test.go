package replicator

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
)

// rawCodec sends the fuzzer's bytes as the wire message unchanged, so the
// server's own protobuf decoding is under test too. Its name is "proto" so
// the server decodes with its normal codec.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "proto" }

// peerMethod is one method of the peer service.
type peerMethod struct {
	name          string
	client, serve bool // client / server streaming
}

// peerFuzzMethods lists the data-path methods of peer.proto (every method
// but Join, which the membership side serves), from the service
// descriptor, so a new method is fuzzed without touching this file.
func peerFuzzMethods() []peerMethod {
	var out []peerMethod
	for _, m := range pb.Peer_ServiceDesc.Methods {
		if m.MethodName != "Join" {
			out = append(out, peerMethod{name: m.MethodName})
		}
	}
	for _, st := range pb.Peer_ServiceDesc.Streams {
		out = append(out, peerMethod{name: st.StreamName, client: st.ClientStreams, serve: st.ServerStreams})
	}
	slices.SortFunc(out, func(a, b peerMethod) int { return strings.Compare(a.name, b.name) })
	return out
}

// frames splits fuzz input into messages: each is a 2-byte big-endian
// length and that many bytes (a short tail is one last message).
func frames(data []byte) [][]byte {
	var out [][]byte
	for len(data) >= 2 && len(out) < 64 {
		n := int(binary.BigEndian.Uint16(data))
		data = data[2:]
		n = min(n, len(data))
		out = append(out, data[:n])
		data = data[n:]
	}
	if len(data) > 0 {
		out = append(out, data)
	}
	return out
}

func frame(msgs ...proto.Message) []byte {
	var out []byte
	for _, m := range msgs {
		b, _ := proto.Marshal(m)
		out = binary.BigEndian.AppendUint16(out, uint16(len(b)))
		out = append(out, b...)
	}
	return out
}

// FuzzPeerRequests sends arbitrary bytes, as one or more wire messages, to
// every data-path method of a node's peer API over a real gRPC connection.
// The node must not panic, every call must end (no hang), a call that
// fails must fail with a status, and the node must still answer afterwards.
func FuzzPeerRequests(f *testing.F) {
	id := "1xVCNH-000000-01"
	body := []byte("Subject: fuzz\r\n\r\nhello\r\n")
	sum := sha256.Sum256(body)
	now := timestamppb.New(time.Unix(1_700_000_000, 0))
	msg := wire.MessageToPB(&lazaret.Metadata{
		ID: lazaret.ID(id), Node: 1, Size: int64(len(body)), SHA256: sum, State: lazaret.StateQuarantined,
		Received: now.AsTime(), Sender: "a@example.org", Recipients: []string{"b@example.org"},
		Version:   lazaret.Version{Wall: now.AsTime().UnixNano(), Node: 1},
		Placement: lazaret.Placement{K: 1, Shards: []lazaret.ShardLoc{{Node: 1, Index: 0, Size: int64(len(body)), SHA256: sum}}},
	})
	methods := peerFuzzMethods()
	sel := func(name string) uint8 {
		return uint8(slices.IndexFunc(methods, func(m peerMethod) bool { return m.name == name }))
	}
	f.Add(sel("PutShard"), frame(
		&pb.PutShardRequest{Part: &pb.PutShardRequest_Header{Header: &pb.ShardHeader{Id: id, K: 1, BodySize: int64(len(body))}}},
		&pb.PutShardRequest{Part: &pb.PutShardRequest_Chunk{Chunk: body}},
		&pb.PutShardRequest{Part: &pb.PutShardRequest_Trailer{Trailer: &pb.ShardTrailer{Size: int64(len(body)), Sha256: sum[:]}}},
	))
	f.Add(sel("GetShard"), frame(&pb.GetShardRequest{Id: id}))
	f.Add(sel("DeleteShards"), frame(&pb.DeleteShardsRequest{Id: id}))
	f.Add(sel("PushMeta"), frame(&pb.PushMetaRequest{Messages: []*pb.Message{msg}}))
	f.Add(sel("NodeStatus"), frame(&pb.NodeStatusRequest{}))
	f.Add(sel("Reconcile"), frame(&pb.ReconcileFrame{Node: 2, Message: []byte{0, 1, 2}}, &pb.ReconcileFrame{Records: []*pb.Message{msg}}))
	f.Add(sel("RemoveNode"), frame(&pb.RemoveNodeRequest{Number: 7}))
	f.Add(sel("GetMeta"), frame(&pb.GetMetaRequest{Ids: []string{id, "junk"}}))

	tc := newTestCluster(f, 1, false, nil)
	cc := tc.net.Conn(1)
	f.Fuzz(func(t *testing.T, pick uint8, data []byte) {
		m := methods[int(pick)%len(methods)]
		full := "/" + pb.Peer_ServiceDesc.ServiceName + "/" + m.name
		msgs := frames(data)
		if len(msgs) == 0 {
			msgs = [][]byte{nil}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var err error
		if !m.client && !m.serve {
			var out []byte
			err = cc.Invoke(ctx, full, &msgs[0], &out, grpc.ForceCodec(rawCodec{}))
		} else {
			desc := &grpc.StreamDesc{StreamName: m.name, ClientStreams: m.client, ServerStreams: m.serve}
			var cs grpc.ClientStream
			cs, err = cc.NewStream(ctx, desc, full, grpc.ForceCodec(rawCodec{}))
			if err == nil {
				for i := range msgs {
					if !m.client && i > 0 {
						break
					}
					if cs.SendMsg(&msgs[i]) != nil {
						break
					}
				}
				cs.CloseSend()
				for {
					var out []byte
					if err = cs.RecvMsg(&out); err != nil {
						break
					}
				}
			}
		}
		if ctx.Err() != nil {
			t.Fatalf("%s did not answer within 20 s (input %x)", m.name, data)
		}
		if err != nil && status.Code(err) == codes.Unknown && err.Error() != "EOF" {
			t.Logf("%s: %v", m.name, err)
		}
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if _, err := tc.node(1).node.PeerHandler().NodeStatus(sctx, nil); err != nil {
			t.Fatalf("node stopped answering after %s: %v", m.name, err)
		}
	})
}

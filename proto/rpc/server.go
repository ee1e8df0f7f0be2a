// Package rpc serves a [lazaret.Quarantine] over gRPC and offers a client that
// implements the same interface, so the CLI, tests and tools use one vocabulary
// whether they run in-process or across the node's unix socket.
package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
)

// ChunkSize is the size of body chunks the server streams, and the client
// sends. Well below gRPC's 4 MiB message limit.
const ChunkSize = 256 << 10

// Server exposes a Quarantine as the lazaret.v1.Quarantine gRPC service plus
// the standard grpc.health.v1 service.
type Server struct {
	pb.UnimplementedQuarantineServer
	q      lazaret.Quarantine
	log    *slog.Logger
	grpc   *grpc.Server
	health *health.Server
}

// NewServer returns a Server for q. Call Serve or ListenUnix to start it.
func NewServer(q lazaret.Quarantine, log *slog.Logger) *Server {
	s := &Server{q: q, log: log, health: health.NewServer()}
	s.grpc = grpc.NewServer(grpc.MaxRecvMsgSize(ChunkSize + 64<<10))
	pb.RegisterQuarantineServer(s.grpc, s)
	healthpb.RegisterHealthServer(s.grpc, s.health)
	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	s.health.SetServingStatus(pb.Quarantine_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	return s
}

// ListenUnix creates the unix socket at path with the given mode and group
// (empty group keeps the process's). A stale socket left by a dead process is
// removed; a socket another live process serves is refused.
func ListenUnix(path string, mode os.FileMode, group string) (net.Listener, error) {
	if _, err := os.Stat(path); err == nil {
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, fmt.Errorf("listen %s: another process is serving this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("listen %s: remove stale socket: %w", path, err)
		}
	}
	l, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("listen %s: %w", path, err)
	}
	if group != "" {
		gid, err := lookupGroup(group)
		if err == nil {
			err = os.Chown(path, -1, gid)
		}
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("listen %s: group %q: %w", path, group, err)
		}
	}
	return l, nil
}

func lookupGroup(name string) (int, error) {
	if id, err := strconv.Atoi(name); err == nil {
		return id, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(g.Gid)
}

// Serve serves on l until Stop is called.
func (s *Server) Serve(l net.Listener) error { return s.grpc.Serve(l) }

// Stop marks the service NOT_SERVING, then stops gracefully: in-flight puts
// finish (and are acknowledged) unless ctx ends first.
func (s *Server) Stop(ctx context.Context) {
	s.health.Shutdown()
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}

// Put implements lazaret.v1.Quarantine.Put.
func (s *Server) Put(stream grpc.ClientStreamingServer[pb.PutRequest, pb.PutResponse]) error {
	first, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return status.Error(codes.InvalidArgument, "put: empty stream: the first message must carry meta")
		}
		return err
	}
	meta := first.GetMeta()
	if meta == nil {
		return status.Error(codes.InvalidArgument, "put: the first message must carry meta, not a body chunk")
	}
	if meta.GetExpectedSize() < 0 {
		return status.Errorf(codes.InvalidArgument, "put: %v: expected_size %d is negative", lazaret.ErrInvalidArgument, meta.GetExpectedSize())
	}
	body := &streamReader{recv: stream.Recv, expect: meta.GetExpectedSize()}
	m, err := s.q.Put(stream.Context(), wire.PutMetaFromPB(meta), body)
	if err != nil {
		return wire.Status(err)
	}
	return stream.SendAndClose(&pb.PutResponse{Message: wire.MessageToPB(m)})
}

// streamReader reads a Put stream's body chunks as one io.Reader. When the
// writer declared the size, a stream that ends short or long is an error, so a
// truncated upload is never stored as if it were whole.
type streamReader struct {
	recv   func() (*pb.PutRequest, error)
	buf    []byte
	n      int64
	expect int64
	err    error
}

func (r *streamReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		msg, err := r.recv()
		if err == io.EOF {
			if r.expect > 0 && r.n != r.expect {
				r.err = fmt.Errorf("%w: body ended after %d of %d bytes", lazaret.ErrInvalidArgument, r.n, r.expect)
			} else {
				r.err = io.EOF
			}
			continue
		}
		if err != nil {
			// A client that cancels mid-stream lands here: the put fails
			// and nothing is stored.
			r.err = err
			if st, ok := status.FromError(err); ok && st.Code() == codes.Canceled {
				r.err = fmt.Errorf("%w: client cancelled the upload", context.Canceled)
			}
			continue
		}
		if msg.GetMeta() != nil {
			r.err = fmt.Errorf("%w: meta sent twice in one put stream", lazaret.ErrInvalidArgument)
			continue
		}
		r.buf = msg.GetChunk()
		r.n += int64(len(r.buf))
		if r.expect > 0 && r.n > r.expect {
			r.err = fmt.Errorf("%w: body longer than the declared %d bytes", lazaret.ErrInvalidArgument, r.expect)
			r.buf = nil
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Get implements lazaret.v1.Quarantine.Get.
func (s *Server) Get(req *pb.GetRequest, stream grpc.ServerStreamingServer[pb.GetResponse]) error {
	id, err := lazaret.ParseID(req.GetId())
	if err != nil {
		return wire.Status(err)
	}
	m, body, err := s.q.Open(stream.Context(), id)
	if err != nil {
		return wire.Status(err)
	}
	defer body.Close()
	if err := stream.Send(&pb.GetResponse{Part: &pb.GetResponse_Meta{Meta: wire.MessageToPB(m)}}); err != nil {
		return err
	}
	buf := make([]byte, ChunkSize)
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			if err := stream.Send(&pb.GetResponse{Part: &pb.GetResponse_Chunk{Chunk: chunk}}); err != nil {
				return err
			}
		}
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return nil
		}
		if err != nil {
			s.log.Error("get: read failed", "id", id, "err", err)
			return wire.Status(err)
		}
	}
}

// Stat implements lazaret.v1.Quarantine.Stat.
func (s *Server) Stat(ctx context.Context, req *pb.StatRequest) (*pb.Message, error) {
	id, err := lazaret.ParseID(req.GetId())
	if err != nil {
		return nil, wire.Status(err)
	}
	m, err := s.q.Stat(ctx, id)
	return msgOrStatus(m, err)
}

// maxListBytes bounds the encoded size of one List response, well below
// what clients accept (see DialUnix), so that a page of large records (long
// reports, many recipients) is cut short rather than refused.
const maxListBytes = 256 << 10

// List implements lazaret.v1.Quarantine.List. A page is bounded by bytes
// as well as by count: when the records asked for would not fit in
// maxListBytes, the page holds fewer (at least one) and its cursor goes on
// from there.
func (s *Server) List(ctx context.Context, req *pb.ListRequest) (*pb.ListResponse, error) {
	q := wire.ListFromPB(req)
	for {
		page, err := s.q.List(ctx, q)
		if err != nil {
			return nil, wire.Status(err)
		}
		resp := &pb.ListResponse{NextCursor: page.NextCursor, Source: page.Source}
		size, fit := 0, 0
		for _, m := range page.Messages {
			pm := wire.MessageToPB(m)
			size += proto.Size(pm) + 8 // field tag and length
			if size > maxListBytes && fit > 0 {
				break
			}
			resp.Messages = append(resp.Messages, pm)
			fit++
		}
		if fit == len(page.Messages) {
			return resp, nil
		}
		// Ask again for as many as fit, so that the cursor the store
		// returns starts after the last record sent.
		q.Limit = fit
	}
}

// Delete implements lazaret.v1.Quarantine.Delete.
func (s *Server) Delete(ctx context.Context, req *pb.DeleteRequest) (*pb.Message, error) {
	id, err := lazaret.ParseID(req.GetId())
	if err != nil {
		return nil, wire.Status(err)
	}
	return msgOrStatus(s.q.Delete(ctx, id, req.GetActor()))
}

// Learn implements lazaret.v1.Quarantine.Learn.
func (s *Server) Learn(ctx context.Context, req *pb.LearnRequest) (*pb.Message, error) {
	id, err := lazaret.ParseID(req.GetId())
	if err != nil {
		return nil, wire.Status(err)
	}
	kind := lazaret.LearnKind(req.GetKind())
	if kind != lazaret.LearnSpam && kind != lazaret.LearnHam {
		return nil, status.Error(codes.InvalidArgument, "learn: kind must be spam or ham")
	}
	return msgOrStatus(s.q.Learn(ctx, id, kind, req.GetActor()))
}

// Release implements lazaret.v1.Quarantine.Release.
func (s *Server) Release(ctx context.Context, req *pb.ReleaseRequest) (*pb.Message, error) {
	id, err := lazaret.ParseID(req.GetId())
	if err != nil {
		return nil, wire.Status(err)
	}
	if rid := req.GetRequestId(); rid != "" {
		if !lazaret.ValidRequestID(rid) {
			return nil, wire.Status(&lazaret.Error{Op: "release", ID: id, Err: fmt.Errorf("%w: request id must be 1-128 printable characters without spaces", lazaret.ErrInvalidArgument)})
		}
		ctx = lazaret.WithRequestID(ctx, rid)
	}
	return msgOrStatus(s.q.Release(ctx, id, req.GetRecipients(), req.GetActor()))
}

// AllocateID implements lazaret.v1.Quarantine.AllocateID.
func (s *Server) AllocateID(ctx context.Context, _ *pb.AllocateIDRequest) (*pb.AllocateIDResponse, error) {
	id, err := s.q.AllocateID(ctx)
	if err != nil {
		return nil, wire.Status(err)
	}
	return &pb.AllocateIDResponse{Id: string(id)}, nil
}

// Status implements lazaret.v1.Quarantine.Status.
func (s *Server) Status(ctx context.Context, _ *pb.StatusRequest) (*pb.StatusResponse, error) {
	st, err := s.q.Status(ctx)
	if err != nil {
		return nil, wire.Status(err)
	}
	return wire.StatusToPB(st), nil
}

func msgOrStatus(m *lazaret.Metadata, err error) (*pb.Message, error) {
	if err != nil {
		return nil, wire.Status(err)
	}
	return wire.MessageToPB(m), nil
}

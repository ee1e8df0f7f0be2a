package rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
)

// Client talks to a node's API. It implements lazaret.Quarantine, so code
// written against the interface works unchanged across the socket.
type Client struct {
	conn *grpc.ClientConn
	pb   pb.QuarantineClient
}

var _ lazaret.Quarantine = (*Client)(nil)

// MaxReplySize bounds one reply the client accepts: a List page of
// lazaret.MaxListLimit messages with their histories and scanner reports
// is far larger than a body chunk (a page of 1,000 mail-mix messages was
// 470 KB).
const MaxReplySize = 32 << 20

// DialUnix returns a client for the node serving the unix socket at path.
// A missing socket is reported here, plainly, rather than as a gRPC
// "connection refused" on the first call. A relative path is taken from
// the current directory. Extra options (a reconnect backoff, say) are
// added to the defaults.
func DialUnix(path string, opts ...grpc.DialOption) (*Client, error) {
	fi, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("connect %s: no such socket (is 'lazaret serve' running? set --socket or LAZARET_SOCKET)", path)
		}
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	if fi.Mode()&os.ModeSocket == 0 {
		return nil, fmt.Errorf("connect %s: not a unix socket", path)
	}
	// A relative path must not reach the target URI as it is: in
	// "unix://n1/s.sock" gRPC reads "n1" as an authority.
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	conn, err := grpc.NewClient("unix://"+abs, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxReplySize))}, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", path, err)
	}
	return NewClient(conn), nil
}

// NewClient wraps an existing connection.
func NewClient(conn *grpc.ClientConn) *Client {
	return &Client{conn: conn, pb: pb.NewQuarantineClient(conn)}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Put streams body to the node. If body has a known size (an *os.File, a
// *bytes.Reader, ...), the size is declared so that a short upload fails on the
// node instead of being stored truncated.
func (c *Client) Put(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // a failed upload cancels the stream, so the node aborts it
	stream, err := c.pb.Put(ctx)
	if err != nil {
		return nil, wire.FromStatus(err)
	}
	if err := stream.Send(&pb.PutRequest{Part: &pb.PutRequest_Meta{Meta: wire.PutMetaToPB(req, knownSize(body))}}); err != nil {
		return nil, c.putErr(stream, err)
	}
	buf := make([]byte, ChunkSize)
	for {
		n, rerr := io.ReadFull(body, buf)
		if n > 0 {
			chunk := append([]byte(nil), buf[:n]...)
			if err := stream.Send(&pb.PutRequest{Part: &pb.PutRequest_Chunk{Chunk: chunk}}); err != nil {
				return nil, c.putErr(stream, err)
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return nil, fmt.Errorf("put: reading body: %w", rerr)
		}
	}
	resp, err := stream.CloseAndRecv()
	if err != nil {
		return nil, wire.FromStatus(err)
	}
	return wire.MessageFromPB(resp.GetMessage()), nil
}

// putErr returns the node's reason when a Send fails because the node already
// ended the stream (io.EOF from Send means "see the status from Recv").
func (c *Client) putErr(stream grpc.ClientStreamingClient[pb.PutRequest, pb.PutResponse], err error) error {
	if errors.Is(err, io.EOF) {
		_, err = stream.CloseAndRecv()
	}
	return wire.FromStatus(err)
}

func knownSize(r io.Reader) int64 {
	switch v := r.(type) {
	case interface{ Len() int }:
		return int64(v.Len())
	case *os.File:
		if fi, err := v.Stat(); err == nil && fi.Mode().IsRegular() {
			if off, err := v.Seek(0, io.SeekCurrent); err == nil {
				return fi.Size() - off
			}
		}
	}
	return 0
}

// Open starts streaming a message. The returned reader fails, rather than
// returning wrong bytes, if the node finds the stored copy corrupt mid-way.
func (c *Client) Open(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, io.ReadCloser, error) {
	ctx, cancel := context.WithCancel(ctx)
	stream, err := c.pb.Get(ctx, &pb.GetRequest{Id: string(id)})
	if err != nil {
		cancel()
		return nil, nil, wire.FromStatus(err)
	}
	first, err := stream.Recv()
	if err != nil {
		cancel()
		return nil, nil, wire.FromStatus(err)
	}
	if first.GetMeta() == nil {
		cancel()
		return nil, nil, fmt.Errorf("get %s: protocol error: body before metadata", id)
	}
	m := wire.MessageFromPB(first.GetMeta())
	return m, &getReader{stream: stream, cancel: cancel, want: m.Size}, nil
}

type getReader struct {
	stream grpc.ServerStreamingClient[pb.GetResponse]
	cancel context.CancelFunc
	buf    []byte
	n      int64
	want   int64
	err    error
}

func (r *getReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		msg, err := r.stream.Recv()
		switch {
		case err == io.EOF && r.n != r.want:
			r.err = fmt.Errorf("get: stream ended after %d of %d bytes", r.n, r.want)
		case err == io.EOF:
			r.err = io.EOF
		case err != nil:
			r.err = wire.FromStatus(err)
		default:
			r.buf = msg.GetChunk()
			r.n += int64(len(r.buf))
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *getReader) Close() error { r.cancel(); return nil }

// Stat returns a message's metadata.
func (c *Client) Stat(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, error) {
	return msgOrErr(c.pb.Stat(ctx, &pb.StatRequest{Id: string(id)}))
}

// List lists messages.
func (c *Client) List(ctx context.Context, q lazaret.ListQuery) (*lazaret.ListPage, error) {
	resp, err := c.pb.List(ctx, wire.ListToPB(q))
	if err != nil {
		return nil, wire.FromStatus(err)
	}
	page := &lazaret.ListPage{NextCursor: resp.GetNextCursor(), Source: resp.GetSource()}
	for _, m := range resp.GetMessages() {
		page.Messages = append(page.Messages, wire.MessageFromPB(m))
	}
	return page, nil
}

// Delete deletes a message.
func (c *Client) Delete(ctx context.Context, id lazaret.ID, actor string) (*lazaret.Metadata, error) {
	return msgOrErr(c.pb.Delete(ctx, &pb.DeleteRequest{Id: string(id), Actor: actor}))
}

// Learn teaches the spam filter about a message.
func (c *Client) Learn(ctx context.Context, id lazaret.ID, kind lazaret.LearnKind, actor string) (*lazaret.Metadata, error) {
	return msgOrErr(c.pb.Learn(ctx, &pb.LearnRequest{Id: string(id), Kind: pb.LearnKind(kind), Actor: actor}))
}

// Release asks for a message to be released. The idempotency key set on ctx
// with lazaret.WithRequestID travels as the request id.
func (c *Client) Release(ctx context.Context, id lazaret.ID, recipients []string, actor string) (*lazaret.Metadata, error) {
	return msgOrErr(c.pb.Release(ctx, &pb.ReleaseRequest{Id: string(id), Recipients: recipients, Actor: actor, RequestId: lazaret.RequestID(ctx)}))
}

// AllocateID reserves an id.
func (c *Client) AllocateID(ctx context.Context) (lazaret.ID, error) {
	resp, err := c.pb.AllocateID(ctx, &pb.AllocateIDRequest{})
	if err != nil {
		return "", wire.FromStatus(err)
	}
	return lazaret.ID(resp.GetId()), nil
}

// Status describes the node.
func (c *Client) Status(ctx context.Context) (*lazaret.NodeStatus, error) {
	resp, err := c.pb.Status(ctx, &pb.StatusRequest{})
	if err != nil {
		return nil, wire.FromStatus(err)
	}
	return wire.StatusFromPB(resp), nil
}

func msgOrErr(m *pb.Message, err error) (*lazaret.Metadata, error) {
	if err != nil {
		return nil, wire.FromStatus(err)
	}
	return wire.MessageFromPB(m), nil
}

// Actor returns a default actor name for requests made by this process's
// user, such as "cli:alice".
func Actor(prefix string) string {
	name := os.Getenv("USER")
	if name == "" {
		if u, err := user.Current(); err == nil {
			name = u.Username
		} else {
			name = "uid" + fmt.Sprint(os.Getuid())
		}
	}
	return prefix + ":" + strings.TrimSpace(name)
}

// RemoteError is what a Client call returns when the node answered with an
// error; it unwraps to the matching domain sentinel (see package wire).
type RemoteError = wire.RemoteError

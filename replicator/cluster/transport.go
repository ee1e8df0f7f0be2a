package cluster

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/member"
)

// JoinMethod is the only peer API method callable without a client
// certificate.
const JoinMethod = "/lazaret.v1.Peer/Join"

// maxPeerMessage bounds one gRPC message on the peer port (shard chunks are
// at most 1 MiB; metadata pushes batch many messages).
const maxPeerMessage = 16 << 20

// NewPeerServer returns a gRPC server for the peer port with mutual TLS
// (creds.ServerTLS) and handler registered. The TLS layer verifies a client
// certificate against the cluster CA when one is given and refuses a
// retired node's; the interceptors then refuse, with codes.Unauthenticated,
// every method but Join from a caller without a verified certificate, and
// with codes.PermissionDenied every call of a node retired after its
// connection was made. (The gRPC credentials are per server; the node's
// unix-socket API is a separate grpc.Server.)
func NewPeerServer(creds *Credentials, handler lazaretpb.PeerServer) *grpc.Server {
	a := authorizer{creds: creds}
	s := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(creds.ServerTLS())),
		grpc.UnaryInterceptor(a.unary),
		grpc.StreamInterceptor(a.stream),
		grpc.MaxRecvMsgSize(maxPeerMessage),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	)
	lazaretpb.RegisterPeerServer(s, handler)
	return s
}

// authorizer is the peer server's per-call check.
type authorizer struct{ creds *Credentials }

func (a authorizer) authorize(ctx context.Context, method string) error {
	if method == JoinMethod {
		return nil
	}
	id, ok := PeerIdentity(ctx)
	if !ok {
		return status.Errorf(codes.Unauthenticated, "%s needs a client certificate from the cluster CA", method)
	}
	if err := a.creds.checkRetired(id); err != nil {
		return status.Errorf(codes.PermissionDenied, "%s: %v", method, err)
	}
	return nil
}

func (a authorizer) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := a.authorize(ctx, info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (a authorizer) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := a.authorize(ss.Context(), info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}

// DataPathServer is the peer API without Join: what the replicator's peer
// handler serves.
type DataPathServer interface {
	PutShard(grpc.ClientStreamingServer[lazaretpb.PutShardRequest, lazaretpb.PutShardResponse]) error
	GetShard(*lazaretpb.GetShardRequest, grpc.ServerStreamingServer[lazaretpb.GetShardResponse]) error
	DeleteShards(context.Context, *lazaretpb.DeleteShardsRequest) (*lazaretpb.DeleteShardsResponse, error)
	PushMeta(context.Context, *lazaretpb.PushMetaRequest) (*lazaretpb.PushMetaResponse, error)
	NodeStatus(context.Context, *lazaretpb.NodeStatusRequest) (*lazaretpb.NodeStatusResponse, error)
	GetMeta(context.Context, *lazaretpb.GetMetaRequest) (*lazaretpb.GetMetaResponse, error)
	// Anti-entropy (replicator/antientropy.go).
	Reconcile(grpc.BidiStreamingServer[lazaretpb.ReconcileFrame, lazaretpb.ReconcileFrame]) error
	RemoveNode(context.Context, *lazaretpb.RemoveNodeRequest) (*lazaretpb.RemoveNodeResponse, error)
}

// peerService composes the peer API from the data path and the Join
// handler. Both are embedded at depth 1, and their method sets do not
// overlap (DataPathServer has no Join; JoinService has only Join), so every
// PeerServer method resolves to exactly one of them. The generated
// UnimplementedPeerServer is embedded one level deeper (depth 2, inside
// unimplementedPeer): Go picks the shallowest method, so it only supplies
// mustEmbedUnimplementedPeerServer (and the by-value check) without hiding
// any real method. At depth 1 it would make every method ambiguous.
type peerService struct {
	DataPathServer
	*JoinService
	unimplementedPeer
}

type unimplementedPeer struct {
	lazaretpb.UnimplementedPeerServer
}

// unimplementedDataPath answers the data-path methods with
// codes.Unimplemented (a node without a data path, and tests of Join).
type unimplementedDataPath struct {
	lazaretpb.UnimplementedPeerServer
}

// NewPeerService returns the peer API: data for shards, metadata and
// status, join for Join. A nil data answers those with Unimplemented.
func NewPeerService(data DataPathServer, join *JoinService) lazaretpb.PeerServer {
	if data == nil {
		data = unimplementedDataPath{}
	}
	return &peerService{DataPathServer: data, JoinService: join}
}

// Dialer implements member.PeerDialer over mutual TLS. It keeps one
// lazily connecting gRPC client per member number, re-dialing when the
// member's gossiped peer address changes.
type Dialer struct {
	creds   *Credentials
	members member.Membership

	mu     sync.Mutex
	conns  map[int]*peerConn
	closed bool
}

type peerConn struct {
	addr   string
	cc     *grpc.ClientConn
	client lazaretpb.PeerClient
}

var _ member.PeerDialer = (*Dialer)(nil)

// NewDialer returns a Dialer presenting creds and looking addresses up in
// members.
func NewDialer(creds *Credentials, members member.Membership) *Dialer {
	return &Dialer{creds: creds, members: members, conns: map[int]*peerConn{}}
}

// Peer returns a client for the member with this number. It never blocks:
// the connection is made on the first call (and remade after failures) by
// gRPC. A number gossip does not know fails with lazaret.ErrUnavailable.
func (d *Dialer) Peer(number int) (lazaretpb.PeerClient, error) {
	var addr string
	for _, m := range d.members.Members() {
		if m.Number == number {
			addr = m.PeerAddr
			break
		}
	}
	if addr == "" {
		return nil, &lazaret.Error{Op: "cluster.dial", Err: fmt.Errorf("%w: no member has node number %d", lazaret.ErrUnavailable, number)}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, &lazaret.Error{Op: "cluster.dial", Err: fmt.Errorf("%w: dialer closed", lazaret.ErrUnavailable)}
	}
	if pc, ok := d.conns[number]; ok {
		if pc.addr == addr {
			return pc.client, nil
		}
		pc.cc.Close()
		delete(d.conns, number)
	}
	cc, err := DialPeer(addr, d.creds.ClientTLS(hostOf(addr), number))
	if err != nil {
		return nil, &lazaret.Error{Op: "cluster.dial", Err: fmt.Errorf("%w: node %d at %s: %v", lazaret.ErrUnavailable, number, addr, err)}
	}
	pc := &peerConn{addr: addr, cc: cc, client: lazaretpb.NewPeerClient(cc)}
	d.conns[number] = pc
	return pc.client, nil
}

// Close closes every connection.
func (d *Dialer) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for n, pc := range d.conns {
		pc.cc.Close()
		delete(d.conns, n)
	}
	return nil
}

// DialPeer returns a lazily connecting gRPC client for a peer port.
func DialPeer(addr string, tlsCfg *tls.Config) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(credentials.NewTLS(tlsCfg)),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxPeerMessage)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	)
}

func hostOf(addr string) string {
	h, _, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	return h
}

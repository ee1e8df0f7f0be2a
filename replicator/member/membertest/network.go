// Package membertest is an in-process cluster network for tests: membership
// as the test sets it, and each node's peer API served over an in-memory
// listener (bufconn, no TLS). A node marked down is unreachable and unable
// to reach anyone, and shows as failed in every member's view. It is the
// network under replicatortest.Cluster and under the replicator's own tests;
// it knows nothing of the replicator, only of member and the peer API.
package membertest

import (
	"context"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/member"
)

// Network is the cluster network of a test. Its methods are safe for
// concurrent use.
type Network struct {
	mu       sync.Mutex
	members  map[int]member.Member
	down     map[int]bool
	peers    map[int]*peer
	putHooks map[int]PutShardHook
}

// peer is one node's peer API server and the client connection to it.
type peer struct {
	srv *grpc.Server
	cc  *grpc.ClientConn
}

// PutShardHook runs in a node's PutShard handler before each message of the
// stream is received; received counts those already received (0: the
// header is next). An error ends the handler with it (nothing stored);
// blocking blocks the handler, as a hung node would.
type PutShardHook func(ctx context.Context, received int) error

// NewNetwork returns a network without members.
func NewNetwork() *Network {
	return &Network{members: map[int]member.Member{}, down: map[int]bool{}, peers: map[int]*peer{}, putHooks: map[int]PutShardHook{}}
}

// Add adds m, or replaces the member with m's number.
func (n *Network) Add(m member.Member) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.members[m.Number] = m
}

// Membership returns the view of the member numbered self.
func (n *Network) Membership(self int) member.Membership { return membership{n, self} }

// Dialer returns the peer dialer of the member numbered from.
func (n *Network) Dialer(from int) member.PeerDialer { return dialer{n, from} }

// Serve serves srv as the peer API of member number, replacing (and
// stopping) the one it served before. opts are given to the gRPC server.
func (n *Network) Serve(number int, srv lazaretpb.PeerServer, opts ...grpc.ServerOption) error {
	n.Stop(number)
	lis := bufconn.Listen(1 << 20)
	opts = append(opts, grpc.ChainStreamInterceptor(n.putHookInterceptor(number)))
	gs := grpc.NewServer(opts...)
	lazaretpb.RegisterPeerServer(gs, srv)
	go gs.Serve(lis)
	cc, err := grpc.NewClient("passthrough:///node", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
		return lis.DialContext(ctx)
	}), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		gs.Stop()
		return fmt.Errorf("membertest: client of node %d: %w", number, err)
	}
	n.mu.Lock()
	n.peers[number] = &peer{srv: gs, cc: cc}
	n.mu.Unlock()
	return nil
}

// Conn returns the client connection to member number's peer API (nil if
// it serves none), for tests that send raw messages.
func (n *Network) Conn(number int) grpc.ClientConnInterface {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[number]; p != nil {
		return p.cc
	}
	return nil
}

// Stop stops the peer API of member number, if it serves one.
func (n *Network) Stop(number int) {
	n.mu.Lock()
	p := n.peers[number]
	delete(n.peers, number)
	n.mu.Unlock()
	if p != nil {
		p.srv.Stop()
		p.cc.Close()
	}
}

// Close stops every peer API.
func (n *Network) Close() {
	n.mu.Lock()
	numbers := slices.Sorted(maps.Keys(n.peers))
	n.mu.Unlock()
	for _, num := range numbers {
		n.Stop(num)
	}
}

// SetDown kills (true) or restores (false) member number: its links are
// cut both ways and every member sees it failed (or alive again).
func (n *Network) SetDown(number int, down bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.down[number] = down
	m := n.members[number]
	m.State = member.Alive
	if down {
		m.State = member.Failed
	}
	n.members[number] = m
}

// SetState sets member number's state as every member sees it, without
// touching its links: gossip flapping on a healthy network.
func (n *Network) SetState(number int, st member.State) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m := n.members[number]
	m.State = st
	n.members[number] = m
}

// SetPutHook installs (or, with nil, removes) member number's PutShard hook
// for the streams that start afterwards.
func (n *Network) SetPutHook(number int, h PutShardHook) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if h == nil {
		delete(n.putHooks, number)
		return
	}
	n.putHooks[number] = h
}

// putHookInterceptor runs member number's PutShard hook, if any, around
// each PutShard stream that starts while it is installed.
func (n *Network) putHookInterceptor(number int) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		if info.FullMethod != lazaretpb.Peer_PutShard_FullMethodName {
			return handler(srv, ss)
		}
		n.mu.Lock()
		hook := n.putHooks[number]
		n.mu.Unlock()
		if hook != nil {
			ss = &hookedStream{ServerStream: ss, hook: hook}
		}
		return handler(srv, ss)
	}
}

// hookedStream calls its hook before every receive.
type hookedStream struct {
	grpc.ServerStream
	hook     PutShardHook
	received int
}

func (s *hookedStream) RecvMsg(m any) error {
	if err := s.hook(s.Context(), s.received); err != nil {
		return err
	}
	s.received++
	return s.ServerStream.RecvMsg(m)
}

// membership is one member's view of the network.
type membership struct {
	net  *Network
	self int
}

func (m membership) Self() member.Member {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	return m.net.members[m.self]
}

func (m membership) Members() []member.Member {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	out := make([]member.Member, 0, len(m.net.members))
	for _, num := range slices.Sorted(maps.Keys(m.net.members)) {
		out = append(out, m.net.members[num])
	}
	return out
}

// dialer is one member's way to the others.
type dialer struct {
	net  *Network
	from int
}

func (d dialer) Peer(number int) (lazaretpb.PeerClient, error) {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	if d.net.down[d.from] || d.net.down[number] {
		return nil, status.Errorf(codes.Unavailable, "node %d unreachable from node %d", number, d.from)
	}
	p := d.net.peers[number]
	if p == nil {
		return nil, status.Errorf(codes.Unavailable, "no node %d", number)
	}
	return lazaretpb.NewPeerClient(p.cc), nil
}

package replicator

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/member"
)

// fakeNet is an in-process cluster network: membership as a test sets it,
// and peer connections over bufconn to each node's PeerHandler (no TLS). A
// node marked down is unreachable and unable to reach anyone, and shows as
// failed in every member's view.
type fakeNet struct {
	mu       sync.Mutex
	members  map[int]member.Member
	down     map[int]bool
	lis      map[int]*bufconn.Listener
	conns    map[int]*grpc.ClientConn
	putHooks map[int]putShardHook
}

func newFakeNet() *fakeNet {
	return &fakeNet{members: map[int]member.Member{}, down: map[int]bool{}, lis: map[int]*bufconn.Listener{}, conns: map[int]*grpc.ClientConn{}, putHooks: map[int]putShardHook{}}
}

// putShardHook runs in a node's PutShard handler before each message of
// the stream is received; received counts those already received (0: the
// header is next). An error ends the handler with it (nothing stored);
// blocking blocks the handler, as a hung node would.
type putShardHook func(ctx context.Context, received int) error

// setPutHook installs (or, with nil, removes) node number's PutShard hook
// for the streams that start afterwards.
func (f *fakeNet) setPutHook(number int, h putShardHook) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if h == nil {
		delete(f.putHooks, number)
		return
	}
	f.putHooks[number] = h
}

// setDown kills (true) or restores (false) node number.
func (f *fakeNet) setDown(number int, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[number] = down
	m := f.members[number]
	m.State = member.Alive
	if down {
		m.State = member.Failed
	}
	f.members[number] = m
}

type fakeMembership struct {
	net  *fakeNet
	self int
}

func (m fakeMembership) Self() member.Member {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	return m.net.members[m.self]
}

func (m fakeMembership) Members() []member.Member {
	m.net.mu.Lock()
	defer m.net.mu.Unlock()
	out := make([]member.Member, 0, len(m.net.members))
	for i := 1; i <= len(m.net.members)+16; i++ {
		if mb, ok := m.net.members[i]; ok {
			out = append(out, mb)
		}
	}
	return out
}

type fakeDialer struct {
	net  *fakeNet
	from int
}

func (d fakeDialer) Peer(number int) (pb.PeerClient, error) {
	d.net.mu.Lock()
	defer d.net.mu.Unlock()
	if d.net.down[d.from] || d.net.down[number] {
		return nil, status.Errorf(codes.Unavailable, "node %d unreachable from node %d", number, d.from)
	}
	cc := d.net.conns[number]
	if cc == nil {
		return nil, status.Errorf(codes.Unavailable, "no node %d", number)
	}
	return pb.NewPeerClient(cc), nil
}

// joinServer puts UnimplementedPeerServer one level below PeerHandler, as
// PeerHandler's documentation tells the membership side to.
type joinServer struct{ pb.UnimplementedPeerServer }

type testPeerServer struct {
	*PeerHandler
	joinServer
	net *fakeNet
	num int
}

// PutShard runs the node's PutShard hook, if any, around PeerHandler's.
func (s *testPeerServer) PutShard(stream grpc.ClientStreamingServer[pb.PutShardRequest, pb.PutShardResponse]) error {
	s.net.mu.Lock()
	hook := s.net.putHooks[s.num]
	s.net.mu.Unlock()
	if hook != nil {
		stream = &hookedPutStream{ClientStreamingServer: stream, hook: hook}
	}
	return s.PeerHandler.PutShard(stream)
}

// hookedPutStream calls its hook before every Recv.
type hookedPutStream struct {
	grpc.ClientStreamingServer[pb.PutShardRequest, pb.PutShardResponse]
	hook     putShardHook
	received int
}

func (s *hookedPutStream) Recv() (*pb.PutShardRequest, error) {
	if err := s.hook(s.Context(), s.received); err != nil {
		return nil, err
	}
	s.received++
	return s.ClientStreamingServer.Recv()
}

// testNode is one node of a testCluster.
type testNode struct {
	num    int
	node   *Node
	store  *objstore.Store
	server *grpc.Server
}

// testCluster is N in-process nodes.
type testCluster struct {
	t     testing.TB
	net   *fakeNet
	nodes []*testNode // nodes[i] has number i+1
}

// newTestCluster starts n nodes numbered 1..n. sync selects fsync'd stores
// (benchmarks) or not (functional tests, for speed; durability is
// objstore's own test subject). edit adjusts each node's config; opts are
// given to every node's gRPC server.
func newTestCluster(t testing.TB, n int, sync bool, edit func(*Config), opts ...grpc.ServerOption) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, net: newFakeNet()}
	for i := 1; i <= n; i++ {
		tc.net.members[i] = member.Member{Name: fmt.Sprintf("node%d", i), Number: i, PeerAddr: fmt.Sprintf("bufconn:%d", i), State: member.Alive}
	}
	log := slog.New(slog.DiscardHandler)
	if os.Getenv("LAZARET_TEST_LOG") != "" {
		log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	clock := lazaret.SystemClock{}
	for i := 1; i <= n; i++ {
		scfg := objstore.DefaultConfig(t.TempDir())
		scfg.SyncWrites = sync
		scfg.MemTableSize = 8 << 20
		scfg.BlockCacheSize = 1 << 20
		scfg.IndexCacheSize = 1 << 20
		scfg.ValueLogFileSize = 32 << 20
		store, err := objstore.Open(scfg, log, clock)
		if err != nil {
			t.Fatalf("objstore.Open: %v", err)
		}
		cfg := DefaultConfig()
		cfg.NodeNumber = i
		cfg.Name = fmt.Sprintf("node%d", i)
		cfg.Cluster.Members = fakeMembership{tc.net, i}
		cfg.Cluster.Peers = fakeDialer{tc.net, i}
		if edit != nil {
			edit(&cfg)
		}
		node, err := New(cfg, store, log.With("node", i), clock, nil)
		if err != nil {
			t.Fatalf("New: %v", err)
		}
		lis := bufconn.Listen(1 << 20)
		srv := grpc.NewServer(opts...)
		pb.RegisterPeerServer(srv, &testPeerServer{PeerHandler: node.PeerHandler(), net: tc.net, num: i})
		go srv.Serve(lis)
		cc, err := grpc.NewClient("passthrough:///node", grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			return lis.DialContext(ctx)
		}), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatalf("grpc.NewClient: %v", err)
		}
		tc.net.mu.Lock()
		tc.net.lis[i], tc.net.conns[i] = lis, cc
		tc.net.mu.Unlock()
		tc.nodes = append(tc.nodes, &testNode{num: i, node: node, store: store, server: srv})
	}
	t.Cleanup(tc.close)
	return tc
}

func (tc *testCluster) close() {
	for _, n := range tc.nodes {
		n.node.Close()
	}
	for _, n := range tc.nodes {
		n.server.Stop()
		tc.net.conns[n.num].Close()
		if err := n.store.Close(); err != nil {
			tc.t.Errorf("closing store %d: %v", n.num, err)
		}
	}
}

// node returns the node numbered num.
func (tc *testCluster) node(num int) *testNode { return tc.nodes[num-1] }

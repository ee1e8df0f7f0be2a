package replicator

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"google.golang.org/grpc"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/replicator/member"
	"github.com/lazaret/lazaret/replicator/member/membertest"
)

// testNode is one node of a testCluster.
type testNode struct {
	num   int
	node  *Node
	store *objstore.Store
}

// testCluster is N in-process nodes on a membertest.Network. (Tests outside
// this package use replicatortest.Cluster, built the same way; this one
// cannot be shared with them, since replicatortest imports replicator.)
type testCluster struct {
	t     testing.TB
	net   *membertest.Network
	opts  []grpc.ServerOption
	nodes []*testNode // nodes[i] has number i+1
}

// newTestCluster starts n nodes numbered 1..n. sync selects fsync'd stores
// (benchmarks) or not (functional tests, for speed; durability is
// objstore's own test subject). edit adjusts each node's config; opts are
// given to every node's gRPC server.
func newTestCluster(t testing.TB, n int, sync bool, edit func(*Config), opts ...grpc.ServerOption) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, net: membertest.NewNetwork(), opts: opts}
	for i := 1; i <= n; i++ {
		tc.net.Add(member.Member{Name: fmt.Sprintf("node%d", i), Number: i, PeerAddr: fmt.Sprintf("bufconn:%d", i), State: member.Alive})
	}
	for i := 1; i <= n; i++ {
		tc.nodes = append(tc.nodes, tc.startNode(t, i, openTestStore(t, t.TempDir(), sync), edit))
	}
	t.Cleanup(tc.close)
	return tc
}

// testLog is the nodes' log: discarded, or on stderr with LAZARET_TEST_LOG set.
func testLog() *slog.Logger {
	if os.Getenv("LAZARET_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// openTestStore opens a store in dir with small caches; sync selects
// fsync'd writes (benchmarks) or not (functional tests, for speed;
// durability is objstore's own test subject).
func openTestStore(t testing.TB, dir string, sync bool) *objstore.Store {
	t.Helper()
	scfg := objstore.DefaultConfig(dir)
	scfg.SyncWrites = sync
	scfg.MemTableSize = 8 << 20
	scfg.BlockCacheSize = 1 << 20
	scfg.IndexCacheSize = 1 << 20
	scfg.ValueLogFileSize = 32 << 20
	store, err := objstore.Open(scfg, testLog(), lazaret.SystemClock{})
	if err != nil {
		t.Fatalf("objstore.Open: %v", err)
	}
	return store
}

// startNode starts node num on store and serves its peer API on the
// network. edit adjusts its config.
func (tc *testCluster) startNode(t testing.TB, num int, store *objstore.Store, edit func(*Config)) *testNode {
	t.Helper()
	cfg := DefaultConfig()
	cfg.NodeNumber = num
	cfg.Name = fmt.Sprintf("node%d", num)
	cfg.Cluster.Members = tc.net.Membership(num)
	cfg.Cluster.Peers = tc.net.Dialer(num)
	if edit != nil {
		edit(&cfg)
	}
	node, err := New(cfg, store, testLog().With("node", num), lazaret.SystemClock{}, nil)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := tc.net.Serve(num, cluster.NewPeerService(node.PeerHandler(), nil), tc.opts...); err != nil {
		t.Fatal(err)
	}
	return &testNode{num: num, node: node, store: store}
}

func (tc *testCluster) close() {
	for _, n := range tc.nodes {
		n.node.Close()
	}
	for _, n := range tc.nodes {
		tc.net.Stop(n.num)
		if err := n.store.Close(); err != nil {
			tc.t.Errorf("closing store %d: %v", n.num, err)
		}
	}
}

// node returns the node numbered num.
func (tc *testCluster) node(num int) *testNode { return tc.nodes[num-1] }

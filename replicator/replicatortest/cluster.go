// Package replicatortest runs a Lazaret cluster in one process for tests:
// N replicator.Nodes, each on its own store in a temporary directory, on a
// membertest.Network (membership set by the test, peer API over in-memory
// listeners). Frontend tests (S3, FUSE, web) use a node of it as their
// lazaret.Quarantine and can fail, restore or hang nodes while they run.
// It is the same twin the replicator's own tests use.
package replicatortest

import (
	"fmt"
	"log/slog"
	"os"
	"testing"

	"google.golang.org/grpc"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/replicator/member"
	"github.com/lazaret/lazaret/replicator/member/membertest"
)

// Options adjust a Cluster. The zero value is a cluster of unsynced stores
// with default node configurations, logging nowhere.
type Options struct {
	// Sync fsyncs the stores' writes (for benchmarks); tests leave it off
	// for speed (durability is objstore's own test subject).
	Sync bool
	// Edit adjusts each node's configuration before it starts.
	Edit func(*replicator.Config)
	// Log receives the nodes' logs; nil discards them, unless
	// LAZARET_TEST_LOG is set (then debug logs go to stderr).
	Log *slog.Logger
	// ServerOptions are given to every node's peer API server.
	ServerOptions []grpc.ServerOption
}

// Node is one node of a Cluster.
type Node struct {
	// Number is the node's number (1..N); its name is "node<Number>".
	Number int
	// Node is the node's data path; it implements lazaret.Quarantine.
	Node *replicator.Node
	// Store is the node's local store.
	Store *objstore.Store
}

// Cluster is N in-process nodes numbered 1..N.
type Cluster struct {
	// Net is the cluster's network: SetDown, SetState and SetPutHook fail,
	// flap or hang nodes.
	Net *membertest.Network

	t     testing.TB
	opts  Options
	nodes []*Node
}

// New starts a cluster of n nodes; it is closed when the test ends.
func New(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
		if os.Getenv("LAZARET_TEST_LOG") != "" {
			opts.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		}
	}
	c := &Cluster{Net: membertest.NewNetwork(), t: t, opts: opts}
	for i := 1; i <= n; i++ {
		c.Net.Add(member.Member{Name: fmt.Sprintf("node%d", i), Number: i, PeerAddr: fmt.Sprintf("bufconn:%d", i), State: member.Alive})
	}
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, c.start(i))
	}
	// Registered after start's t.TempDir calls, so that it runs before
	// their removal (cleanups run last registered first).
	t.Cleanup(c.close)
	return c
}

// Node returns the node numbered num (1..N).
func (c *Cluster) Node(num int) *Node { return c.nodes[num-1] }

// Nodes returns every node, in number order.
func (c *Cluster) Nodes() []*Node { return c.nodes }

// start opens a store for node num and starts the node on it.
func (c *Cluster) start(num int) *Node {
	c.t.Helper()
	scfg := objstore.DefaultConfig(c.t.TempDir())
	scfg.SyncWrites = c.opts.Sync
	scfg.MemTableSize = 8 << 20
	scfg.BlockCacheSize = 1 << 20
	scfg.IndexCacheSize = 1 << 20
	scfg.ValueLogFileSize = 32 << 20
	store, err := objstore.Open(scfg, c.opts.Log, lazaret.SystemClock{})
	if err != nil {
		c.t.Fatalf("replicatortest: objstore.Open: %v", err)
	}
	cfg := replicator.DefaultConfig()
	cfg.NodeNumber = num
	cfg.Name = fmt.Sprintf("node%d", num)
	cfg.Cluster.Members = c.Net.Membership(num)
	cfg.Cluster.Peers = c.Net.Dialer(num)
	if c.opts.Edit != nil {
		c.opts.Edit(&cfg)
	}
	node, err := replicator.New(cfg, store, c.opts.Log.With("node", num), lazaret.SystemClock{}, nil)
	if err != nil {
		store.Close()
		c.t.Fatalf("replicatortest: replicator.New: %v", err)
	}
	if err := c.Net.Serve(num, cluster.NewPeerService(node.PeerHandler(), nil), c.opts.ServerOptions...); err != nil {
		node.Close()
		store.Close()
		c.t.Fatal(err)
	}
	return &Node{Number: num, Node: node, Store: store}
}

// close closes every node, then stops the network and closes the stores.
func (c *Cluster) close() {
	for _, n := range c.nodes {
		n.Node.Close()
	}
	for _, n := range c.nodes {
		c.Net.Stop(n.Number)
		if err := n.Store.Close(); err != nil {
			c.t.Errorf("replicatortest: closing store %d: %v", n.Number, err)
		}
	}
}

package test

// The network-namespace harness of the fault tests (netns_fault_test.go).
//
// Each node of a netCluster runs in its own network namespace
// lz-<pid>-<seq>-n<k>, with one veth interface (eth0, 10.77.<run>.<k>/16)
// whose other end is a port p<k> of the bridge br0 in a dedicated "switch"
// namespace lz-<pid>-<seq>-sw. Nothing touches the host's own interfaces,
// and the addresses are used only inside these namespaces. Cutting node k's
// link sets its bridge port down; restoring sets it up again.
//
// Nodes are bootstrapped as an operator would: `lazaret init` in node 1's
// namespace, then `lazaret join --peer 10.77.<run>.1:1027` in each other's,
// then `lazaret serve --config`. Gossip uses the "lan" timings, as nodes on
// separate hosts would: the "local" ones (200 ms probe timeout) make five
// race-built nodes on a loaded 2-CPU machine flap. Every node's config,
// credentials, data, unix socket and log live in its own directory on the
// host file system; the test talks to the nodes through their unix
// sockets, which work across network namespaces.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// netnsSeq numbers the netClusters of this test process.
var netnsSeq atomic.Int64

// netnsNameRE matches the namespaces this harness creates (lz-… for the
// fault tests, lzsoak-… for the soak); group 1 is the test process's pid.
var netnsNameRE = regexp.MustCompile(`^lz(?:soak)?-([0-9]+)-[0-9]+-(sw|svc|n[0-9]+)$`)

// ipCmd runs `ip args...` with a deadline.
func ipCmd(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// sweepNetns deletes namespaces left by earlier runs of this harness whose
// test process is gone (a test binary killed before its cleanups ran).
// Namespaces of test processes still running are left alone.
func sweepNetns(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ip", "netns", "list").Output()
	if err != nil {
		return
	}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		m := netnsNameRE.FindStringSubmatch(f[0])
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() || syscall.Kill(pid, 0) != syscall.ESRCH {
			continue
		}
		if err := ipCmd("netns", "del", f[0]); err != nil {
			t.Logf("sweeping leftover namespace: %v", err)
		} else {
			t.Logf("swept leftover namespace %s", f[0])
		}
	}
}

// netCluster is a cluster of lazaret nodes in network namespaces.
type netCluster struct {
	t      *testing.T
	prefix string // lz-<pid>-<seq>
	sw     string // the switch namespace
	net    string // the nodes' network, for log lines
	dir    string
	nodes  []*netNode // node k is nodes[k-1]
	// extraArgs(k) is added to node k's serve flags (nil: none).
	extraArgs func(k int) []string
}

// netLayout names a netCluster's namespaces and addresses.
type netLayout struct {
	prefix string             // namespace names start with it
	addr   func(k int) string // node k's address
	mask   int                // prefix length of the nodes' network
	net    string             // the network, for log lines
}

// netNode is one node: its namespace, address, directory and process.
type netNode struct {
	c      *netCluster
	k      int
	ns     string
	addr   string
	dir    string
	number int // node number in the cluster (from its status)

	mu sync.Mutex
	p  *netProc // the running serve process, nil when stopped
}

// netProc is one `lazaret serve` process.
type netProc struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// newNetCluster makes the switch namespace and n node namespaces and wires
// them up. It skips the test where namespaces are not permitted.
func newNetCluster(t *testing.T, n int) *netCluster {
	t.Helper()
	seq := int(netnsSeq.Add(1))
	run := (os.Getpid()+seq)%254 + 1
	return newNetClusterIn(t, n, netLayout{
		prefix: fmt.Sprintf("lz-%d-%d", os.Getpid(), seq),
		addr:   func(k int) string { return fmt.Sprintf("10.77.%d.%d", run, k) },
		mask:   16,
		net:    fmt.Sprintf("10.77.%d.0/16", run),
	})
}

// newNetClusterIn is newNetCluster with the given names and addresses.
func newNetClusterIn(t *testing.T, n int, lay netLayout) *netCluster {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("network namespaces need root (ip netns add); skipping the network fault test")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Fatalf("ip (iproute2) not found; test/deps.sh installs it: %v", err)
	}
	sweepNetns(t)
	c := &netCluster{t: t, prefix: lay.prefix, net: lay.net, dir: shortTempDir(t)}
	c.sw = c.prefix + "-sw"
	var made []string
	// Registered first, so it runs last: after every process is gone.
	t.Cleanup(func() {
		for i := len(made) - 1; i >= 0; i-- {
			if err := ipCmd("netns", "del", made[i]); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	if err := ipCmd("netns", "add", c.sw); err != nil {
		t.Skipf("network namespaces are not permitted here (%v); skipping the network fault test", err)
	}
	made = append(made, c.sw)
	must := func(args ...string) {
		t.Helper()
		if err := ipCmd(args...); err != nil {
			t.Fatal(err)
		}
	}
	must("-n", c.sw, "link", "set", "lo", "up")
	must("-n", c.sw, "link", "add", "name", "br0", "type", "bridge")
	must("-n", c.sw, "link", "set", "br0", "up")
	for k := 1; k <= n; k++ {
		nd := &netNode{
			c: c, k: k, ns: fmt.Sprintf("%s-n%d", c.prefix, k),
			addr: lay.addr(k),
			dir:  filepath.Join(c.dir, "n"+strconv.Itoa(k)),
		}
		must("netns", "add", nd.ns)
		made = append(made, nd.ns)
		port := "p" + strconv.Itoa(k)
		must("-n", nd.ns, "link", "set", "lo", "up")
		must("-n", c.sw, "link", "add", "name", port, "type", "veth", "peer", "name", "eth0", "netns", nd.ns)
		must("-n", c.sw, "link", "set", port, "master", "br0")
		must("-n", c.sw, "link", "set", port, "up")
		must("-n", nd.ns, "addr", "add", fmt.Sprintf("%s/%d", nd.addr, lay.mask), "dev", "eth0")
		must("-n", nd.ns, "link", "set", "eth0", "up")
		c.nodes = append(c.nodes, nd)
	}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			nd.kill()
		}
	})
	return c
}

// node returns node k (1-based).
func (c *netCluster) node(k int) *netNode { return c.nodes[k-1] }

// cut takes node k's link down on the bridge side.
func (c *netCluster) cut(k int) {
	c.t.Helper()
	if err := ipCmd("-n", c.sw, "link", "set", "p"+strconv.Itoa(k), "down"); err != nil {
		c.t.Fatal(err)
	}
}

// restore brings node k's link back up.
func (c *netCluster) restore(k int) {
	c.t.Helper()
	if err := ipCmd("-n", c.sw, "link", "set", "p"+strconv.Itoa(k), "up"); err != nil {
		c.t.Fatal(err)
	}
}

// bootstrap creates the cluster with init on node 1 and join on the others
// (policy 3+2 for five nodes), starts every node, and waits until each
// node's status shows every member alive.
func (c *netCluster) bootstrap(policy string) {
	t := c.t
	t.Helper()
	start := time.Now()
	first := c.node(1)
	args := []string{"init", "--dir", first.dir, "--name", "n1", "--addr", first.addr, "--gossip-profile", "lan"}
	if policy != "" {
		args = append(args, "--policy", policy)
	}
	token := tokenFrom(t, first.mustLz(30*time.Second, args...))
	ca := filepath.Join(first.dir, "cluster", "ca.pem")
	for _, nd := range c.nodes {
		if nd.k > 1 {
			nd.mustLz(60*time.Second, "join", "--peer", first.addr+":1027", "--token", token, "--ca", ca,
				"--dir", nd.dir, "--name", "n"+strconv.Itoa(nd.k), "--addr", nd.addr, "--gossip-profile", "lan")
		}
		nd.start()
		st := nd.status(10 * time.Second)
		if st == nil {
			t.Fatalf("node %d answers no status", nd.k)
		}
		nd.number = st.Node
	}
	c.waitAllAlive(nil, 60*time.Second)
	t.Logf("%d-node cluster in namespaces %s-* up in %v (network %s)", len(c.nodes), c.prefix, time.Since(start).Round(time.Millisecond), c.net)
}

// waitAllAlive waits until every node not in down lists every node not in
// down alive (and reported) and none of those in down alive.
func (c *netCluster) waitAllAlive(down []int, timeout time.Duration) {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	var why string
	for {
		why = ""
		for _, nd := range c.nodes {
			if slices.Contains(down, nd.k) {
				continue
			}
			st := nd.status(5 * time.Second)
			if st == nil {
				why = fmt.Sprintf("node %d: no status", nd.k)
				break
			}
			states := map[int]string{}
			for _, m := range st.Members {
				states[m.Node] = m.State
				if m.State == "alive" && !m.Reported {
					why = fmt.Sprintf("node %d: member %d alive but not reported (%s)", nd.k, m.Node, m.Error)
				}
			}
			for _, o := range c.nodes {
				s := states[o.number]
				if slices.Contains(down, o.k) {
					if s == "alive" {
						why = fmt.Sprintf("node %d sees stopped node %d alive", nd.k, o.k)
					}
				} else if s != "alive" {
					why = fmt.Sprintf("node %d sees node %d %q", nd.k, o.k, s)
				}
			}
			if why != "" {
				break
			}
		}
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("membership did not settle within %v: %s\n%s", timeout, why, c.dump())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// lz runs a lazaret command inside the node's namespace.
func (nd *netNode) lz(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	full := append([]string{"netns", "exec", nd.ns, binary}, args...)
	out, err := exec.CommandContext(ctx, "ip", full...).CombinedOutput()
	return string(out), err
}

func (nd *netNode) mustLz(timeout time.Duration, args ...string) string {
	nd.c.t.Helper()
	out, err := nd.lz(timeout, args...)
	if err != nil {
		nd.c.t.Fatalf("node %d: lazaret %s: %v\n%s", nd.k, strings.Join(args, " "), err, out)
	}
	return out
}

func (nd *netNode) config() string  { return filepath.Join(nd.dir, "lazaret.toml") }
func (nd *netNode) socket() string  { return filepath.Join(nd.dir, "lazaret.sock") }
func (nd *netNode) dataDir() string { return filepath.Join(nd.dir, "data") }
func (nd *netNode) logPath() string { return filepath.Join(nd.dir, "log") }

// start runs `lazaret serve --config` in the node's namespace and waits for
// its API to answer.
func (nd *netNode) start() {
	nd.c.t.Helper()
	if err := nd.startErr(60 * time.Second); err != nil {
		nd.c.t.Fatal(err)
	}
}

// startErr is start that returns what went wrong instead of failing the
// test (a node whose disk is full or read-only may not come up).
func (nd *netNode) startErr(wait time.Duration) error {
	nd.mu.Lock()
	if nd.p != nil {
		nd.mu.Unlock()
		return fmt.Errorf("node %d is already running", nd.k)
	}
	log, err := os.OpenFile(nd.logPath(), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		nd.mu.Unlock()
		return err
	}
	fmt.Fprintf(log, "==== harness: start at %s ====\n", time.Now().Format(time.RFC3339Nano))
	// ip netns exec execs the command without forking, so the process is
	// lazaret itself and dies with the test (Pdeathsig).
	args := []string{"netns", "exec", nd.ns, binary, "serve", "--config", nd.config()}
	if nd.c.extraArgs != nil {
		args = append(args, nd.c.extraArgs(nd.k)...)
	}
	cmd := exec.Command("ip", args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		nd.mu.Unlock()
		return err
	}
	p := &netProc{cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); log.Close(); close(p.done) }()
	nd.p = p
	nd.mu.Unlock()

	deadline := time.Now().Add(wait)
	for {
		if nd.status(2*time.Second) != nil {
			return nil
		}
		select {
		case <-p.done:
			nd.mu.Lock()
			if nd.p == p {
				nd.p = nil
			}
			nd.mu.Unlock()
			return fmt.Errorf("node %d: lazaret serve exited at start-up:\n%s", nd.k, nd.logTail(60))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d: lazaret serve did not answer within %v:\n%s", nd.k, wait, nd.logTail(60))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// proc returns the running process, or nil.
func (nd *netNode) proc() *netProc {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.p
}

// stop sends SIGTERM and waits up to 30 s for a clean exit.
func (nd *netNode) stop() {
	t := nd.c.t
	t.Helper()
	p := nd.proc()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		nd.kill()
		t.Fatalf("node %d did not stop on SIGTERM within 30s:\n%s", nd.k, nd.logTail(40))
	}
	nd.mu.Lock()
	nd.p = nil
	nd.mu.Unlock()
}

// kill sends SIGKILL and waits for the process to be gone.
func (nd *netNode) kill() {
	p := nd.proc()
	if p == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	nd.mu.Lock()
	nd.p = nil
	nd.mu.Unlock()
}

// wipe removes the node's data directory, keeping its config and its
// cluster identity (certificate, key, CA, gossip key).
func (nd *netNode) wipe() {
	t := nd.c.t
	t.Helper()
	if nd.proc() != nil {
		t.Fatalf("node %d: wipe while running", nd.k)
	}
	if err := os.RemoveAll(nd.dataDir()); err != nil {
		t.Fatal(err)
	}
	for _, keep := range []string{nd.config(), filepath.Join(nd.dir, "cluster")} {
		if _, err := os.Stat(keep); err != nil {
			t.Fatalf("node %d: %v after wiping the data", nd.k, err)
		}
	}
}

// status asks the node for its status (with the cluster's members) over its
// socket; nil if it does not answer within timeout.
func (nd *netNode) status(timeout time.Duration) *lazaret.NodeStatus {
	st, _ := nd.statusErr(timeout)
	return st
}

func (nd *netNode) statusErr(timeout time.Duration) (*lazaret.NodeStatus, error) {
	c, err := rpc.DialUnix(nd.socket())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return c.Status(ctx)
}

// member returns the figures of node number num in st.
func member(st *lazaret.NodeStatus, num int) *lazaret.MemberStatus {
	for i := range st.Members {
		if st.Members[i].Node == num {
			return &st.Members[i]
		}
	}
	return nil
}

// rpcDial dials the node's API socket; the caller closes the client.
func rpcDial(nd *netNode) (*rpc.Client, error) { return rpc.DialUnix(nd.socket()) }

// client dials the node's API socket; the caller closes it.
func (nd *netNode) client() *rpc.Client {
	nd.c.t.Helper()
	c, err := rpc.DialUnix(nd.socket())
	if err != nil {
		nd.c.t.Fatal(err)
	}
	return c
}

// logTail returns the last n lines of the node's log.
func (nd *netNode) logTail(n int) string {
	b, _ := os.ReadFile(nd.logPath())
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// dump describes every node for a failure message: its status and the
// tail of its log.
func (c *netCluster) dump() string {
	var b strings.Builder
	for _, nd := range c.nodes {
		fmt.Fprintf(&b, "---- node %d (%s, %s) ----\n", nd.k, nd.ns, nd.addr)
		if nd.proc() == nil {
			b.WriteString("(stopped)\n")
		} else if st, err := nd.statusErr(5 * time.Second); err != nil {
			fmt.Fprintf(&b, "status: %v\n", err)
		} else {
			js, _ := json.MarshalIndent(st.Members, "", " ")
			fmt.Fprintf(&b, "status: messages %d, health %v, members:\n%s\n", st.Messages, st.Health, js)
		}
		fmt.Fprintf(&b, "log tail:\n%s\n", nd.logTail(25))
	}
	return b.String()
}

// listAll lists every record the node holds, in every state, by id.
func listAll(ctx context.Context, c *rpc.Client) (map[lazaret.ID]*lazaret.Metadata, error) {
	all := map[lazaret.ID]*lazaret.Metadata{}
	q := lazaret.ListQuery{States: []lazaret.State{lazaret.StateQuarantined, lazaret.StateReleased, lazaret.StateDeleted}, Limit: 1000}
	for range 10000 {
		page, err := c.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			all[m.ID] = m
		}
		if page.NextCursor == "" {
			return all, nil
		}
		q.Cursor = page.NextCursor
	}
	return nil, errors.New("list: more than 10000 pages")
}

// netMsg is one acknowledged message: its body is ecBody(seed, size).
type netMsg struct {
	id      lazaret.ID
	seed    uint64
	size    int
	sum     [32]byte
	node    int // k of the node that acknowledged it
	at      time.Time
	deleted bool // the test deleted it
}

// ackLog records acknowledged messages from concurrent writers.
type ackLog struct {
	mu   sync.Mutex
	msgs []*netMsg
	seed atomic.Uint64
}

func (a *ackLog) add(m *netMsg) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.msgs = append(a.msgs, m)
}

func (a *ackLog) all() []*netMsg {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.msgs)
}

// put stores one message of the given size on nd and records it when
// acknowledged.
func (a *ackLog) put(ctx context.Context, c *rpc.Client, nd *netNode, size int) (*netMsg, error) {
	m := &netMsg{seed: a.seed.Add(1), size: size, node: nd.k}
	body := ecBody(m.seed, size)
	m.sum = sha256.Sum256(body)
	md, err := c.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.org"}}, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if md.SHA256 != m.sum {
		return nil, fmt.Errorf("put %s: stored sha256 %x, sent %x", md.ID, md.SHA256, m.sum)
	}
	m.id, m.at = md.ID, time.Now()
	a.add(m)
	return m, nil
}

// checkConverged reports why the running nodes (all but those in down) are
// not converged, or "" when they are: every node sees every other running
// node alive and reports no under-protected message; every node holds
// byte-identical metadata for the same set of ids; every acknowledged
// message is there, deleted exactly when the test deleted it, and every
// live one has k+m shards (m = wantM) on distinct nodes. It returns the
// metadata of the first running node.
func (c *netCluster) checkConverged(ctx context.Context, acked []*netMsg, wantM int, down []int) (string, map[lazaret.ID]*lazaret.Metadata) {
	var up []*netNode
	for _, nd := range c.nodes {
		if !slices.Contains(down, nd.k) {
			up = append(up, nd)
		}
	}
	for _, nd := range up {
		st, err := nd.statusErr(5 * time.Second)
		if err != nil {
			return fmt.Sprintf("node %d: status: %v", nd.k, err), nil
		}
		for _, o := range up {
			m := member(st, o.number)
			switch {
			case m == nil:
				return fmt.Sprintf("node %d does not list node %d", nd.k, o.k), nil
			case m.State != "alive" || !m.Reported:
				return fmt.Sprintf("node %d sees node %d %s (reported %v %s)", nd.k, o.k, m.State, m.Reported, m.Error), nil
			case m.UnderProtected != 0:
				return fmt.Sprintf("node %d reports node %d with %d under-protected messages (%d bytes, oldest %v)", nd.k, o.k, m.UnderProtected, m.UnderProtectedBytes, m.OldestUnderProtected), nil
			}
		}
	}
	var ref map[lazaret.ID]*lazaret.Metadata
	var refJSON map[lazaret.ID]string
	for i, nd := range up {
		cl, err := rpc.DialUnix(nd.socket())
		if err != nil {
			return fmt.Sprintf("node %d: %v", nd.k, err), nil
		}
		all, err := listAll(ctx, cl)
		cl.Close()
		if err != nil {
			return fmt.Sprintf("node %d: list: %v", nd.k, err), nil
		}
		js := make(map[lazaret.ID]string, len(all))
		for id, m := range all {
			b, _ := json.Marshal(m)
			js[id] = string(b)
		}
		if i == 0 {
			ref, refJSON = all, js
			continue
		}
		if len(js) != len(refJSON) {
			return fmt.Sprintf("node %d holds %d records, node %d holds %d", nd.k, len(js), up[0].k, len(refJSON)), nil
		}
		for id, s := range js {
			if refJSON[id] != s {
				return fmt.Sprintf("record %s differs: node %d has %s; node %d has %s", id, up[0].k, refJSON[id], nd.k, s), nil
			}
		}
	}
	for _, a := range acked {
		m := ref[a.id]
		switch {
		case m == nil:
			return fmt.Sprintf("acknowledged message %s (put on node %d) is missing", a.id, a.node), ref
		case a.deleted != (m.State == lazaret.StateDeleted):
			return fmt.Sprintf("message %s: state %v, deleted by the test: %v", a.id, m.State, a.deleted), ref
		case a.deleted:
			continue
		case m.SHA256 != a.sum:
			return fmt.Sprintf("message %s: sha256 %x, want %x", a.id, m.SHA256, a.sum), ref
		}
		if why := fullyProtected(m, wantM); why != "" {
			return why, ref
		}
	}
	return "", ref
}

// fullyProtected says why m is not stored as k+m shards on distinct nodes.
func fullyProtected(m *lazaret.Metadata, wantM int) string {
	p := m.Placement
	nodes := map[int]bool{}
	idx := map[int]bool{}
	for _, s := range p.Shards {
		nodes[s.Node], idx[s.Index] = true, true
	}
	if p.UnderProtected || p.M != wantM || len(p.Shards) != p.K+p.M || len(nodes) != p.K+p.M || len(idx) != p.K+p.M {
		b, _ := json.Marshal(p)
		return fmt.Sprintf("message %s is not fully protected (want m=%d, k+m shards on distinct nodes): placement %s", m.ID, wantM, b)
	}
	return ""
}

// waitConverged polls checkConverged every 2 s until it passes or timeout;
// on timeout it fails the test with the reason and a dump of every node.
func (c *netCluster) waitConverged(acked []*netMsg, wantM int, down []int, timeout time.Duration) (time.Duration, map[lazaret.ID]*lazaret.Metadata) {
	c.t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	var why string
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		w, ref := c.checkConverged(ctx, acked, wantM, down)
		cancel()
		if w == "" {
			return time.Since(start), ref
		}
		if w != why {
			c.t.Logf("+%v not converged: %s", time.Since(start).Round(time.Second), netClip(w, 400))
			why = w
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("not converged within %v: %s\n%s", timeout, why, c.dump())
		}
		time.Sleep(2 * time.Second)
	}
}

// readAll reads every live acknowledged message from every node in from,
// checking the bytes.
func (c *netCluster) readAll(acked []*netMsg, from []int) error {
	clients := map[int]*rpc.Client{}
	for _, k := range from {
		cl, err := rpc.DialUnix(c.node(k).socket())
		if err != nil {
			return err
		}
		defer cl.Close()
		clients[k] = cl
	}
	var live []*netMsg
	for _, a := range acked {
		if !a.deleted {
			live = append(live, a)
		}
	}
	return parallel(len(live)*len(from), 8, func(i int) error {
		a, k := live[i/len(from)], from[i%len(from)]
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, rc, err := clients[k].Open(ctx, a.id)
		if err != nil {
			return fmt.Errorf("node %d: get %s (put on node %d): %w", k, a.id, a.node, err)
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.Copy(h, rc)
		if err != nil {
			return fmt.Errorf("node %d: read %s (put on node %d): %w", k, a.id, a.node, err)
		}
		if n != int64(a.size) || !bytes.Equal(h.Sum(nil), a.sum[:]) {
			return fmt.Errorf("node %d: %s (put on node %d) read back %d bytes that differ from the %d put", k, a.id, a.node, n, a.size)
		}
		return nil
	})
}

// assignedShards counts the shards the metadata places on node number num
// (live messages only).
func assignedShards(ref map[lazaret.ID]*lazaret.Metadata, num int) int64 {
	var n int64
	for _, m := range ref {
		if m.State == lazaret.StateDeleted {
			continue
		}
		for _, s := range m.Placement.Shards {
			if s.Node == num {
				n++
			}
		}
	}
	return n
}

// netClip shortens s to n bytes for a log line.
func netClip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

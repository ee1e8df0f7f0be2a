package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lazaret/lazaret/proto/rpc"
)

// devNode is one node process of `lazaret dev`.
type devNode struct {
	k      int
	ip     net.IP
	dir    string
	cmd    *exec.Cmd
	log    *os.File
	exited chan struct{}
	relay  string // serve --relay, if set
}

func (d *devNode) config() string { return filepath.Join(d.dir, "lazaret.toml") }
func (d *devNode) socket() string { return filepath.Join(d.dir, "lazaret.sock") }
func (d *devNode) addr() string   { return d.ip.String() }

// dev is `lazaret dev`: an N-node cluster on this host, one OS process per
// node on 127.0.0.1 ... 127.0.0.N (each with its own :1027 peer port and
// :7946 gossip port), bootstrapped with this binary's init and join exactly
// as an operator would. DIR/nodeK/ holds each node's lazaret.toml, cluster/
// credentials, data/, lazaret.sock, pid and log. Running it again on the same
// DIR restarts the same cluster with its data; nodes added to N are joined.
// SIGINT/SIGTERM stops every node cleanly.
func (m *Main) dev(ctx context.Context, args []string) error {
	fs := m.newFlags("dev", "")
	nodes := fs.Int("nodes", 3, "number of nodes (1..250)")
	dir := fs.String("dir", "/tmp/lazaret-dev", "cluster directory")
	policy := fs.String("policy", "", `erasure code "k+m" for a new cluster; empty = by cluster size`)
	firstIP := fs.String("first-ip", "127.0.0.1", "loopback address of node 1; node K gets the K-1th next one")
	s3Nodes := fs.Int("s3-nodes", 1, "nodes 1..N serve the S3 API on port 9000 of their address (0: none)")
	relay := fs.String("relay", "", "every node releases to HOST:PORT (serve --relay)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *nodes < 1 || *nodes > 250 {
		return usagef("--nodes %d: want 1..250", *nodes)
	}
	first := net.ParseIP(*firstIP).To4()
	if first == nil || !first.IsLoopback() || int(first[3])+*nodes-1 > 254 {
		return usagef("--first-ip %q: want an IPv4 loopback address with room for %d nodes in its last byte", *firstIP, *nodes)
	}
	abs, err := filepath.Abs(*dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	c := &devCluster{m: m, root: abs, s3Nodes: *s3Nodes, relay: *relay}
	if err := c.start(ctx, self, first, *nodes, *policy); err != nil {
		c.stopAll()
		return err
	}
	c.banner()
	if c.s3Nodes > 0 {
		if err := m.devPrintS3(c.running[0], abs); err != nil { // dev_s3.go
			c.stopAll()
			return err
		}
	}
	c.supervise(ctx)
	return nil
}

// devCluster is the node processes `lazaret dev` runs.
type devCluster struct {
	m       *Main
	root    string
	s3Nodes int    // nodes 1..s3Nodes serve the S3 API
	relay   string // every node's serve --relay
	running []*devNode
}

// start bootstraps (first run) and starts nodes 1..n one after the other,
// each waited for before the next.
func (c *devCluster) start(ctx context.Context, self string, first net.IP, n int, policy string) error {
	tokenPath := filepath.Join(c.root, "join-token")
	for k := 1; k <= n; k++ {
		ip := net.IPv4(first[0], first[1], first[2], first[3]+byte(k-1)).To4()
		node := &devNode{k: k, ip: ip, dir: filepath.Join(c.root, "node"+strconv.Itoa(k))}
		if _, err := os.Stat(node.config()); err != nil {
			if err := c.m.devBootstrap(ctx, self, c.root, node, policy, tokenPath); err != nil {
				return fmt.Errorf("bootstrapping node %d: %w", k, err)
			}
		}
		if k <= c.s3Nodes {
			if err := devEnableS3(node, c.root); err != nil { // dev_s3.go
				return err
			}
		}
		node.relay = c.relay
		if err := c.m.devStart(self, node); err != nil {
			return err
		}
		c.running = append(c.running, node)
		if err := devWait(ctx, node, 60*time.Second); err != nil {
			return err
		}
	}
	return nil
}

// banner tells the operator where the nodes are and how to use them.
func (c *devCluster) banner() {
	w, running := c.m.Stdout, c.running
	fmt.Fprintf(w, "\nlazaret dev: %d-node cluster running in %s\n", len(running), c.root)
	for _, n := range running {
		fmt.Fprintf(w, "  node%d  pid %-7d peer %s:%d  socket %s  http %s  log %s\n", n.k, n.cmd.Process.Pid, n.addr(), DefaultPeerPort, n.socket(), n.httpAddr(), filepath.Join(n.dir, "log"))
	}
	fmt.Fprintf(w, `
Use it from another shell:
  export LAZARET_SOCKET=%s
  lazaret status
  lazaret put --from a@example.org --to b@example.org message.eml
  lazaret ls
Any node's socket works (LAZARET_SOCKET=%s ...).
Ctrl-C stops every node; the same command restarts the cluster with its data.
`, running[0].socket(), running[len(running)-1].socket())
}

// supervise reports nodes that exit until ctx ends, then stops them all.
func (c *devCluster) supervise(ctx context.Context) {
	exited := make(chan *devNode, len(c.running))
	for _, n := range c.running {
		go func() { <-n.exited; exited <- n }()
	}
	for {
		select {
		case <-ctx.Done():
			fmt.Fprintln(c.m.Stdout, "\nlazaret dev: stopping")
			c.stopAll()
			return
		case n := <-exited:
			fmt.Fprintf(c.m.Stderr, "lazaret dev: node %d exited (%v); see %s\n", n.k, n.cmd.ProcessState, filepath.Join(n.dir, "log"))
		}
	}
}

// stopAll stops the running nodes (SIGTERM, last started first), killing
// one that takes over 30 s.
func (c *devCluster) stopAll() {
	for i := len(c.running) - 1; i >= 0; i-- {
		c.running[i].cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range c.running {
		select {
		case <-n.exited:
		case <-time.After(30 * time.Second):
			fmt.Fprintf(c.m.Stderr, "lazaret dev: node %d did not stop within 30s; killing it\n", n.k)
			n.cmd.Process.Kill()
			<-n.exited
		}
		os.Remove(filepath.Join(n.dir, "pid"))
	}
	fmt.Fprintf(c.m.Stdout, "lazaret dev: stopped %d nodes; run the same command again to restart them with their data\n", len(c.running))
}

// devBootstrap creates node n's directory with `lazaret init` (node 1) or
// `lazaret join` through node 1 (the others).
func (m *Main) devBootstrap(ctx context.Context, self, root string, n *devNode, policy, tokenPath string) error {
	common := []string{"--dir", n.dir, "--name", "node" + strconv.Itoa(n.k), "--addr", n.addr(), "--gossip-profile", "local"}
	var args []string
	if n.k == 1 {
		args = append([]string{"init", "--policy", policy}, common...)
	} else {
		tok, err := os.ReadFile(tokenPath)
		if err != nil {
			return fmt.Errorf("the join token of this dev cluster is unknown (%v); rotate one with 'lazaret token rotate --config %s' and write it to %s", err, filepath.Join(root, "node1", "lazaret.toml"), tokenPath)
		}
		node1, err := LoadConfig(filepath.Join(root, "node1", "lazaret.toml"))
		if err != nil {
			return err
		}
		args = append([]string{"join", "--peer", node1.Cluster.advertised(node1.Cluster.PeerListen), "--token", strings.TrimSpace(string(tok)),
			"--ca", filepath.Join(root, "node1", "cluster", "ca.pem")}, common...)
	}
	cmd := exec.CommandContext(ctx, self, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	os.WriteFile(filepath.Join(n.dir, "bootstrap.log"), out.Bytes(), 0o640)
	if err != nil {
		return fmt.Errorf("lazaret %s: %v: %s", args[0], err, strings.TrimSpace(out.String()))
	}
	fmt.Fprintf(m.Stdout, "lazaret dev: %s node%d (%s)\n", map[bool]string{true: "initialised cluster with", false: "joined"}[n.k == 1], n.k, n.addr())
	if n.k == 1 {
		sc := bufio.NewScanner(&out)
		for sc.Scan() {
			if tok, ok := strings.CutPrefix(sc.Text(), "join token: "); ok {
				return os.WriteFile(tokenPath, []byte(tok+"\n"), 0o600)
			}
		}
		return errors.New("lazaret init printed no join token")
	}
	return nil
}

// devStart starts `lazaret serve` for n, logging to DIR/nodeK/log.
func (m *Main) devStart(self string, n *devNode) error {
	logf, err := os.OpenFile(filepath.Join(n.dir, "log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "\n==== lazaret dev: starting node%d at %s ====\n", n.k, time.Now().Format(time.RFC3339))
	// Each node serves /metrics and /health on its own address.
	args := []string{"serve", "--config", n.config(), "--http", n.httpAddr()}
	if n.relay != "" {
		args = append(args, "--relay", n.relay)
	}
	n.cmd = exec.Command(self, args...)
	n.cmd.Stdout, n.cmd.Stderr = logf, logf
	// Own process group: a terminal's Ctrl-C reaches only dev, which stops
	// the nodes in order; Pdeathsig stops them if dev itself is killed.
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := n.cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("starting node %d: %w", n.k, err)
	}
	n.log = logf
	n.exited = make(chan struct{})
	go func() { n.cmd.Wait(); logf.Close(); close(n.exited) }()
	return os.WriteFile(filepath.Join(n.dir, "pid"), []byte(strconv.Itoa(n.cmd.Process.Pid)+"\n"), 0o640)
}

// devWait waits until n's API answers.
func devWait(ctx context.Context, n *devNode, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		if c, err := rpc.DialUnix(n.socket()); err == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = c.Status(cctx)
			cancel()
			c.Close()
			if err == nil {
				return nil
			}
		}
		select {
		case <-n.exited:
			return fmt.Errorf("node %d exited at start-up (%v): see %s", n.k, n.cmd.ProcessState, filepath.Join(n.dir, "log"))
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("node %d did not answer within %v: see %s", n.k, timeout, filepath.Join(n.dir, "log"))
		}
	}
}

// httpAddr is where node n serves /metrics, /health and /ready.
func (n *devNode) httpAddr() string { return net.JoinHostPort(n.addr(), "9127") }

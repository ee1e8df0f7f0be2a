package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/replicator/erasure"
)

// nodeFlags are the flags init and join share: where the node lives and how
// it is reached.
type nodeFlags struct {
	dir, name, addr, zone, profile string
	peerPort, gossipPort           int
}

func (m *Main) addNodeFlags(fs interface {
	StringVar(*string, string, string, string)
	IntVar(*int, string, int, string)
}) *nodeFlags {
	f := &nodeFlags{}
	fs.StringVar(&f.dir, "dir", "", "node directory: lazaret.toml, cluster/ (certificates, keys), data/, lazaret.sock (required)")
	fs.StringVar(&f.name, "name", "", "node name, unique in the cluster: letters, digits, '.', '-' (required)")
	fs.StringVar(&f.addr, "addr", "", "IP address (or host name) of this node that the other nodes reach (required)")
	fs.IntVar(&f.peerPort, "peer-port", DefaultPeerPort, "TCP port of the node-to-node API (mutual TLS)")
	fs.IntVar(&f.gossipPort, "gossip-port", DefaultGossipPort, "UDP+TCP port of gossip membership")
	fs.StringVar(&f.zone, "zone", "", "failure zone of this node (optional)")
	fs.StringVar(&f.profile, "gossip-profile", "lan", "gossip timings: lan, or local when every node runs on this host")
	return f
}

func (f *nodeFlags) check() error {
	switch {
	case f.dir == "":
		return usagef("--dir is required")
	case f.name == "":
		return usagef("--name is required")
	case f.addr == "":
		return usagef("--addr is required (the address other nodes use to reach this one)")
	case f.peerPort <= 0 || f.peerPort > 65535:
		return usagef("--peer-port %d: want 1..65535", f.peerPort)
	case f.gossipPort <= 0 || f.gossipPort > 65535:
		return usagef("--gossip-port %d: want 1..65535", f.gossipPort)
	case f.profile != "lan" && f.profile != "local":
		return usagef("--gossip-profile %q: want lan or local", f.profile)
	}
	if err := cluster.ValidName(f.name); err != nil {
		return usagef("--name: %v", err)
	}
	if _, err := os.Stat(f.configPath()); err == nil {
		return fmt.Errorf("%s already exists: this directory already holds a node (start it with 'lazaret serve --config %s')", f.configPath(), f.configPath())
	}
	return nil
}

func (f *nodeFlags) configPath() string      { return filepath.Join(f.dir, "lazaret.toml") }
func (f *nodeFlags) clusterDir() string      { return filepath.Join(f.dir, "cluster") }
func (f *nodeFlags) peerAddr() string        { return net.JoinHostPort(f.addr, strconv.Itoa(f.peerPort)) }
func (f *nodeFlags) gossipAddr() string      { return net.JoinHostPort(f.addr, strconv.Itoa(f.gossipPort)) }
func (f *nodeFlags) absDir() (string, error) { return filepath.Abs(f.dir) }

// nodeFile is what init and join write to lazaret.toml: the keys that make
// this node; everything else stays on its defaults.
type nodeFile struct {
	Node struct {
		Number int    `toml:"number"`
		Name   string `toml:"name"`
	} `toml:"node"`
	Store struct {
		Data string `toml:"data"`
	} `toml:"store"`
	API struct {
		Socket string `toml:"socket"`
	} `toml:"api"`
	Cluster ClusterConfig `toml:"cluster"`
}

// writeNodeConfig writes DIR/lazaret.toml for node number and checks that
// it loads.
func (f *nodeFlags) writeNodeConfig(number int, policy string, join []string) error {
	abs, err := f.absDir()
	if err != nil {
		return err
	}
	var nf nodeFile
	nf.Node.Number, nf.Node.Name = number, f.name
	nf.Store.Data = filepath.Join(abs, "data")
	nf.API.Socket = filepath.Join(abs, "lazaret.sock")
	nf.Cluster = ClusterConfig{
		Enabled:    true,
		PeerListen: f.peerAddr(), GossipListen: f.gossipAddr(), Advertise: f.addr,
		Zone: f.zone, Join: join, Dir: filepath.Join(abs, "cluster"), Policy: policy,
		GossipProfile: f.profile,
	}
	b, err := toml.Marshal(nf)
	if err != nil {
		return err
	}
	head := fmt.Sprintf("# lazaret node %d (%s), written by lazaret on %s.\n# Every key not set here takes its default; see README.md.\n\n", number, f.name, time.Now().UTC().Format(time.RFC3339))
	if err := os.WriteFile(f.configPath(), append([]byte(head), b...), 0o640); err != nil {
		return err
	}
	if _, err := LoadConfig(f.configPath()); err != nil {
		return fmt.Errorf("the written configuration does not load: %w", err)
	}
	return nil
}

// initCluster is `lazaret init`: create a cluster of one node.
func (m *Main) initCluster(ctx context.Context, args []string) error {
	fs := m.newFlags("init", "")
	f := m.addNodeFlags(fs)
	policy := fs.String("policy", "", `erasure code "k+m", e.g. "8+3"; empty = by cluster size`)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if err := f.check(); err != nil {
		return err
	}
	if _, err := erasure.ParsePolicy(*policy); err != nil {
		return usagef("--policy: %v", err)
	}
	if cluster.Dir(f.clusterDir()).Exists() {
		return fmt.Errorf("%s already holds a node certificate", f.clusterDir())
	}
	now := time.Now()
	ca, err := cluster.NewCA(f.name, now)
	if err != nil {
		return err
	}
	caKey, err := ca.KeyPEM()
	if err != nil {
		return err
	}
	key, csr, err := cluster.NewNodeKey(f.name)
	if err != nil {
		return err
	}
	const number = 1
	cert, err := ca.Sign(csr, cluster.Identity{Name: f.name, Number: number}, []string{f.addr}, now)
	if err != nil {
		return err
	}
	keyPEM, err := cluster.MarshalKeyPEM(key)
	if err != nil {
		return err
	}
	gossipKey, err := cluster.NewGossipKey()
	if err != nil {
		return err
	}
	token, state, err := cluster.NewToken(now)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		return err
	}
	if err := cluster.Dir(f.clusterDir()).Write(ca.CertPEM, caKey, cert, keyPEM, gossipKey, state, number); err != nil {
		return err
	}
	if err := f.writeNodeConfig(number, *policy, nil); err != nil {
		return err
	}
	printBootstrap(m.Stdout, f, number, token, filepath.Join(f.clusterDir(), "ca.pem"))
	return nil
}

// printBootstrap tells the operator what was made and what to do next.
func printBootstrap(w io.Writer, f *nodeFlags, number int, token, caPath string) {
	fmt.Fprintf(w, "lazaret: node %d (%s) created in %s\n", number, f.name, f.dir)
	fmt.Fprintf(w, "  config:  %s\n  peer:    %s (mutual TLS)\n  gossip:  %s\n", f.configPath(), f.peerAddr(), f.gossipAddr())
	if token != "" {
		fmt.Fprintf(w, "join token: %s\n", token)
		fmt.Fprintf(w, "  keep it secret; rotate it with 'lazaret token rotate --config %s'\n", f.configPath())
		fmt.Fprintf(w, "add a node (copy %s to it first):\n", caPath)
		fmt.Fprintf(w, "  lazaret join --peer %s --token %s --ca ca.pem --dir DIR --name NAME --addr IP\n", f.peerAddr(), token)
	}
	fmt.Fprintf(w, "start it:\n  lazaret serve --config %s\n", f.configPath())
}

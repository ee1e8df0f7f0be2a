package main

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/cluster"
)

// node is `lazaret node remove N`: retire a dead node for good. The command
// asks this host's running node, over its own peer port (1027, mutual TLS
// with this node's certificate), to add N to the cluster's retired set. The
// set is kept in removed-nodes.json in each node's data directory and
// replicated to every member by anti-entropy; from then on N is out of
// placement and repair rebuilds the shards it held on the other nodes
// (docs/antientropy.md, "Retiring a node"). N must not be alive.
func (m *Main) node(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "remove" {
		return usagef("want 'lazaret node remove --config FILE NUMBER'")
	}
	fs := m.newFlags("node remove", "NUMBER")
	configPath := fs.String("config", "/etc/lazaret/lazaret.toml", "the configuration file of a running member")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the node")
	pos, err := parse(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want exactly one node number, got %d arguments", len(pos))
	}
	number, err := strconv.Atoi(pos[0])
	if err != nil || number <= 0 {
		return usagef("node number %q: want a positive whole number", pos[0])
	}
	cfg, err := LoadConfig(*configPath)
	if err != nil {
		return err
	}
	if !cfg.Cluster.Enabled {
		return fmt.Errorf("%s: [cluster] is not enabled: no cluster to remove a node from", *configPath)
	}
	dir := cluster.Dir(cfg.Cluster.Dir)
	creds, err := dir.LoadCredentials(time.Now())
	if err != nil {
		return err
	}
	addr := cfg.Cluster.advertised(cfg.Cluster.PeerListen)
	host, _, _ := net.SplitHostPort(addr)
	cc, err := cluster.DialPeer(addr, creds.ClientTLS(host, cfg.Node.Number))
	if err != nil {
		return fmt.Errorf("node remove: dialing %s: %w", addr, err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := lazaretpb.NewPeerClient(cc).RemoveNode(ctx, &lazaretpb.RemoveNodeRequest{Number: int32(number)})
	if err != nil {
		return fmt.Errorf("node remove %d via %s: %w", number, addr, err)
	}
	fmt.Fprintf(m.Stdout, "node %d retired; its shards are being rebuilt on the other nodes (watch 'lazaret status')\n", number)
	for _, r := range resp.GetRemoved() {
		fmt.Fprintf(m.Stdout, "retired: node %d %s since %s\n", r.GetNumber(), r.GetName(), r.GetRemoved().AsTime().UTC().Format(time.RFC3339))
	}
	return nil
}

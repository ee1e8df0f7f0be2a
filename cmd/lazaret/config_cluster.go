package main

import (
	"fmt"
	"net"
	"strconv"

	"github.com/lazaret/lazaret/replicator/erasure"
)

// ClusterConfig is the [cluster] table: this node as a member of a cluster.
// `lazaret init` and `lazaret join` write it; with enabled = false (the
// default) the node runs on its own.
type ClusterConfig struct {
	Enabled bool `toml:"enabled"`
	// PeerListen is where the node-to-node API (mutual TLS) listens.
	PeerListen string `toml:"peer_listen"` // e.g. "0.0.0.0:1027"
	// GossipListen is where serf gossip listens (UDP and TCP).
	GossipListen string `toml:"gossip_listen"` // e.g. "0.0.0.0:7946"
	// Advertise is the IP address or host name other nodes use to reach
	// this one, on the peer and gossip ports. Required when a listen
	// address is a wildcard.
	Advertise string `toml:"advertise"`
	// Zone is the failure zone ("" = none).
	Zone string `toml:"zone"`
	// Join lists gossip addresses (host:port) of members to join at start.
	Join []string `toml:"join"`
	// Dir holds the CA, the node certificate and key, the gossip key and
	// the join token state.
	Dir string `toml:"dir"`
	// Policy is the erasure code "k+m" ("8+3"); "" = by cluster size.
	Policy string `toml:"policy"`
	// WriteQuorum is how many shards must be fsync'd on distinct nodes
	// before a put is acknowledged; 0 = k+1.
	WriteQuorum int `toml:"write_quorum"`
	// Strict refuses a put (temporary error) when the quorum cannot be met,
	// instead of keeping it whole locally as under-protected.
	Strict bool `toml:"strict"`
	// GossipProfile is "lan" (default) or "local" (fast failure detection
	// for nodes that all run on one host, as `lazaret dev` does).
	GossipProfile string `toml:"gossip_profile"`
	// AntiEntropyInterval is the longest wait between two metadata
	// reconciliations with a random live peer (each wait is jittered
	// between half of it and all of it); "" = the default, 10s.
	AntiEntropyInterval Duration `toml:"anti_entropy_interval"`
	// RepairRate caps repair traffic (shard bytes read plus written per
	// second), so repair never starves ingest; "" = the default, 50MB;
	// "0" = unlimited.
	RepairRate *Size `toml:"repair_rate"`
	// StragglerGrace is how long a put that already has its write quorum
	// waits for the remaining shards before it is acknowledged; "" = 2s.
	StragglerGrace Duration `toml:"straggler_grace"`
	// SpoolDir holds a put's body while its shards are written, so that it
	// can still be kept whole if the quorum is lost; "" = the system's
	// temporary directory.
	SpoolDir string `toml:"spool_dir"`
}

// Default ports.
const (
	DefaultPeerPort   = 1027
	DefaultGossipPort = 7946
)

func defaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		PeerListen:    net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultPeerPort)),
		GossipListen:  net.JoinHostPort("0.0.0.0", strconv.Itoa(DefaultGossipPort)),
		Dir:           "/etc/lazaret/cluster",
		GossipProfile: "lan",
	}
}

// validate checks the [cluster] table, naming the key.
func (c *ClusterConfig) validate() error {
	if !c.Enabled {
		return nil
	}
	for _, kv := range []struct{ key, val string }{{"cluster.peer_listen", c.PeerListen}, {"cluster.gossip_listen", c.GossipListen}} {
		h, p, err := net.SplitHostPort(kv.val)
		if err != nil {
			return fmt.Errorf("%s = %q: want HOST:PORT", kv.key, kv.val)
		}
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return fmt.Errorf("%s = %q: bad port", kv.key, kv.val)
		}
		if isWildcard(h) && c.Advertise == "" {
			return fmt.Errorf("cluster.advertise: must be set when %s listens on all addresses (%q)", kv.key, kv.val)
		}
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			return fmt.Errorf("cluster.join: %q: want HOST:PORT", j)
		}
	}
	switch {
	case c.Dir == "":
		return fmt.Errorf("cluster.dir: must not be empty")
	case c.WriteQuorum < 0:
		return fmt.Errorf("cluster.write_quorum = %d: must not be negative", c.WriteQuorum)
	case c.AntiEntropyInterval < 0:
		return fmt.Errorf("cluster.anti_entropy_interval: must not be negative")
	case c.StragglerGrace < 0:
		return fmt.Errorf("cluster.straggler_grace: must not be negative")
	}
	if _, err := erasure.ParsePolicy(c.Policy); err != nil {
		return fmt.Errorf("cluster.policy = %q: %v", c.Policy, err)
	}
	switch c.GossipProfile {
	case "", "lan", "local":
	default:
		return fmt.Errorf("cluster.gossip_profile = %q: want lan or local", c.GossipProfile)
	}
	return nil
}

func isWildcard(host string) bool {
	return host == "" || host == "0.0.0.0" || host == "::"
}

// advertised returns the address others use for a listen address: the
// advertise host with the listen port, or the listen address itself.
func (c *ClusterConfig) advertised(listen string) string {
	h, p, err := net.SplitHostPort(listen)
	if err != nil {
		return listen
	}
	if c.Advertise != "" {
		return net.JoinHostPort(c.Advertise, p)
	}
	return net.JoinHostPort(h, p)
}

package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/replicator/cluster"
)

// clusterSide is serve's cluster part: membership, the peer port and the
// peer dialer. A nil *clusterSide is a node on its own; every method is a
// no-op on it.
type clusterSide struct {
	rt  *cluster.Runtime
	log *slog.Logger
}

// openCluster loads the node's credentials and prepares membership when
// [cluster] is enabled; nothing listens until start.
func openCluster(cfg Config, log *slog.Logger, clock lazaret.Clock) (*clusterSide, error) {
	c := cfg.Cluster
	if !c.Enabled {
		return nil, nil
	}
	rt, err := cluster.OpenRuntime(cluster.RuntimeConfig{
		Dir:  cluster.Dir(c.Dir),
		Name: cfg.Node.Name, Number: cfg.Node.Number,
		PeerListen: c.PeerListen, PeerAdvertise: c.advertised(c.PeerListen),
		GossipListen: c.GossipListen, GossipAdvertise: c.advertised(c.GossipListen),
		Join: c.Join, Zone: c.Zone, Version: version, Policy: c.Policy,
		SnapshotPath: filepath.Join(cfg.Store.Data, "serf.snapshot"),
		Local:        c.GossipProfile == "local",
	}, log, clock)
	if err != nil {
		return nil, err
	}
	return &clusterSide{rt: rt, log: log}, nil
}

// replicatorConfig hands membership and the peer dialer to the replicator.
func (c *clusterSide) replicatorConfig(rc replicator.Config) replicator.Config {
	if c != nil {
		rc.Cluster.Members, rc.Cluster.Peers = c.rt.Membership, c.rt.Dialer
	}
	return rc
}

// start serves the peer API (node's data path plus Join) and joins the
// cluster. It fails if this node's number or name is taken. Certificates of
// nodes retired with `lazaret node remove` are refused from then on.
func (c *clusterSide) start(node *replicator.Node) error {
	if c == nil {
		return nil
	}
	c.rt.Creds.SetRetired(node)
	return c.rt.Start(node.PeerHandler())
}

// quarantine returns q, with Status listing the cluster's members.
func (c *clusterSide) quarantine(q lazaret.Quarantine) lazaret.Quarantine {
	if c == nil {
		return q
	}
	return &clusterStatus{Quarantine: q, rt: c.rt}
}

// close leaves the cluster and stops the peer port.
func (c *clusterSide) close() {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.rt.Close(ctx)
}

// clusterStatus adds every member, with the figures each alive member
// reports over the peer API, to the node's status.
type clusterStatus struct {
	lazaret.Quarantine
	rt *cluster.Runtime
}

// memberStatusTimeout bounds each member's NodeStatus answer.
const memberStatusTimeout = 3 * time.Second

// Status returns the node's status with Members filled in.
func (s *clusterStatus) Status(ctx context.Context) (*lazaret.NodeStatus, error) {
	st, err := s.Quarantine.Status(ctx)
	if err != nil {
		return nil, err
	}
	st.Members = s.rt.Status(ctx, memberStatusTimeout)
	return st, nil
}

package daemon

import (
	"context"
	"log/slog"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/replicator/cluster"
)

// clusterSide is the daemon's cluster part: membership, the peer port and the
// peer dialer. A nil *clusterSide is a node on its own; every method is a
// no-op on it.
type clusterSide struct {
	rt  *cluster.Runtime
	log *slog.Logger
}

// openCluster loads the node's credentials and prepares membership when
// the node is clustered (rc not nil); nothing listens until start.
func openCluster(rc *cluster.RuntimeConfig, log *slog.Logger, clock lazaret.Clock) (*clusterSide, error) {
	if rc == nil {
		return nil, nil
	}
	rt, err := cluster.OpenRuntime(*rc, log, clock)
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

// close leaves the cluster and stops the peer port.
func (c *clusterSide) close() {
	if c == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.rt.Close(ctx)
}

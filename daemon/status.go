package daemon

import (
	"context"
	"time"

	"github.com/lazaret/lazaret"
)

// statusQuarantine completes the node's status: every cluster member,
// with the figures each alive member reports over the peer API, and the
// health problems (health.go), computed once from one reading.
type statusQuarantine struct {
	lazaret.Quarantine
	cl     *clusterSide    // nil on a node on its own
	health func() []string // the node's problems, one line each
}

// memberStatusTimeout bounds each member's NodeStatus answer.
const memberStatusTimeout = 3 * time.Second

// Status returns the node's status with Members and Health filled in.
func (s *statusQuarantine) Status(ctx context.Context) (*lazaret.NodeStatus, error) {
	st, err := s.Quarantine.Status(ctx)
	if err != nil {
		return nil, err
	}
	if s.cl != nil {
		st.Members = s.cl.rt.Status(ctx, memberStatusTimeout)
	}
	st.Health = s.health()
	return st, nil
}

package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/member"
)

// RuntimeConfig is what a clustered node needs to run its cluster side.
type RuntimeConfig struct {
	// Dir is the cluster directory (certificates, keys, token, numbers).
	Dir Dir
	// Name and Number must match the node certificate's identity.
	Name   string
	Number int
	// PeerListen is where the peer API listens ("0.0.0.0:1027"); PeerAdvertise
	// is what other nodes dial (host:port; default PeerListen).
	PeerListen, PeerAdvertise string
	// GossipListen is where gossip listens; GossipAdvertise what others use.
	GossipListen, GossipAdvertise string
	// Join lists gossip addresses to join at start.
	Join []string
	// Zone, Version and Policy are gossiped/handed to joiners.
	Zone, Version, Policy string
	// SnapshotPath is the serf snapshot (in the data directory).
	SnapshotPath string
	// Local selects loopback gossip timings (all nodes on one host).
	Local bool
	// TokenPoll is how often the token file is checked for a rotation.
	TokenPoll time.Duration
}

// Runtime is a node's cluster side: credentials, membership, the peer
// dialer and (once started) the peer server.
type Runtime struct {
	cfg        RuntimeConfig
	log        *slog.Logger
	clock      lazaret.Clock
	Creds      *Credentials
	Membership *Membership
	Dialer     *Dialer
	join       *JoinService

	server *grpc.Server
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// OpenRuntime loads the node's credentials and prepares membership and the
// dialer without starting anything. It checks that the certificate is the
// configured node's.
func OpenRuntime(cfg RuntimeConfig, log *slog.Logger, clock lazaret.Clock) (*Runtime, error) {
	creds, err := cfg.Dir.LoadCredentials(clock.Now())
	if err != nil {
		return nil, err
	}
	if creds.ID.Name != cfg.Name || creds.ID.Number != cfg.Number {
		return nil, fmt.Errorf("cluster: the certificate in %s is for %s, but the configuration says node %d (%s)", cfg.Dir, creds.ID, cfg.Number, cfg.Name)
	}
	ca, err := cfg.Dir.LoadCA()
	if err != nil {
		return nil, err
	}
	key, err := cfg.Dir.LoadGossipKey()
	if err != nil {
		return nil, err
	}
	tokens, err := OpenTokens(cfg.Dir.TokenPath())
	if err != nil {
		return nil, err
	}
	numbers, err := OpenNumbers(cfg.Dir.NumbersPath())
	if err != nil {
		return nil, err
	}
	if err := numbers.Observe(cfg.Number); err != nil {
		return nil, err
	}
	if cfg.PeerAdvertise == "" {
		cfg.PeerAdvertise = cfg.PeerListen
	}
	mc := DefaultMembershipConfig()
	mc.Name, mc.Number, mc.Zone, mc.Version = cfg.Name, cfg.Number, cfg.Zone, cfg.Version
	mc.PeerAddr = cfg.PeerAdvertise
	if mc.BindAddr, mc.BindPort, err = splitHostPort(cfg.GossipListen); err != nil {
		return nil, fmt.Errorf("cluster: gossip listen address: %w", err)
	}
	if cfg.GossipAdvertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(cfg.GossipAdvertise); err != nil {
			return nil, fmt.Errorf("cluster: gossip advertise address: %w", err)
		}
	}
	mc.Join, mc.GossipKey, mc.SnapshotPath, mc.Local = cfg.Join, key, cfg.SnapshotPath, cfg.Local
	m, err := NewMembership(mc, log.With("component", "membership"))
	if err != nil {
		return nil, err
	}
	js := NewJoinService(JoinConfig{CA: ca, GossipKey: key, Policy: cfg.Policy}, m, tokens, numbers, log.With("component", "join"), clock)
	js.Register(m)
	if cfg.TokenPoll <= 0 {
		cfg.TokenPoll = 2 * time.Second
	}
	return &Runtime{cfg: cfg, log: log, clock: clock, Creds: creds, Membership: m, Dialer: NewDialer(creds, m), join: js}, nil
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	var port int
	if _, err := fmt.Sscanf(p, "%d", &port); err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	if h == "" {
		h = "0.0.0.0"
	}
	return h, port, nil
}

// Start listens on the peer port, serves data (nil: data-path methods are
// unimplemented) and Join there, then starts gossip and joins the cluster.
// It fails with ErrMemberConflict when this node's number or name is taken.
func (r *Runtime) Start(data DataPathServer) error {
	ln, err := net.Listen("tcp", r.cfg.PeerListen)
	if err != nil {
		return fmt.Errorf("cluster: peer port: %w", err)
	}
	r.server = NewPeerServer(r.Creds, NewPeerService(data, r.join))
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		if err := r.server.Serve(ln); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			r.log.Error("peer server stopped", "err", err)
		}
	}()
	if err := r.Membership.Start(); err != nil {
		r.server.Stop()
		r.wg.Wait()
		return err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		// A node that was down during a token rotation catches up.
		r.join.newestToken()
		r.join.WatchTokens(ctx, r.cfg.TokenPoll)
	}()
	r.log.Info("cluster started", "peer", r.cfg.PeerListen, "gossip", r.cfg.GossipListen, "members", len(r.Membership.Members()))
	return nil
}

// Close leaves the cluster, stops the peer server (letting calls in flight
// finish for up to the context's deadline) and closes peer connections.
func (r *Runtime) Close(ctx context.Context) {
	r.once.Do(func() {
		if r.cancel != nil {
			r.cancel()
		}
		r.Membership.Close()
		if r.server != nil {
			done := make(chan struct{})
			go func() { r.server.GracefulStop(); close(done) }()
			select {
			case <-done:
			case <-ctx.Done():
				r.server.Stop()
			}
		}
		r.wg.Wait()
		r.Dialer.Close()
	})
}

// Status returns every member with the figures each alive member reports
// through its NodeStatus peer call (asked in parallel, each bounded by
// timeout). Members that are not alive, or do not answer, are listed with
// what gossip knows and the reason in Error.
func (r *Runtime) Status(ctx context.Context, timeout time.Duration) []lazaret.MemberStatus {
	return MemberStatuses(ctx, r.Membership, r.Dialer, timeout)
}

// MemberStatuses builds the cluster status table from membership and the
// members' NodeStatus answers.
func MemberStatuses(ctx context.Context, members member.Membership, peers member.PeerDialer, timeout time.Duration) []lazaret.MemberStatus {
	self := members.Self()
	list := members.Members()
	out := make([]lazaret.MemberStatus, len(list))
	var wg sync.WaitGroup
	for i, m := range list {
		out[i] = lazaret.MemberStatus{
			Node: m.Number, Name: m.Name, PeerAddr: m.PeerAddr, GossipAddr: m.GossipAddr,
			State: m.State.String(), Zone: m.Zone, Version: m.Version, Self: m.Name == self.Name,
		}
		if m.State != member.Alive && m.State != member.Suspect {
			out[i].Error = "not alive"
			continue
		}
		wg.Add(1)
		go func(ms *lazaret.MemberStatus) {
			defer wg.Done()
			c, err := peers.Peer(ms.Node)
			if err != nil {
				ms.Error = err.Error()
				return
			}
			cctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			st, err := c.NodeStatus(cctx, &lazaretpb.NodeStatusRequest{})
			if err != nil {
				ms.Error = err.Error()
				return
			}
			ms.Reported = true
			ms.Messages, ms.Shards, ms.ShardBytes = st.GetMessages(), st.GetShards(), st.GetShardBytes()
			ms.UnderProtected, ms.UnderProtectedBytes = st.GetUnderProtected(), st.GetUnderProtectedBytes()
			if t := st.GetOldestUnderProtected(); t != nil {
				ms.OldestUnderProtected = t.AsTime()
			}
		}(&out[i])
	}
	wg.Wait()
	return out
}

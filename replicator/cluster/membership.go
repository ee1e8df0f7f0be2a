package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/serf/serf"
	"github.com/lazaret/lazaret/replicator/member"
)

// Gossip tags every lazaret node carries.
const (
	tagNumber  = "n"    // node number
	tagPeer    = "peer" // host:port of the peer (1027) API
	tagZone    = "zone"
	tagVersion = "v"
)

// ErrMemberConflict is returned by Start when another member already holds
// this node's number or name.
var ErrMemberConflict = errors.New("cluster: member conflict")

// MembershipConfig configures gossip membership. Start from
// DefaultMembershipConfig.
type MembershipConfig struct {
	// Name is the node's unique name.
	Name string
	// Number is the node's unique number.
	Number int
	// PeerAddr is host:port of the node's peer API, gossiped to others.
	PeerAddr string
	// Zone is the node's failure zone ("" = none).
	Zone string
	// Version is the software version, gossiped for status.
	Version string
	// BindAddr and BindPort are where gossip listens (UDP and TCP).
	BindAddr string
	BindPort int
	// AdvertiseAddr and AdvertisePort are what other nodes use to reach
	// this one; empty/0 means BindAddr/BindPort. Always set one of the two
	// to a routable address: 0.0.0.0 cannot be advertised.
	AdvertiseAddr string
	AdvertisePort int
	// Join lists gossip addresses (host:port) of members to join at start.
	Join []string
	// GossipKey encrypts gossip (AES-GCM, 16, 24 or 32 bytes). Required
	// outside tests.
	GossipKey []byte
	// SnapshotPath keeps the members this node knew, so that a restarted
	// node rejoins them even when Join is empty. Empty disables snapshots.
	SnapshotPath string
	// Local selects memberlist's loopback timings (fast failure detection),
	// for nodes that all run on one host (lazaret dev, tests).
	Local bool
	// Transport replaces memberlist's network transport (tests use
	// memberlist.MockNetwork).
	Transport memberlist.Transport
	// RejoinInterval is how often a node that could not reach any Join
	// address retries.
	RejoinInterval time.Duration
}

// DefaultMembershipConfig returns gossip on 0.0.0.0:7946 with LAN timings.
func DefaultMembershipConfig() MembershipConfig {
	return MembershipConfig{BindAddr: "0.0.0.0", BindPort: 7946, RejoinInterval: 10 * time.Second}
}

// Validate checks the configuration.
func (c *MembershipConfig) Validate() error {
	if err := ValidName(c.Name); err != nil {
		return err
	}
	switch {
	case c.Number < 0:
		return fmt.Errorf("cluster: node number %d: must not be negative", c.Number)
	case c.PeerAddr == "":
		return errors.New("cluster: peer address must not be empty")
	case c.Transport == nil && c.BindAddr == "":
		return errors.New("cluster: gossip bind address must not be empty")
	case len(c.GossipKey) != 0 && len(c.GossipKey) != 16 && len(c.GossipKey) != 24 && len(c.GossipKey) != 32:
		return fmt.Errorf("cluster: gossip key is %d bytes: want 16, 24 or 32", len(c.GossipKey))
	}
	if _, _, err := net.SplitHostPort(c.PeerAddr); err != nil {
		return fmt.Errorf("cluster: peer address %q: %w", c.PeerAddr, err)
	}
	return nil
}

// Membership is this node's view of the cluster, kept by serf gossip. It
// implements member.Membership.
//
// States: serf reports alive, leaving, left and failed; memberlist alone
// knows "suspect" (missed probes, not yet declared dead). Members maps
// serf's alive to alive unless memberlist currently suspects the node, then
// suspect; failed to failed; leaving and left to left.
//
// Unique names and numbers: every alive or merge message about a node goes
// through a serf MergeDelegate, which refuses a node whose number is held by
// another member that has not left (alive, suspect or failed: a failed node
// may come back) or whose name is held with another number. A refused node
// is never added to the member list of any node that refused it; the
// refused node itself sees the conflict when its join merges the cluster's
// state and Start fails with ErrMemberConflict.
type Membership struct {
	cfg    MembershipConfig
	log    *slog.Logger
	serf   *serf.Serf
	events chan serf.Event
	done   chan struct{}
	wg     sync.WaitGroup

	mu       sync.Mutex
	known    map[string]knownMember // name → what gossip said about it (for the conflict check)
	conflict error                  // first conflict involving this node
	handlers map[string]func(payload []byte)
	queries  map[string]func(payload []byte) []byte
	watchers []func(member.Member)

	closeOnce sync.Once
}

type knownMember struct {
	number int
	left   bool
}

var _ member.Membership = (*Membership)(nil)

// NewMembership prepares membership without starting gossip, so that event
// and query handlers can be registered before any arrive.
func NewMembership(cfg MembershipConfig, log *slog.Logger) (*Membership, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.RejoinInterval <= 0 {
		cfg.RejoinInterval = 10 * time.Second
	}
	return &Membership{
		cfg: cfg, log: log, done: make(chan struct{}),
		known:    map[string]knownMember{},
		handlers: map[string]func([]byte){},
		queries:  map[string]func([]byte) []byte{},
	}, nil
}

// HandleEvent registers fn for serf user events named name. Call before Start.
func (m *Membership) HandleEvent(name string, fn func(payload []byte)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.handlers[name] = fn
}

// HandleQuery registers fn to answer serf queries named name (response at
// most 1 KiB). Call before Start.
func (m *Membership) HandleQuery(name string, fn func(payload []byte) []byte) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.queries[name] = fn
}

// OnMember registers fn to be called (from the event goroutine) with every
// member that joins, changes or fails. Call before Start.
func (m *Membership) OnMember(fn func(member.Member)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.watchers = append(m.watchers, fn)
}

// serfConfig is serf's and memberlist's configuration for this node: its
// tags, the event channel, timings (LAN, or loopback for nodes on one
// host), addresses and the gossip key.
func (m *Membership) serfConfig() (*serf.Config, error) {
	cfg := m.cfg
	sc := serf.DefaultConfig()
	sc.NodeName = cfg.Name
	sc.Tags = map[string]string{tagNumber: strconv.Itoa(cfg.Number), tagPeer: cfg.PeerAddr, tagVersion: cfg.Version}
	if cfg.Zone != "" {
		sc.Tags[tagZone] = cfg.Zone
	}
	m.events = make(chan serf.Event, 256)
	sc.EventCh = m.events
	sc.Logger = newStdLogger(m.log.With("lib", "serf"))
	sc.SnapshotPath = cfg.SnapshotPath
	sc.RejoinAfterLeave = true
	sc.ValidateNodeNames = true
	sc.Merge = &mergeDelegate{m: m}
	// Retry failed members every 5 s rather than serf's 30 s: after a
	// partition heals, gossip readmits the isolated node sooner, and
	// anti-entropy and repair can start (the attempt is one TCP push-pull).
	sc.ReconnectInterval = 5 * time.Second
	if cfg.Local {
		sc.MemberlistConfig = memberlist.DefaultLocalConfig()
		sc.ReapInterval = 15 * time.Second
		sc.BroadcastTimeout, sc.LeavePropagateDelay = 2*time.Second, 200*time.Millisecond
	} else {
		sc.MemberlistConfig = memberlist.DefaultLANConfig()
	}
	mc := sc.MemberlistConfig
	mc.Name = cfg.Name
	mc.Logger = sc.Logger
	mc.BindAddr, mc.BindPort = cfg.BindAddr, cfg.BindPort
	mc.AdvertiseAddr, mc.AdvertisePort = cfg.AdvertiseAddr, cfg.AdvertisePort
	if mc.AdvertiseAddr == "" && cfg.BindAddr != "0.0.0.0" && cfg.BindAddr != "::" {
		mc.AdvertiseAddr = cfg.BindAddr
	}
	if mc.AdvertisePort == 0 {
		mc.AdvertisePort = cfg.BindPort
	}
	if cfg.Transport != nil {
		mc.Transport = cfg.Transport
	}
	if len(cfg.GossipKey) > 0 {
		kr, err := memberlist.NewKeyring(nil, cfg.GossipKey)
		if err != nil {
			return nil, fmt.Errorf("cluster: gossip key: %w", err)
		}
		mc.Keyring = kr
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	return sc, nil
}

// Start starts gossip and joins cfg.Join. It fails with ErrMemberConflict
// if another member holds this node's number or name. When no Join address
// answers, the node starts alone and keeps retrying in the background (a
// restarted node must take mail even if its peers are down).
func (m *Membership) Start() error {
	cfg := m.cfg
	sc, err := m.serfConfig()
	if err != nil {
		return err
	}

	m.wg.Add(1)
	go m.drain()
	s, err := serf.Create(sc)
	if err != nil {
		m.closeOnce.Do(func() { close(m.done) })
		m.wg.Wait()
		return fmt.Errorf("cluster: start gossip on %s:%d: %w", cfg.BindAddr, cfg.BindPort, err)
	}
	m.mu.Lock()
	m.serf = s
	m.mu.Unlock()

	if len(cfg.Join) > 0 {
		n, err := s.Join(cfg.Join, true)
		if c := m.conflictErr(); c != nil {
			m.shutdown(false)
			return c
		}
		if err != nil || n == 0 {
			m.log.Warn("could not join any gossip peer; running alone and retrying", "peers", cfg.Join, "err", err)
			m.wg.Add(1)
			go m.rejoin()
		} else {
			m.log.Info("joined cluster", "contacted", n, "members", len(s.Members()))
		}
	}
	// A conflict may also surface from the snapshot rejoin.
	if c := m.conflictErr(); c != nil {
		m.shutdown(false)
		return c
	}
	return nil
}

func (m *Membership) conflictErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.conflict
}

// rejoin retries cfg.Join until some other member is alive.
func (m *Membership) rejoin() {
	defer m.wg.Done()
	t := time.NewTicker(m.cfg.RejoinInterval)
	defer t.Stop()
	for {
		select {
		case <-m.done:
			return
		case <-t.C:
		}
		for _, mem := range m.Members() {
			if mem.Name != m.cfg.Name && mem.State == member.Alive {
				return
			}
		}
		if n, err := m.serf.Join(m.cfg.Join, true); err == nil && n > 0 {
			m.log.Info("joined cluster", "contacted", n)
			return
		}
	}
}

// drain consumes serf's event channel for the whole life of the node: serf
// blocks its own state updates when the channel is full.
func (m *Membership) drain() {
	defer m.wg.Done()
	for {
		select {
		case <-m.done:
			return
		case ev := <-m.events:
			m.handle(ev)
		}
	}
}

func (m *Membership) handle(ev serf.Event) {
	switch e := ev.(type) {
	case serf.MemberEvent:
		var changed []member.Member
		m.mu.Lock()
		for _, sm := range e.Members {
			num, err := strconv.Atoi(sm.Tags[tagNumber])
			if err != nil {
				continue
			}
			switch e.Type {
			case serf.EventMemberReap:
				delete(m.known, sm.Name)
			case serf.EventMemberLeave:
				m.known[sm.Name] = knownMember{number: num, left: true}
			default:
				m.known[sm.Name] = knownMember{number: num}
			}
			changed = append(changed, toMember(sm, false))
		}
		watchers := m.watchers
		m.mu.Unlock()
		for _, sm := range e.Members {
			m.log.Info("member "+memberVerb(e.Type), "member", sm.Name, "number", sm.Tags[tagNumber], "addr", net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))))
		}
		for _, w := range watchers {
			for _, c := range changed {
				w(c)
			}
		}
	case serf.UserEvent:
		m.mu.Lock()
		fn := m.handlers[e.Name]
		m.mu.Unlock()
		if fn != nil {
			fn(e.Payload)
		}
	case *serf.Query:
		m.mu.Lock()
		fn := m.queries[e.Name]
		m.mu.Unlock()
		if fn != nil {
			if err := e.Respond(fn(e.Payload)); err != nil {
				m.log.Warn("answering gossip query", "query", e.Name, "err", err)
			}
		}
	}
}

func memberVerb(t serf.EventType) string {
	switch t {
	case serf.EventMemberJoin:
		return "joined"
	case serf.EventMemberLeave:
		return "left"
	case serf.EventMemberFailed:
		return "failed"
	case serf.EventMemberUpdate:
		return "updated"
	case serf.EventMemberReap:
		return "reaped"
	}
	return t.String()
}

// Self returns this node.
func (m *Membership) Self() member.Member {
	self := member.Member{
		Name: m.cfg.Name, Number: m.cfg.Number, PeerAddr: m.cfg.PeerAddr,
		Zone: m.cfg.Zone, Version: m.cfg.Version, State: member.Alive,
	}
	if s := m.serfOrNil(); s != nil {
		lm := s.LocalMember()
		self.GossipAddr = net.JoinHostPort(lm.Addr.String(), strconv.Itoa(int(lm.Port)))
	}
	return self
}

func (m *Membership) serfOrNil() *serf.Serf {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.serf
}

// Members returns every member serf knows (alive, suspect, failed, left),
// including this node, sorted by number.
func (m *Membership) Members() []member.Member {
	s := m.serfOrNil()
	if s == nil {
		return []member.Member{m.Self()}
	}
	suspect := map[string]bool{}
	for _, n := range s.Memberlist().Members() {
		if n.State == memberlist.StateSuspect {
			suspect[n.Name] = true
		}
	}
	var out []member.Member
	for _, sm := range s.Members() {
		if _, err := strconv.Atoi(sm.Tags[tagNumber]); err != nil {
			continue
		}
		out = append(out, toMember(sm, suspect[sm.Name]))
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Number != out[j].Number {
			return out[i].Number < out[j].Number
		}
		return out[i].Name < out[j].Name
	})
	return out
}

func toMember(sm serf.Member, suspect bool) member.Member {
	num, _ := strconv.Atoi(sm.Tags[tagNumber])
	mem := member.Member{
		Name: sm.Name, Number: num, PeerAddr: sm.Tags[tagPeer], Zone: sm.Tags[tagZone], Version: sm.Tags[tagVersion],
		GossipAddr: net.JoinHostPort(sm.Addr.String(), strconv.Itoa(int(sm.Port))),
	}
	switch sm.Status {
	case serf.StatusAlive:
		mem.State = member.Alive
		if suspect {
			mem.State = member.Suspect
		}
	case serf.StatusFailed:
		mem.State = member.Failed
	case serf.StatusLeaving, serf.StatusLeft:
		mem.State = member.Left
	default:
		mem.State = member.Failed
	}
	return mem
}

// GossipPeers returns the gossip addresses of the alive members, this node
// first: what a joiner should join.
func (m *Membership) GossipPeers() []string {
	self := m.Self()
	peers := []string{self.GossipAddr}
	for _, mem := range m.Members() {
		if mem.Name != self.Name && mem.State == member.Alive {
			peers = append(peers, mem.GossipAddr)
		}
	}
	return peers
}

// UserEvent broadcasts a small (< 512 B) event to every member, this node
// included.
func (m *Membership) UserEvent(name string, payload []byte) error {
	s := m.serfOrNil()
	if s == nil {
		return errors.New("cluster: gossip not started")
	}
	return s.UserEvent(name, payload, false)
}

// Query asks every alive member (this node included) and returns the
// responses received within timeout, keyed by node name. It returns early
// once every alive member has answered.
func (m *Membership) Query(name string, payload []byte, timeout time.Duration) (map[string][]byte, error) {
	s := m.serfOrNil()
	if s == nil {
		return nil, errors.New("cluster: gossip not started")
	}
	alive := 0
	for _, mem := range m.Members() {
		if mem.State == member.Alive || mem.State == member.Suspect {
			alive++
		}
	}
	resp, err := s.Query(name, payload, &serf.QueryParam{Timeout: timeout})
	if err != nil {
		return nil, fmt.Errorf("cluster: query %s: %w", name, err)
	}
	defer resp.Close()
	out := map[string][]byte{}
	for r := range resp.ResponseCh() {
		out[r.From] = r.Payload
		if len(out) >= alive {
			break
		}
	}
	return out, nil
}

// Close leaves the cluster gracefully (other nodes see this node as left,
// not failed) and stops gossip.
func (m *Membership) Close() error {
	m.shutdown(true)
	return nil
}

// Kill stops gossip without leaving, as a crash would (tests).
func (m *Membership) Kill() { m.shutdown(false) }

func (m *Membership) shutdown(leave bool) {
	m.closeOnce.Do(func() {
		if s := m.serfOrNil(); s != nil {
			if leave {
				if err := s.Leave(); err != nil {
					m.log.Warn("leaving the cluster", "err", err)
				}
			}
			if err := s.Shutdown(); err != nil {
				m.log.Warn("stopping gossip", "err", err)
			}
		}
		close(m.done)
	})
	m.wg.Wait()
}

// mergeDelegate refuses members that would duplicate a node number or name.
// It runs inside memberlist (alive messages and join merges) while
// memberlist holds its own locks, so it only touches Membership.known.
type mergeDelegate struct{ m *Membership }

func (d *mergeDelegate) NotifyMerge(members []*serf.Member) error {
	m := d.m
	m.mu.Lock()
	defer m.mu.Unlock()
	batch := map[int]string{}
	names := map[string]int{}
	for _, sm := range members {
		num, err := strconv.Atoi(sm.Tags[tagNumber])
		if err != nil || num < 0 {
			return fmt.Errorf("refusing member %q: no valid node number tag (not a lazaret node?)", sm.Name)
		}
		left := sm.Status == serf.StatusLeft
		if sm.Name == m.cfg.Name {
			if num != m.cfg.Number {
				return m.selfConflict(fmt.Errorf("%w: node name %q is already taken by node number %d", ErrMemberConflict, sm.Name, num))
			}
			continue
		}
		if left {
			continue
		}
		if num == m.cfg.Number {
			return m.selfConflict(fmt.Errorf("%w: node number %d is already taken by node %q (this node is %q)", ErrMemberConflict, num, sm.Name, m.cfg.Name))
		}
		if other, ok := batch[num]; ok && other != sm.Name {
			return fmt.Errorf("%w: node number %d is claimed by both %q and %q", ErrMemberConflict, num, other, sm.Name)
		}
		if prev, ok := names[sm.Name]; ok && prev != num {
			return fmt.Errorf("%w: node name %q is claimed with numbers %d and %d", ErrMemberConflict, sm.Name, prev, num)
		}
		batch[num], names[sm.Name] = sm.Name, num
		for name, k := range m.known {
			if k.left {
				continue
			}
			if name != sm.Name && k.number == num {
				return fmt.Errorf("%w: refusing %q: node number %d is already taken by node %q", ErrMemberConflict, sm.Name, num, name)
			}
			if name == sm.Name && k.number != num {
				return fmt.Errorf("%w: refusing %q with number %d: that name is already taken by node number %d", ErrMemberConflict, sm.Name, num, k.number)
			}
		}
	}
	for _, sm := range members {
		if sm.Name == m.cfg.Name {
			continue
		}
		num, _ := strconv.Atoi(sm.Tags[tagNumber])
		if k, ok := m.known[sm.Name]; !ok || !k.left || sm.Status != serf.StatusLeft {
			m.known[sm.Name] = knownMember{number: num, left: sm.Status == serf.StatusLeft}
		}
	}
	return nil
}

// selfConflict records a conflict with this node's own identity; m.mu held.
func (m *Membership) selfConflict(err error) error {
	if m.conflict == nil {
		m.conflict = err
		m.log.Error("refusing member", "err", err)
	}
	return err
}

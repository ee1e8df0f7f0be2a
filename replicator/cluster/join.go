package cluster

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/member"
)

// NumberEvent is the serf user event announcing an allocated node number,
// so that every node raises its high-water mark.
const NumberEvent = "lz-number"

// JoinCluster is what the Join handler needs from membership. *Membership
// implements it; unit tests use a fake.
type JoinCluster interface {
	member.Membership
	// GossipPeers returns gossip addresses a joiner should join.
	GossipPeers() []string
	// UserEvent broadcasts a small event to every member.
	UserEvent(name string, payload []byte) error
	// Query asks every alive member and returns their answers by name.
	Query(name string, payload []byte, timeout time.Duration) (map[string][]byte, error)
}

// JoinConfig configures the Join handler.
type JoinConfig struct {
	CA        *CA
	GossipKey []byte
	// Policy is the cluster's erasure-coding policy handed to joiners.
	Policy string
	// MaxNumber is the highest node number that may be allocated.
	MaxNumber int
	// QueryTimeout bounds the gossip query for the newest join token.
	QueryTimeout time.Duration
}

// JoinService implements the Peer API's Join method: it admits a new node.
//
// Number allocation: a joiner gets max(every number gossip knows, alive,
// failed or left; this node's persisted high-water mark) + 1, and the mark
// is persisted before the answer leaves, then announced with a NumberEvent
// so every node raises its own mark. Joins through one node are serialised,
// so they never get the same number. Two joins through two different nodes
// at the same moment (before either announcement arrives) can get the same
// number: the second of the two nodes to start gossip is then refused by
// the membership merge check (ErrMemberConflict, "node number N is already
// taken") and never admitted; its operator runs `lazaret join` again and
// gets a fresh number. Numbers are never reused, even after the node that
// held one left and was reaped.
type JoinService struct {
	cfg     JoinConfig
	log     *slog.Logger
	clock   lazaret.Clock
	cluster JoinCluster
	tokens  *Tokens
	numbers *Numbers
	mu      sync.Mutex // serialises joins through this node
}

// NewJoinService returns the Join handler.
func NewJoinService(cfg JoinConfig, cluster JoinCluster, tokens *Tokens, numbers *Numbers, log *slog.Logger, clock lazaret.Clock) *JoinService {
	if cfg.MaxNumber == 0 {
		cfg.MaxNumber = lazaret.MaxNode16
	}
	if cfg.QueryTimeout == 0 {
		cfg.QueryTimeout = 2 * time.Second
	}
	return &JoinService{cfg: cfg, log: log, clock: clock, cluster: cluster, tokens: tokens, numbers: numbers}
}

// Register wires the token and number gossip handlers into m. Call before
// m.Start.
func (j *JoinService) Register(m *Membership) {
	m.HandleEvent(TokenEvent, func(p []byte) {
		s, err := decodeTokenState(p)
		if err != nil {
			j.log.Warn("ignoring token event", "err", err)
			return
		}
		if ok, err := j.tokens.Adopt(s); err != nil {
			j.log.Error("storing rotated join token", "err", err)
		} else if ok {
			j.log.Info("join token rotated", "issued", s.Issued)
		}
	})
	m.HandleQuery(TokenEvent, func([]byte) []byte {
		if _, err := j.tokens.Reload(); err != nil {
			j.log.Warn("reading join token", "err", err)
		}
		return j.tokens.Current().encode()
	})
	m.HandleEvent(NumberEvent, func(p []byte) {
		n, err := strconv.Atoi(string(p))
		if err != nil {
			return
		}
		if err := j.numbers.Observe(n); err != nil {
			j.log.Error("storing node number mark", "err", err)
		}
	})
	m.OnMember(func(mem member.Member) {
		if err := j.numbers.Observe(mem.Number); err != nil {
			j.log.Error("storing node number mark", "err", err)
		}
	})
}

// WatchTokens polls the token file every interval until ctx ends; when
// `lazaret token rotate` changed it, the new state is broadcast.
func (j *JoinService) WatchTokens(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := j.tokens.Reload()
		if err != nil {
			j.log.Warn("reading join token", "err", err)
			continue
		}
		if changed {
			j.broadcastToken()
		}
	}
}

func (j *JoinService) broadcastToken() {
	s := j.tokens.Current()
	if err := j.cluster.UserEvent(TokenEvent, s.encode()); err != nil {
		j.log.Warn("announcing join token", "err", err)
		return
	}
	j.log.Info("join token rotated; announced to the cluster", "issued", s.Issued)
}

// newestToken returns the newest token state among this node and every
// alive member that answers the token query, adopting it locally.
func (j *JoinService) newestToken() TokenState {
	if _, err := j.tokens.Reload(); err != nil {
		j.log.Warn("reading join token", "err", err)
	}
	best := j.tokens.Current()
	answers, err := j.cluster.Query(TokenEvent, nil, j.cfg.QueryTimeout)
	if err != nil {
		j.log.Warn("asking members for the join token", "err", err)
	}
	for from, p := range answers {
		s, err := decodeTokenState(p)
		if err != nil {
			j.log.Warn("bad token answer", "from", from, "err", err)
			continue
		}
		if s.Newer(best) {
			best = s
		}
	}
	if best.Newer(j.tokens.Current()) {
		if _, err := j.tokens.Adopt(best); err != nil {
			j.log.Error("storing rotated join token", "err", err)
		}
	}
	return best
}

// Join checks the token, allocates a node number, signs the joiner's
// certificate and hands it the cluster's secrets.
func (j *JoinService) Join(ctx context.Context, req *lazaretpb.JoinRequest) (*lazaretpb.JoinResponse, error) {
	if err := ValidName(req.GetName()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.GetCsrDer()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "join: no certificate request")
	}
	if !j.newestToken().Matches(req.GetToken()) {
		j.log.Warn("join refused: bad token", "name", req.GetName())
		return nil, status.Error(codes.PermissionDenied, ErrBadToken.Error())
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	var seen []int
	for _, m := range j.cluster.Members() {
		seen = append(seen, m.Number)
		if m.Name == req.GetName() && m.State != member.Left {
			return nil, status.Errorf(codes.AlreadyExists, "join: node name %q is already taken by node %d (%s); choose another name", m.Name, m.Number, m.State)
		}
	}
	seen = append(seen, j.cluster.Self().Number)
	number, err := j.numbers.Allocate(seen, j.cfg.MaxNumber)
	if err != nil {
		return nil, status.Error(codes.ResourceExhausted, err.Error())
	}
	var hosts []string
	for _, a := range req.GetAddresses() {
		if a = strings.TrimSpace(a); a != "" {
			hosts = append(hosts, a)
		}
	}
	certPEM, err := j.cfg.CA.Sign(req.GetCsrDer(), Identity{Name: req.GetName(), Number: number}, hosts, j.clock.Now())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	keyPEM, err := j.cfg.CA.KeyPEM()
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	if err := j.cluster.UserEvent(NumberEvent, []byte(strconv.Itoa(number))); err != nil {
		j.log.Warn("announcing node number", "number", number, "err", err)
	}
	j.log.Info("admitted node", "name", req.GetName(), "number", number, "addresses", hosts)
	return &lazaretpb.JoinResponse{
		NodeNumber:  int32(number),
		CertPem:     certPEM,
		CaPem:       j.cfg.CA.CertPEM,
		CaKeyPem:    keyPEM,
		GossipKey:   j.cfg.GossipKey,
		GossipPeers: j.cluster.GossipPeers(),
		Token:       req.GetToken(),
		Policy:      j.cfg.Policy,
	}, nil
}

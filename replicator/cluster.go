package replicator

import "github.com/lazaret/lazaret/proto/lazaretpb"

// MemberState is a member's liveness as gossip sees it.
type MemberState int

// Member states. Serf does not expose memberlist's "suspect" state, so an
// implementation backed by serf reports alive, failed or left only; suspect
// is reserved for implementations that can tell.
const (
	// MemberAlive is a member that answers gossip.
	MemberAlive MemberState = iota
	// MemberSuspect is a member that missed probes but is not yet declared failed.
	MemberSuspect
	// MemberFailed is a member that stopped answering without leaving.
	MemberFailed
	// MemberLeft is a member that left the cluster gracefully (or is leaving).
	MemberLeft
)

// String returns "alive", "suspect", "failed" or "left".
func (s MemberState) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberSuspect:
		return "suspect"
	case MemberFailed:
		return "failed"
	case MemberLeft:
		return "left"
	}
	return "unknown"
}

// Member is one node of the cluster.
type Member struct {
	// Name is the node's unique name.
	Name string
	// Number is the node's unique number (the one encoded in its ids).
	Number int
	// PeerAddr is host:port of its peer (1027) API.
	PeerAddr string
	// GossipAddr is host:port of its gossip (serf) endpoint.
	GossipAddr string
	// Zone is the failure zone the operator put the node in ("" = none).
	Zone string
	// Version is the node's software version.
	Version string
	// State is the node's liveness.
	State MemberState
}

// Membership tells who is in the cluster. Implementations are safe for
// concurrent use.
type Membership interface {
	// Self returns this node.
	Self() Member
	// Members returns every known member including self, failed and left
	// ones, sorted by Number.
	Members() []Member
}

// PeerDialer gives a gRPC client for a member's peer API (mutual TLS in
// production, in-memory in tests). Connections are cached; Peer must not
// block on connecting.
type PeerDialer interface {
	// Peer returns a client for the member with this node number.
	Peer(number int) (lazaretpb.PeerClient, error)
}

// Package member is what the data path and the cluster runtime agree on
// about the cluster's members: a Member and its liveness State, the
// Membership that lists them and the PeerDialer that reaches them. Package
// replicator consumes these; package replicator/cluster implements them
// (serf gossip, mutual TLS), and tests implement them in memory.
package member

import "github.com/lazaret/lazaret/proto/lazaretpb"

// State is a member's liveness as gossip sees it.
type State int

// Member states. Serf does not expose memberlist's "suspect" state, so an
// implementation backed by serf reports alive, failed or left only; suspect
// is reserved for implementations that can tell.
const (
	// Alive is a member that answers gossip.
	Alive State = iota
	// Suspect is a member that missed probes but is not yet declared failed.
	Suspect
	// Failed is a member that stopped answering without leaving.
	Failed
	// Left is a member that left the cluster gracefully (or is leaving).
	Left
)

// String returns "alive", "suspect", "failed" or "left".
func (s State) String() string {
	switch s {
	case Alive:
		return "alive"
	case Suspect:
		return "suspect"
	case Failed:
		return "failed"
	case Left:
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
	State State
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

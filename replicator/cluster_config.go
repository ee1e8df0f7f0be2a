package replicator

import (
	"fmt"
	"time"

	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/member"
)

// ClusterConfig configures a node as a member of a cluster. With Members
// nil the node is on its own and the other fields are ignored.
type ClusterConfig struct {
	// Members tells who is in the cluster and who is alive; Peers reaches
	// them (PeerClient over mutual TLS in production). Both or neither.
	Members member.Membership
	Peers   member.PeerDialer

	// Policy is the cluster's erasure code, "k+m" such as "4+2" or "8+3",
	// or "" (or "auto") for the default by cluster size (see DefaultCode).
	// Every node of a cluster must use the same policy.
	Policy string
	// WriteQuorum is how many shards must be fsync'd on distinct nodes
	// before a put is acknowledged; 0 means k+1. It is capped at k+m and
	// raised to k.
	WriteQuorum int
	// Strict refuses a put with lazaret.ErrUnavailable (a temporary error)
	// when the quorum cannot be met, instead of keeping the body whole on
	// this node and marking it under-protected.
	Strict bool
	// SmallMessageThreshold: bodies smaller than this many bytes are
	// replicated whole (a 1+m code: 1+m copies, surviving the same m node
	// losses) instead of erasure-coded; 0 means DefaultSmallMessageThreshold
	// and -1 means never (always erasure-code).
	SmallMessageThreshold int64
	// StripeChunkSize is the bytes each shard receives per stripe (a stripe
	// holds k of them); it bounds the memory of a put or a get to about
	// (2k+m) chunks. 0 means DefaultStripeChunkSize.
	StripeChunkSize int
	// PeerTimeout bounds one shard transfer or metadata push to a peer; a
	// peer that does not answer in time counts as failed for that request.
	PeerTimeout time.Duration
	// StragglerGrace bounds how long one slow or hung node can hold up a
	// put (see "Write guarantees" in cluster_put.go): a shard stream that
	// takes no data for this long while the others keep up is given up;
	// once the write quorum is stored, the put waits at most this long for
	// the other shards (still running, they finish in the background) and,
	// after the commit, at most this long for the shard holders to take the
	// message's metadata. 0 means DefaultStragglerGrace.
	StragglerGrace time.Duration
	// SpoolDir is where a put keeps the part of a body beyond its first MiB
	// while it is sent, in an unlinked temporary file that is never
	// fsync'd, to fall back on a whole copy if the write quorum is missed
	// (see cluster_put_spool.go); "" means os.TempDir().
	SpoolDir string
	// PushQueue is how many metadata changes may wait to be pushed to the
	// other members; beyond it changes are dropped (and logged), to be
	// caught up by anti-entropy.
	PushQueue int
	// AntiEntropy tunes reconciliation and repair (antientropy.go); zero
	// fields take DefaultAntiEntropyConfig's values.
	AntiEntropy AntiEntropyConfig
}

// Defaults for ClusterConfig.
const (
	// DefaultStripeChunkSize is 256 KiB per shard per stripe.
	DefaultStripeChunkSize = 256 << 10
	// DefaultSmallMessageThreshold is the body size below which a message
	// is replicated whole (1+m) rather than erasure-coded (k+m). Measured
	// with BenchmarkSmallMessage (cluster_bench_test.go): 5 in-process
	// nodes, fsync'd badger stores on one disk, shards over gRPC (bufconn),
	// 8 concurrent writers, 2-vCPU VM; 3+2 versus 1+2, time per put (two
	// runs of 300 puts each):
	//
	//	size     3+2 EC        1+2 copies
	//	1 KiB    5.3-7.1 ms    5.8-7.3 ms
	//	4 KiB    10.5-13.2 ms  7.5-7.9 ms
	//	16 KiB   10.9-11.1 ms  7.0-7.3 ms
	//	32 KiB   9.8-10.5 ms   11.0-12.2 ms
	//	64 KiB   11.9-13.0 ms  14.3-14.6 ms
	//	128 KiB  15.4-18.1 ms  31.0-37.6 ms
	//	256 KiB  21.5-25.6 ms  39.9-45.0 ms
	//	1 MiB    45.0-58.5 ms  73.6-103 ms
	//
	// Below ~32 KiB a put is dominated by per-shard work (an RPC, a badger
	// transaction and an fsync per node), so 3 copies beat 5 shards by about
	// a third; from 32 KiB the bytes dominate (3x written versus 1.67x) and
	// erasure coding wins, increasingly with size. Replicated small bodies
	// cost 3x their size in disk instead of 1.67x, which for the 2-20 KB
	// bulk of mail is a small share of the bytes.
	DefaultSmallMessageThreshold = 32 << 10
	// DefaultStragglerGrace is 2 s: far above the spread between healthy
	// shard writes (milliseconds, an fsync each), far below PeerTimeout.
	DefaultStragglerGrace = 2 * time.Second
)

// DefaultClusterConfig returns the cluster settings on defaults, without
// members (a single node).
func DefaultClusterConfig() ClusterConfig {
	return ClusterConfig{
		WriteQuorum:     0,
		StripeChunkSize: DefaultStripeChunkSize,
		PeerTimeout:     30 * time.Second,
		StragglerGrace:  DefaultStragglerGrace,
		PushQueue:       10000,
	}
}

// Validate reports the first invalid field, by name.
func (c *ClusterConfig) Validate() error {
	if _, err := erasure.ParsePolicy(c.Policy); err != nil {
		return err
	}
	switch {
	case (c.Members == nil) != (c.Peers == nil):
		return fmt.Errorf("members and peers: set both or neither")
	case c.WriteQuorum < 0:
		return fmt.Errorf("write quorum %d: must not be negative", c.WriteQuorum)
	case c.SmallMessageThreshold < -1:
		return fmt.Errorf("small message threshold %d: want -1, 0 or a size", c.SmallMessageThreshold)
	case c.StripeChunkSize != 0 && (c.StripeChunkSize < 4<<10 || c.StripeChunkSize > 4<<20):
		return fmt.Errorf("stripe chunk size %d: want 0 or [4 KiB, 4 MiB]", c.StripeChunkSize)
	case c.PeerTimeout < 0:
		return fmt.Errorf("peer timeout %v: must not be negative", c.PeerTimeout)
	case c.StragglerGrace < 0:
		return fmt.Errorf("straggler grace %v: must not be negative", c.StragglerGrace)
	case c.PushQueue < 0:
		return fmt.Errorf("push queue %d: must not be negative", c.PushQueue)
	}
	return c.AntiEntropy.Validate()
}

// withDefaults fills zero fields.
func (c ClusterConfig) withDefaults() ClusterConfig {
	if c.StripeChunkSize == 0 {
		c.StripeChunkSize = DefaultStripeChunkSize
	}
	if c.SmallMessageThreshold == 0 {
		c.SmallMessageThreshold = DefaultSmallMessageThreshold
	}
	if c.PeerTimeout == 0 {
		c.PeerTimeout = 30 * time.Second
	}
	if c.StragglerGrace == 0 {
		c.StragglerGrace = DefaultStragglerGrace
	}
	if c.PushQueue == 0 {
		c.PushQueue = 10000
	}
	return c
}

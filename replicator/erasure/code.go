package erasure

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/lazaret/lazaret"
)

// MaxShards is the most shards a code may have: objstore stores a shard's
// index in one byte (objstore.MaxShards; package replicator checks that the
// two agree).
const MaxShards = 256

// Code is an erasure code: a body is cut into K data shards and M parity
// shards, any K of which rebuild it. K=1 is replication: every one of the
// 1+M shards is a whole copy of the body.
type Code struct {
	K, M int
}

// String returns the code as "K+M".
func (c Code) String() string { return fmt.Sprintf("%d+%d", c.K, c.M) }

// Shards returns K+M.
func (c Code) Shards() int { return c.K + c.M }

// Validate reports whether objstore can store the code's shards.
func (c Code) Validate() error {
	if c.K < 1 || c.M < 0 || c.K+c.M > MaxShards {
		return fmt.Errorf("%w: erasure code %d+%d (want k >= 1, m >= 0, k+m <= %d)", lazaret.ErrInvalidArgument, c.K, c.M, MaxShards)
	}
	return nil
}

// ParsePolicy parses a cluster policy: "" or "auto" (the default for the
// cluster's size, see DefaultCode) or "k+m" such as "8+3". It returns the
// zero Code for the default.
func ParsePolicy(s string) (Code, error) {
	s = strings.TrimSpace(s)
	if s == "" || strings.EqualFold(s, "auto") {
		return Code{}, nil
	}
	ks, ms, ok := strings.Cut(s, "+")
	if !ok {
		return Code{}, fmt.Errorf("%w: policy %q: want \"k+m\" (such as \"4+2\") or \"auto\"", lazaret.ErrInvalidArgument, s)
	}
	k, err1 := strconv.Atoi(strings.TrimSpace(ks))
	m, err2 := strconv.Atoi(strings.TrimSpace(ms))
	if err1 != nil || err2 != nil {
		return Code{}, fmt.Errorf("%w: policy %q: k and m must be whole numbers", lazaret.ErrInvalidArgument, s)
	}
	c := Code{K: k, M: m}
	if err := c.Validate(); err != nil {
		return Code{}, fmt.Errorf("policy %q: %w", s, err)
	}
	return c, nil
}

// DefaultCode returns the code used for a cluster of n nodes when no policy
// is set:
//
//	nodes  code  survives  storage overhead
//	1      1+0   -         1x   (a whole copy, as a single node stores it)
//	2      1+1   1 node    2x   (mirror)
//	3      2+1   1 node    1.5x
//	4      2+2   2 nodes   2x
//	5      3+2   2 nodes   1.67x
//	6+     4+2   2 nodes   1.5x
//
// n counts the members that have not left the cluster, failed ones
// included, so the code does not change while a node is down.
func DefaultCode(n int) Code {
	switch {
	case n <= 1:
		return Code{1, 0}
	case n == 2:
		return Code{1, 1}
	case n == 3:
		return Code{2, 1}
	case n == 4:
		return Code{2, 2}
	case n == 5:
		return Code{3, 2}
	default:
		return Code{4, 2}
	}
}

// ClusterCode returns the code for new messages: the configured policy,
// or the default for a cluster of members nodes (those that have not left).
func ClusterCode(policy Code, members int) Code {
	if policy.K > 0 {
		return policy
	}
	return DefaultCode(members)
}

// WriteQuorum returns how many shards must be fsync'd on distinct nodes
// before a put of code c is acknowledged: configured (0 means K+1), never
// more than K+M and never less than K.
func WriteQuorum(configured int, c Code) int {
	q := configured
	if q <= 0 {
		q = c.K + 1
	}
	q = min(q, c.Shards())
	return max(q, c.K)
}

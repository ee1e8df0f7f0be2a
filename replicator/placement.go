package replicator

import (
	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/member"
)

// The placement and code math is in package erasure; these adapt it to
// the cluster's members.

func memberName(m member.Member) string { return m.Name }

// rankMembers returns the members ordered by decreasing rendezvous weight
// for id, whatever their state.
func rankMembers(id lazaret.ID, members []member.Member) []member.Member {
	return erasure.Rank(id, members, memberName)
}

// placeShards returns the members for the shards of message id: the n
// alive members with the highest weights, shard i on the i-th.
func placeShards(id lazaret.ID, members []member.Member, n int) []member.Member {
	return erasure.Place(id, members, n, memberName, func(m member.Member) bool { return m.State == member.Alive })
}

// clusterCode returns the code for new messages: the configured one, or the
// default for the cluster's size, counting the members that have not left
// (failed ones included, so the code does not change while a node is down).
func clusterCode(policy erasure.Code, members []member.Member) erasure.Code {
	n := 0
	for _, m := range members {
		if m.State != member.Left {
			n++
		}
	}
	return erasure.ClusterCode(policy, n)
}

// Package replicator decides where a message's bytes live and carries out
// every operation on them: Node implements lazaret.Quarantine on top of the
// node's local objstore.
//
// A node on its own keeps each body whole (shard 0 of a 1+0 code). The
// cluster's placement, quorum writes and repair build on the same write path:
// stream the body into shard writers, then commit metadata and shards in one
// fsync'd step, so nothing is visible before it is durable.
//
// Files by job: the foreground operations (node.go, cluster_put*.go,
// cluster_get.go, release.go, learn.go, search.go); background convergence
// (push.go, antientropy.go, repair.go, lag.go); the data side of the peer
// API (peer_handler.go); cluster glue (cluster_node.go, cluster_config.go,
// placement.go). The math is in replicator/erasure, the membership types in
// replicator/member, wire conversion in proto/wire; the cluster runtime
// (replicator/cluster) implements member.Membership and member.PeerDialer,
// and package daemon wires them together.
package replicator

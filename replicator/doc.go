// Package replicator decides where a message's bytes live and carries out
// every operation on them: it implements lazaret.Quarantine on top of the
// node's local objstore.
//
// A node on its own keeps each body whole (shard 0 of a 1+0 code). The
// cluster's placement, quorum writes and repair build on the same write path:
// stream the body into shard writers, then commit metadata and shards in one
// fsync'd step, so nothing is visible before it is durable.
package replicator

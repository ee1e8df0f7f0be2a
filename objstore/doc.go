// Package objstore is a node's durable local store: message bodies, kept as
// checksummed shards, and message metadata, on one badger database.
//
// # Guarantees
//
//   - Acknowledged means durable: the database is opened with SyncWrites, so
//     every write that returns nil has been fsync'd (value log and WAL).
//     Concurrent writers are grouped into one fsync by badger.
//   - Nothing partial is ever visible: a shard's chunks are written under a
//     private generation number that no reader can reach until [Store.Commit]
//     (or [Store.CommitShards]) writes the shard header in one transaction
//     together with the metadata and time-index keys.
//   - Nothing leaks after a crash: a pending marker is stored in the same
//     atomic, fsync'd write as a writer's first chunk; [Open] deletes the
//     chunks of every pending marker left behind (kill -9 mid-put).
//   - Every byte is verified: each chunk value carries a CRC32C (Castagnoli)
//     checked before its bytes are handed out, and the shard's SHA-256 and
//     size are checked at EOF. Mismatches are *lazaret.Error values wrapping
//     [lazaret.ErrCorrupt] that name the message, shard and chunk.
//
// # Data model
//
// A body is stored as one or more shards, ready for erasure coding: shard i
// of a K+M code. A whole copy on one node is shard 0 of a 1+0 code. The same
// store holds shards of messages owned by other nodes (see
// [Store.CommitShards]), whose metadata may arrive separately.
//
// # Key layout
//
// Every key starts with a one-byte namespace and a one-byte layout version
// (currently 1). Ids are Exim-style ASCII and never contain 0x00, which
// terminates them where something follows. Integers are big-endian; times are
// Unix nanoseconds with the sign bit flipped, so keys sort in time order.
//
//	Key                                           Value
//	'm' 1 id                                      metadata, JSON (lazaret.Metadata)
//	't' 1 time(8) id                              time index: version(1) state(1) size(8)
//	'h' 1 id 0x00 shard(2)                        shard header (see below)
//	'c' 1 id 0x00 shard(2) gen(8) chunk(4)        chunk: CRC32C(4) data
//	'p' 1 id 0x00 shard(2) gen(8)                 pending marker: created time(8)
//	'x' 1 time(8) id 0x00 shard(2)                shard commit-time index: empty
//	's' 1 name                                    small store records ("idlease",
//	                                              "outbox", "outbox-overflow")
//	'o' 1 seq(8)                                  outbox record (see below)
//
// The time index key of a message uses its Received time; List walks it in
// reverse (newest first) and Expire forwards. The shard commit-time index lets
// Expire remove shards whose metadata never arrived.
//
// A shard header is: version(1)=1, K(2), M(2), index(2), size(8),
// body size(8), chunk size(4), gen(8), committed time(8), SHA-256(32), and a
// CRC32C(4) of everything before it. The chunks of a shard are those of the
// generation its header names; chunk n holds bytes [n*chunk size,
// (n+1)*chunk size) of the shard, every chunk but the last is full, and a
// shard of size 0 has no chunks.
//
// An outbox record (only with Config.Outbox) is appended in the same
// transaction as every metadata change (Commit, PutMeta, Expire), under a
// sequence number that increases for the life of the store. Its value is
// version(1)=1, kind(1) (1 upsert, 2 expire), enqueued time(8), the
// message's Version as wall(8) logical(4) node(4), then the id. A consumer
// reads records in key order and deletes them once applied. The record
// "outbox" marks that the outbox has been on since the store was last opened
// without it; "outbox-overflow" says changes were dropped (the outbox was
// full, or it was off) and the consumer must resynchronise everything.
//
// A pending marker's key suffix equals the prefix of the chunks it guards, so
// the sweep at Open and [ShardWriter.Abort] delete exactly the chunks of one
// unfinished write.
//
// # Space
//
// Deleted and expired bodies stay in badger's value log until value-log GC
// rewrites the file: call [Store.RunGC] after large deletes, or let
// [Store.StartBackground] run retention and GC periodically.
package objstore

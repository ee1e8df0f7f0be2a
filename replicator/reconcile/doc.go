// Package reconcile finds the differences between two replicas of a set of
// keyed, versioned items (Lazaret's message metadata) with range-based set
// reconciliation (A. Meyer, "Range-Based Set Reconciliation", 2023; the
// scheme of hoytech/negentropy).
//
// Each replica holds its items sorted by key. A range of keys is summarised
// by a fingerprint: the sum modulo 2^128 of the items' 128-bit hashes, hashed
// with the range's item count. The two replicas exchange fingerprints of
// ranges; equal fingerprints end the range, a differing range is split into
// Config.Branch sub-ranges, and a range with few items is settled by listing
// the 64-bit hash prefixes of its items; the peer answers which it holds and
// names the keys of the items the list lacked. The traffic grows with the number
// of differences d as O(d · log n), not with the set size n; a replica pair
// in sync settles in one round trip of a few dozen bytes.
//
// The package does no I/O. A [Session] is a pure state machine in the style
// of etcd's raft: [Session.Initiate] and [Session.Handle] return the
// [Message] to send, and the caller carries its [Message.MarshalBinary]
// bytes over whatever transport it likes (the node-to-node gRPC channel on
// port 1027). Each step also reports the keys this side must push to its
// peer (Have) and pull from it (Need); after the session both sides know the
// exact symmetric difference.
//
// [MemSet] is an in-memory [Set] with O(log n) range fingerprints and cheap
// inserts, updates and deletes, for a few million items. [MetadataItem] turns
// a [lazaret.Metadata] into the Item a replica stores. See
// docs/antientropy.md for the protocol, its wire format and its cost.
package reconcile

// Package erasure is the pure math of where and how a body is stored: the
// erasure code (Code, ParsePolicy, DefaultCode, WriteQuorum), rendezvous
// placement of a message's shards on named holders (Rank, Place) and the
// stripe layout, encoder (EncodeStripes) and verifying decoder
// (StripeReader) of Reed-Solomon shards. It depends only on package lazaret
// and reedsolomon: shard I/O is handed in as functions, so every result is
// a function of its arguments and is tested deterministically.
package erasure

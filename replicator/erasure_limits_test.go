package replicator

import (
	"testing"

	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator/erasure"
)

// Package erasure keeps its own copy of the shard limit so that it depends
// on nothing but the root package; it must be the store's.
func TestErasureMaxShardsIsTheStores(t *testing.T) {
	if erasure.MaxShards != objstore.MaxShards {
		t.Fatalf("erasure.MaxShards = %d, objstore.MaxShards = %d", erasure.MaxShards, objstore.MaxShards)
	}
}

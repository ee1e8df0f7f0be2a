package objstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// TestRunGCShrinksValueLog stores ~24 MiB in 1 MiB value log files, deletes
// most of it and checks that GC gives the space back.
func TestRunGCShrinksValueLog(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ChunkSize = 64 << 10
	cfg.ValueLogFileSize = 1 << 20
	cfg.SyncWrites = false // speed; durability is not under test here
	cfg.NumLevelZeroTables, cfg.NumLevelZeroTablesStall = 1, 2
	s := openStore(t, cfg, lazaret.NewManualClock(t0))
	const n, size = 48, 512 << 10
	for i := range n {
		put(t, s, testID(i), t0.Add(time.Duration(i)*time.Second), body(size, uint64(i)))
	}
	// Flush the writes to a level-0 table, as a full memtable would.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg, lazaret.NewManualClock(t0))
	before := stats(t, s)
	if before.VlogBytes < n*size {
		t.Fatalf("value log %d bytes before deletes, want >= %d", before.VlogBytes, n*size)
	}
	if got, err := s.Expire(context.Background(), t0.Add((n-4)*time.Second)); err != nil || got != n-4 {
		t.Fatalf("Expire = %d, %v", got, err)
	}
	// Badger counts value-log garbage when compactions drop deleted keys:
	// the deletions must leave the memtable (a full memtable or Close
	// flushes it) and be compacted (background compaction, forced here).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, cfg, lazaret.NewManualClock(t0))
	if err := s.Flatten(); err != nil {
		t.Fatal(err)
	}
	if err := s.RunGC(); err != nil {
		t.Fatal(err)
	}
	after := stats(t, s)
	t.Logf("value log %d -> %d bytes, disk %d -> %d", before.VlogBytes, after.VlogBytes, before.DiskBytes, after.DiskBytes)
	if after.VlogBytes > before.VlogBytes/2 {
		t.Fatalf("value log %d -> %d bytes: GC reclaimed too little", before.VlogBytes, after.VlogBytes)
	}
	for i := n - 4; i < n; i++ {
		mustRead(t, s, testID(i), 0, body(size, uint64(i)))
	}
}

package objstore_test

import (
	"testing"
)

// WriteStats counts acknowledged messages, their bytes and synced commits,
// and sees the body bytes go through badger's value log.
func TestWriteStatsCountAckedMessages(t *testing.T) {
	s, _, cfg := newStore(t)
	before := s.WriteStats()
	if before.AckedMessages != 0 || before.SyncedCommits != 0 {
		t.Fatalf("fresh store: %+v", before)
	}
	const n = 3
	size := 3*cfg.ChunkSize + 100 // several chunks: several synced commits each
	for i := range n {
		put(t, s, testID(i), t0, body(size, uint64(i)))
	}
	st := s.WriteStats()
	if st.AckedMessages != n || st.AckedBytes != int64(n*size) {
		t.Errorf("acked %d messages, %d bytes; want %d, %d", st.AckedMessages, st.AckedBytes, n, n*size)
	}
	// Each put syncs its four chunks one by one (the last at Finish), then
	// the commit; puts run one after another, so no two share a commit.
	if cfg.SyncWrites && st.SyncedCommits != 5*n {
		t.Errorf("synced commits = %d, want %d", st.SyncedCommits, 5*n)
	}
	// Small test chunks stay in the LSM tree; large ones go to the value
	// log: either way every body byte is written through badger.
	if st.VlogBytes+st.L0Bytes < int64(n*size) {
		t.Errorf("value log %d + L0 %d bytes < %d body bytes", st.VlogBytes, st.L0Bytes, n*size)
	}
}

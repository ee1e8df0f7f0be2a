package objstore

import (
	"expvar"
	"sync/atomic"
)

// WriteStats counts what the store's writes cost, since Open, so that the
// cost of an acknowledged message can be read off as a ratio (issue 13):
// syncs per message and bytes written per byte of mail.
type WriteStats struct {
	// AckedMessages is how many Commit calls with metadata succeeded (each
	// acknowledges one message on this node); AckedBytes their body bytes.
	AckedMessages, AckedBytes int64
	// SyncedCommits is how many badger write transactions the store
	// committed with SyncWrites on. Each costs one sync of badger's
	// write-ahead log (badger syncs it once per transaction) and shares one
	// sync of the value log with the transactions badger batches with it;
	// badger syncs its mmap'd files with msync(MS_SYNC), not fsync.
	SyncedCommits int64
	// VlogBytes, L0Bytes and CompactionBytes are what badger reports writing
	// to its value log, to its memtables (and so write-ahead log, L0 once
	// flushed) and by compaction. Badger keeps these per process, not per
	// database: with more than one store open in a process they add up.
	VlogBytes, L0Bytes, CompactionBytes int64
	// DeviceBytes is what the whole process caused to be written to the
	// storage device (write_bytes of /proc/self/io); -1 where unknown.
	DeviceBytes int64
}

// writeCounters are the store's own counters behind WriteStats and the
// readings of badger's and the kernel's counters taken at Open.
type writeCounters struct {
	acked, ackedBytes, synced atomic.Int64
	at                        WriteStats // readings at Open
}

// badgerWrites reads badger's process-wide write counters (expvar).
func badgerWrites() (vlog, l0, compaction int64) {
	intVar := func(name string) int64 {
		if v, ok := expvar.Get(name).(*expvar.Int); ok {
			return v.Value()
		}
		return 0
	}
	if m, ok := expvar.Get("badger_write_bytes_compaction").(*expvar.Map); ok {
		m.Do(func(kv expvar.KeyValue) {
			if v, ok := kv.Value.(*expvar.Int); ok {
				compaction += v.Value()
			}
		})
	}
	return intVar("badger_write_bytes_vlog"), intVar("badger_write_bytes_l0"), compaction
}

// startWriteStats takes the readings WriteStats counts from.
func (s *Store) startWriteStats() {
	s.ws.at.VlogBytes, s.ws.at.L0Bytes, s.ws.at.CompactionBytes = badgerWrites()
	s.ws.at.DeviceBytes = deviceWriteBytes()
}

// WriteStats returns the write costs since Open.
func (s *Store) WriteStats() WriteStats {
	v, l, c := badgerWrites()
	st := WriteStats{
		AckedMessages:   s.ws.acked.Load(),
		AckedBytes:      s.ws.ackedBytes.Load(),
		SyncedCommits:   s.ws.synced.Load(),
		VlogBytes:       v - s.ws.at.VlogBytes,
		L0Bytes:         l - s.ws.at.L0Bytes,
		CompactionBytes: c - s.ws.at.CompactionBytes,
		DeviceBytes:     -1,
	}
	if d := deviceWriteBytes(); d >= 0 && s.ws.at.DeviceBytes >= 0 {
		st.DeviceBytes = d - s.ws.at.DeviceBytes
	}
	return st
}

package objstore

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Stats describes what a store holds.
type Stats struct {
	Messages   int64 // metadata records of live (not deleted) messages
	BodyBytes  int64 // sum of Metadata.Size over live messages
	Shards     int64 // committed shards (of any message, with or without metadata)
	ShardBytes int64 // sum of committed shard sizes
	LSMBytes   int64 // disk space of LSM tables (*.sst)
	VlogBytes  int64 // disk space of value log files (*.vlog)
	DiskBytes  int64 // disk space of every file in Config.Dir
}

// Stats returns the store's counters, which are kept in memory (rebuilt at
// Open), and the disk space of its files (allocated blocks, where the
// platform reports them, so preallocated files count what they use).
func (s *Store) Stats() (Stats, error) {
	st := Stats{
		Messages:   s.messages.Load(),
		BodyBytes:  s.bodyBytes.Load(),
		Shards:     s.shards.Load(),
		ShardBytes: s.shardBytes.Load(),
	}
	entries, err := os.ReadDir(s.cfg.Dir)
	if err != nil {
		return st, fmt.Errorf("objstore.stats: %w", err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile (compaction, GC)
		}
		n := diskUsage(fi)
		st.DiskBytes += n
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".sst":
			st.LSMBytes += n
		case ".vlog":
			st.VlogBytes += n
		}
	}
	return st, nil
}

package objstore

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// Config configures a [Store]. Start from [DefaultConfig] and change what you
// need; [Config.Validate] reports impossible combinations.
type Config struct {
	// Dir is the directory of the badger database (created if missing). Only
	// one process may open it at a time.
	Dir string

	// ChunkSize is the size in bytes of the chunks a shard is split into; each
	// chunk is one badger value with its own CRC32C. It applies to new writes;
	// every shard records its own chunk size. Must be in [4 KiB, 16 MiB] and at
	// most half of ValueLogFileSize.
	ChunkSize int

	// MemTableSize is the size in bytes of one badger memtable; NumMemtables
	// of them may be in memory at once. Large transactions are limited to 15 %
	// of it (badger's rule).
	MemTableSize int64
	// NumMemtables is the number of memtables badger keeps (the active one
	// plus those waiting to be flushed).
	NumMemtables int
	// NumLevelZeroTables is the number of level-0 tables that triggers a
	// compaction; NumLevelZeroTablesStall stalls writes until compaction
	// catches up.
	NumLevelZeroTables, NumLevelZeroTablesStall int
	// BlockCacheSize and IndexCacheSize bound badger's caches in bytes. An
	// IndexCacheSize of 0 would keep every table index and bloom filter on
	// the heap, unbounded; do not use 0.
	BlockCacheSize, IndexCacheSize int64
	// ValueLogFileSize is the size in bytes at which badger starts a new value
	// log file; it is also the unit value-log GC reclaims. Badger accepts
	// [1 MiB, 2 GiB).
	ValueLogFileSize int64
	// ValueThreshold is the value size in bytes from which badger stores a
	// value in the value log rather than in the LSM tree. Chunks are always
	// larger; metadata usually is not.
	ValueThreshold int64
	// NumCompactors is the number of concurrent badger compaction workers
	// (at least 2).
	NumCompactors int
	// Compression is badger's block compression for LSM tables. Bodies live
	// in the value log, which badger never compresses.
	Compression options.CompressionType
	// SyncWrites fsyncs every write before it is acknowledged. Leave it true:
	// the store's durability guarantees depend on it. Tests may turn it off
	// for speed.
	SyncWrites bool

	// GCInterval is how often [Store.StartBackground] runs retention and
	// value-log GC when its caller passes a zero interval.
	GCInterval time.Duration
	// GCDiscardRatio is passed to badger's RunValueLogGC: a value log file is
	// rewritten when at least this fraction of it is garbage. In (0, 1); 0.5
	// means a write amplification of about 2.
	GCDiscardRatio float64

	// ExpireBatch is how many messages [Store.Expire] deletes per
	// transaction.
	ExpireBatch int

	// Outbox turns on the change outbox (see outbox.go): every metadata
	// change appends a record in its own transaction, for a consumer such
	// as the PostgreSQL index feeder. Off, nothing is recorded and a
	// leftover outbox is dropped at Open.
	Outbox bool
	// MinFree is the free space in bytes the store keeps on the file system
	// of Dir: a write that would leave less is refused with an error
	// wrapping lazaret.ErrDiskFull (temporary), and writes resume by
	// themselves once space is freed (see space.go). Zero derives it from
	// the badger sizes: MemTableSize x (NumMemtables +
	// NumLevelZeroTablesStall) + 2 x ChunkSize + an eighth of the LSM tree
	// (about 98 MiB with the defaults). Negative turns the check off.
	MinFree int64

	// OutboxMaxRecords bounds the outbox. Past it, changes are no longer
	// recorded one by one: an overflow flag is set instead and the consumer
	// resynchronises everything (see [Store.OutboxStats]).
	OutboxMaxRecords int
}

// DefaultConfig returns a small-memory configuration for a database in dir:
// memtables 16 MiB x 2, level-0 2/4, block cache 32 MiB, index cache 16 MiB,
// value log files of 128 MiB, value threshold 1 KiB, 2 compactors, no
// compression, SyncWrites on, 1 MiB chunks, GC every 10 minutes at ratio 0.5.
func DefaultConfig(dir string) Config {
	return Config{
		Dir:                     dir,
		ChunkSize:               1 << 20,
		MemTableSize:            16 << 20,
		NumMemtables:            2,
		NumLevelZeroTables:      2,
		NumLevelZeroTablesStall: 4,
		BlockCacheSize:          32 << 20,
		IndexCacheSize:          16 << 20,
		ValueLogFileSize:        128 << 20,
		ValueThreshold:          1 << 10,
		NumCompactors:           2,
		Compression:             options.None,
		SyncWrites:              true,
		GCInterval:              10 * time.Minute,
		GCDiscardRatio:          0.5,
		ExpireBatch:             256,
		OutboxMaxRecords:        1_000_000,
	}
}

// Validate reports the first field with an impossible value.
func (c *Config) Validate() error {
	switch {
	case c.Dir == "":
		return fmt.Errorf("objstore: Config.Dir is empty")
	case c.ChunkSize < 4<<10 || c.ChunkSize > 16<<20:
		return fmt.Errorf("objstore: Config.ChunkSize %d outside [4 KiB, 16 MiB]", c.ChunkSize)
	case c.ValueLogFileSize < 1<<20 || c.ValueLogFileSize >= 2<<30:
		return fmt.Errorf("objstore: Config.ValueLogFileSize %d outside [1 MiB, 2 GiB)", c.ValueLogFileSize)
	case int64(c.ChunkSize) > c.ValueLogFileSize/2:
		return fmt.Errorf("objstore: Config.ChunkSize %d larger than half of ValueLogFileSize %d", c.ChunkSize, c.ValueLogFileSize)
	case c.MemTableSize < 1<<20:
		return fmt.Errorf("objstore: Config.MemTableSize %d below 1 MiB", c.MemTableSize)
	case c.NumMemtables < 1:
		return fmt.Errorf("objstore: Config.NumMemtables %d below 1", c.NumMemtables)
	case c.NumLevelZeroTables < 1 || c.NumLevelZeroTablesStall <= c.NumLevelZeroTables:
		return fmt.Errorf("objstore: Config.NumLevelZeroTables %d / Stall %d: want 1 <= tables < stall", c.NumLevelZeroTables, c.NumLevelZeroTablesStall)
	case c.BlockCacheSize < 0 || c.IndexCacheSize <= 0:
		return fmt.Errorf("objstore: Config.BlockCacheSize %d / IndexCacheSize %d: want >= 0 / > 0", c.BlockCacheSize, c.IndexCacheSize)
	case c.ValueThreshold < 1 || c.ValueThreshold > c.MemTableSize*15/100:
		return fmt.Errorf("objstore: Config.ValueThreshold %d outside [1, 15%% of MemTableSize]", c.ValueThreshold)
	case c.NumCompactors < 2:
		return fmt.Errorf("objstore: Config.NumCompactors %d below 2", c.NumCompactors)
	case c.GCInterval < 0:
		return fmt.Errorf("objstore: Config.GCInterval %v is negative", c.GCInterval)
	case !(c.GCDiscardRatio > 0 && c.GCDiscardRatio < 1):
		return fmt.Errorf("objstore: Config.GCDiscardRatio %v outside (0, 1)", c.GCDiscardRatio)
	case c.ExpireBatch < 1:
		return fmt.Errorf("objstore: Config.ExpireBatch %d below 1", c.ExpireBatch)
	case c.Outbox && c.OutboxMaxRecords < 1:
		return fmt.Errorf("objstore: Config.OutboxMaxRecords %d below 1", c.OutboxMaxRecords)
	}
	return nil
}

// badgerOptions translates c into badger options logging to logger.
func (c *Config) badgerOptions(logger badger.Logger) badger.Options {
	return badger.DefaultOptions(c.Dir).
		WithMemTableSize(c.MemTableSize).
		WithNumMemtables(c.NumMemtables).
		WithNumLevelZeroTables(c.NumLevelZeroTables).
		WithNumLevelZeroTablesStall(c.NumLevelZeroTablesStall).
		WithBlockCacheSize(c.BlockCacheSize).
		WithIndexCacheSize(c.IndexCacheSize).
		WithValueLogFileSize(c.ValueLogFileSize).
		WithValueThreshold(c.ValueThreshold).
		WithNumCompactors(c.NumCompactors).
		WithCompression(c.Compression).
		WithSyncWrites(c.SyncWrites).
		WithLogger(logger)
}

package objstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/lazaret/lazaret/objstore"
)

// BenchmarkCommit measures a whole-copy put (write, finish, commit with
// metadata) with the default configuration (1 MiB chunks, SyncWrites on),
// from 8 goroutines per GOMAXPROCS, as concurrent SMTP deliveries would, so
// that badger groups their fsyncs.
func BenchmarkCommit(b *testing.B) {
	for _, size := range []int{1 << 10, 64 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			s := openStore(b, objstore.DefaultConfig(b.TempDir()), nil)
			data := body(size, 1)
			var next atomic.Int64
			b.SetBytes(int64(size))
			b.SetParallelism(8)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := testID(int(next.Add(1)))
					w, err := s.NewShardWriter(id, objstore.ShardSpec{K: 1, BodySize: int64(size)})
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := w.Write(data); err != nil {
						b.Error(err)
						return
					}
					if _, err := w.Finish(); err != nil {
						b.Error(err)
						return
					}
					if err := s.Commit(context.Background(), testMeta(id, t0, int64(size)), w); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkRead measures reading and verifying a committed 4 MiB body.
func BenchmarkRead(b *testing.B) {
	s := openStore(b, objstore.DefaultConfig(b.TempDir()), nil)
	data := body(4<<20, 1)
	put(b, s, testID(1), t0, data)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for range b.N {
		if _, err := readShard(s, testID(1), 0); err != nil {
			b.Fatal(err)
		}
	}
}

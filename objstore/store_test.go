package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// t0 is the test clock's starting time.
var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const testChunk = 4 << 10

// testConfig is a small, fast configuration in dir with 4 KiB chunks.
func testConfig(dir string) objstore.Config {
	cfg := objstore.DefaultConfig(dir)
	cfg.ChunkSize = testChunk
	cfg.MemTableSize = 4 << 20
	cfg.BlockCacheSize = 4 << 20
	cfg.IndexCacheSize = 2 << 20
	cfg.ValueLogFileSize = 8 << 20
	return cfg
}

func openStore(t testing.TB, cfg objstore.Config, clock lazaret.Clock) *objstore.Store {
	t.Helper()
	s, err := objstore.Open(cfg, nil, clock)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newStore(t testing.TB) (*objstore.Store, *lazaret.ManualClock, objstore.Config) {
	t.Helper()
	clock := lazaret.NewManualClock(t0)
	cfg := testConfig(t.TempDir())
	return openStore(t, cfg, clock), clock, cfg
}

func testID(n int) lazaret.ID { return lazaret.ID(fmt.Sprintf("1aBcDe-%06d-01", n)) }

func body(n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.New(rand.NewPCG(seed, uint64(n)))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func testMeta(id lazaret.ID, received time.Time, size int64) *lazaret.Metadata {
	return &lazaret.Metadata{
		ID: id, Node: 1, Received: received, Size: size,
		Sender: "alice@example.org", Recipients: []string{"bob@example.com"},
		Subject: "hello " + string(id),
		Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 7.5},
	}
}

// writeShard writes data as one finished shard.
func writeShard(t testing.TB, s *objstore.Store, id lazaret.ID, spec objstore.ShardSpec, data []byte, pieces int) *objstore.ShardWriter {
	t.Helper()
	w, err := s.NewShardWriter(id, spec)
	if err != nil {
		t.Fatalf("NewShardWriter: %v", err)
	}
	step := max(1, len(data)/max(1, pieces))
	for p := data; len(p) > 0; {
		n := min(step, len(p))
		if k, err := w.Write(p[:n]); err != nil || k != n {
			t.Fatalf("Write: %d, %v", k, err)
		}
		p = p[n:]
	}
	info, err := w.Finish()
	if err != nil {
		t.Fatalf("Finish: %v", err)
	}
	if info.Size != int64(len(data)) || info.SHA256 != sha256.Sum256(data) {
		t.Fatalf("Finish: size %d sha %x, want %d %x", info.Size, info.SHA256, len(data), sha256.Sum256(data))
	}
	return w
}

// put stores data as a whole-copy message and returns its metadata.
func put(t testing.TB, s *objstore.Store, id lazaret.ID, received time.Time, data []byte) *lazaret.Metadata {
	t.Helper()
	w := writeShard(t, s, id, objstore.ShardSpec{K: 1, BodySize: -1}, data, 3)
	m := testMeta(id, received, int64(len(data)))
	m.SHA256 = sha256.Sum256(data)
	if err := s.Commit(context.Background(), m, w); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	return m
}

func readShard(s *objstore.Store, id lazaret.ID, index int) ([]byte, error) {
	_, r, err := s.OpenShard(id, index)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func mustRead(t testing.TB, s *objstore.Store, id lazaret.ID, index int, want []byte) {
	t.Helper()
	got, err := readShard(s, id, index)
	if err != nil {
		t.Fatalf("read %s/%d: %v", id, index, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %s/%d: %d bytes differ from the %d written", id, index, len(got), len(want))
	}
}

func stats(t testing.TB, s *objstore.Store) objstore.Stats {
	t.Helper()
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

var sizes = []int{0, 1, 100, testChunk - 1, testChunk, testChunk + 1, 2 * testChunk, 3*testChunk + 5, 40*testChunk + 17}

func TestRoundTrip(t *testing.T) {
	s, _, cfg := newStore(t)
	var total int64
	for i, n := range sizes {
		id := testID(i)
		data := body(n, uint64(i))
		m := put(t, s, id, t0.Add(time.Duration(i)*time.Second), data)
		total += int64(n)
		mustRead(t, s, id, 0, data)

		got, err := s.Meta(id)
		if err != nil || got.ID != id || got.Size != int64(n) || !got.Received.Equal(m.Received) || got.SHA256 != m.SHA256 {
			t.Fatalf("Meta(%s) = %+v, %v", id, got, err)
		}
		infos, err := s.ShardInfos(id)
		want := objstore.ShardInfo{ID: id, K: 1, M: 0, Index: 0, Size: int64(n), BodySize: int64(n), ChunkSize: testChunk, SHA256: sha256.Sum256(data)}
		if err != nil || len(infos) != 1 || infos[0] != want {
			t.Fatalf("ShardInfos(%s) = %+v, %v; want %+v", id, infos, err, want)
		}
		// Byte-wise reads through a tiny buffer must give the same bytes.
		_, r, err := s.OpenShard(id, 0)
		if err != nil {
			t.Fatal(err)
		}
		got2, err := io.ReadAll(io.LimitReader(struct{ io.Reader }{r}, int64(n)+1))
		r.Close()
		if err != nil || !bytes.Equal(got2, data) {
			t.Fatalf("size %d: plain Read path differs (%v)", n, err)
		}
	}
	st := stats(t, s)
	if st.Messages != int64(len(sizes)) || st.BodyBytes != total || st.Shards != int64(len(sizes)) || st.ShardBytes != total {
		t.Fatalf("Stats = %+v, want %d messages of %d bytes", st, len(sizes), total)
	}
	if st.DiskBytes <= 0 {
		t.Fatalf("Stats.DiskBytes = %d", st.DiskBytes)
	}
	if n := s.KeyCount(objstore.NSPending); n != 0 {
		t.Fatalf("%d pending markers left after commits", n)
	}

	// Close and reopen: same bytes, same counters.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStore(t, cfg, lazaret.NewManualClock(t0))
	for i, n := range sizes {
		mustRead(t, s2, testID(i), 0, body(n, uint64(i)))
	}
	if st2 := stats(t, s2); st2.Messages != st.Messages || st2.BodyBytes != st.BodyBytes || st2.Shards != st.Shards || st2.ShardBytes != st.ShardBytes {
		t.Fatalf("Stats after reopen = %+v, before %+v", st2, st)
	}
}

// TestDefaultChunkSize round-trips bodies around the default 1 MiB chunk.
func TestDefaultChunkSize(t *testing.T) {
	cfg := objstore.DefaultConfig(t.TempDir())
	s := openStore(t, cfg, lazaret.NewManualClock(t0))
	for i, n := range []int{1000, 1 << 20, 5<<19 + 3} {
		data := body(n, 99)
		put(t, s, testID(i), t0, data)
		mustRead(t, s, testID(i), 0, data)
	}
}

func TestCorruptChunk(t *testing.T) {
	s, _, _ := newStore(t)
	id := testID(1)
	data := body(3*testChunk+10, 1)
	put(t, s, id, t0, data)
	if err := s.CorruptChunk(id, 0, 1, 17); err != nil {
		t.Fatal(err)
	}
	_, r, err := s.OpenShard(id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := io.ReadAll(r)
	if !errors.Is(err, lazaret.ErrCorrupt) {
		t.Fatalf("read of corrupt shard: %v, want ErrCorrupt", err)
	}
	var le *lazaret.Error
	if !errors.As(err, &le) || le.ID != id || !strings.Contains(err.Error(), "chunk 1") || !strings.Contains(err.Error(), "shard 0") {
		t.Fatalf("error %q does not name id %s, shard 0 and chunk 1", err, id)
	}
	if !bytes.Equal(got, data[:testChunk]) {
		t.Fatalf("read handed out %d bytes before failing, want exactly the good chunk 0", len(got))
	}
	// A single-chunk body, corrupted, fails before any byte is returned.
	id2 := testID(2)
	put(t, s, id2, t0, body(500, 2))
	if err := s.CorruptChunk(id2, 0, 0, 499); err != nil {
		t.Fatal(err)
	}
	if got, err := readShard(s, id2, 0); !errors.Is(err, lazaret.ErrCorrupt) || len(got) != 0 {
		t.Fatalf("read = %d bytes, %v; want 0 bytes, ErrCorrupt", len(got), err)
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	s, _, _ := newStore(t)
	for i, n := range []int{10, 5*testChunk + 3} {
		id := testID(i)
		w := writeShard(t, s, id, objstore.ShardSpec{K: 1, BodySize: -1}, body(n, 1), 4)
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		if err := s.Commit(context.Background(), testMeta(id, t0, int64(n)), w); err == nil {
			t.Fatal("Commit of an aborted writer succeeded")
		}
		if _, _, err := s.OpenShard(id, 0); !errors.Is(err, lazaret.ErrNotFound) {
			t.Fatalf("OpenShard after Abort: %v", err)
		}
	}
	// Abort of an unfinished writer too.
	w, _ := s.NewShardWriter(testID(9), objstore.ShardSpec{K: 1, BodySize: -1})
	_, _ = w.Write(body(3*testChunk, 3))
	if err := w.Abort(); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []byte{objstore.NSChunk, objstore.NSPending, objstore.NSHeader, objstore.NSMeta} {
		if n := s.KeyCount(ns); n != 0 {
			t.Fatalf("%d keys of namespace %q left after Abort", n, ns)
		}
	}
	if st := stats(t, s); st.Messages != 0 || st.Shards != 0 || st.BodyBytes != 0 || st.ShardBytes != 0 {
		t.Fatalf("Stats after Abort = %+v", st)
	}
}

func TestCrashSweptOnOpen(t *testing.T) {
	s, clock, cfg := newStore(t)
	// A committed message survives; two writes that never commit do not.
	keep := body(2*testChunk+1, 7)
	put(t, s, testID(1), t0, keep)
	w1, _ := s.NewShardWriter(testID(2), objstore.ShardSpec{K: 1, BodySize: -1})
	if _, err := w1.Write(body(6*testChunk, 8)); err != nil {
		t.Fatal(err)
	}
	_ = writeShard(t, s, testID(3), objstore.ShardSpec{K: 2, M: 1, Index: 2, BodySize: 9 * testChunk}, body(5*testChunk, 9), 2)
	if s.KeyCount(objstore.NSChunk) <= 3 || s.KeyCount(objstore.NSPending) != 2 {
		t.Fatalf("before crash: %d chunks, %d pending", s.KeyCount(objstore.NSChunk), s.KeyCount(objstore.NSPending))
	}
	if err := s.Close(); err != nil { // the writers are never committed
		t.Fatal(err)
	}
	s2 := openStore(t, cfg, clock)
	if n := s2.KeyCount(objstore.NSPending); n != 0 {
		t.Fatalf("%d pending markers after reopen", n)
	}
	if n := s2.KeyCount(objstore.NSChunk); n != 3 {
		t.Fatalf("%d chunks after reopen, want the committed message's 3", n)
	}
	mustRead(t, s2, testID(1), 0, keep)
	for _, id := range []lazaret.ID{testID(2), testID(3)} {
		if infos, err := s2.ShardInfos(id); err != nil || len(infos) != 0 {
			t.Fatalf("ShardInfos(%s) after crash = %v, %v", id, infos, err)
		}
	}
	if st := stats(t, s2); st.Messages != 1 || st.Shards != 1 || st.ShardBytes != int64(len(keep)) {
		t.Fatalf("Stats after crash = %+v", st)
	}
	// Nothing at all visible if the crash hit the only write.
	if err := s2.DeleteShards(testID(1)); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s2); st.Shards != 0 || st.ShardBytes != 0 {
		t.Fatalf("Stats after DeleteShards = %+v", st)
	}
}

func TestReplaceShard(t *testing.T) {
	s, _, _ := newStore(t)
	id := testID(1)
	put(t, s, id, t0, body(10*testChunk, 1))
	second := body(3*testChunk+1, 2)
	put(t, s, id, t0, second)
	mustRead(t, s, id, 0, second)
	if n := s.KeyCount(objstore.NSChunk); n != 4 {
		t.Fatalf("%d chunks after replacing a shard, want 4", n)
	}
	if n := s.KeyCount(objstore.NSShardTime); n != 1 {
		t.Fatalf("%d shard time keys, want 1", n)
	}
	if st := stats(t, s); st.Messages != 1 || st.Shards != 1 || st.ShardBytes != int64(len(second)) || st.BodyBytes != int64(len(second)) {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestDeleteShardByGen: DeleteShard removes one shard only while it is
// the write its generation names; a later write of the same index, and
// the message's other shards, stay.
func TestDeleteShardByGen(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	id := testID(1)
	commit := func(index int, gen uint64, data []byte) {
		t.Helper()
		w := writeShard(t, s, id, objstore.ShardSpec{K: 2, M: 1, Index: index, BodySize: 100, Gen: gen}, data, 2)
		if err := s.CommitShards(ctx, w); err != nil {
			t.Fatal(err)
		}
	}
	first, second := body(3*testChunk+1, 1), body(testChunk/2, 2)
	commit(0, 7, first)
	commit(1, 8, second)
	commit(0, 9, first) // index 0 written again, by another writer
	if ok, err := s.DeleteShard(id, 0, 7); ok || err != nil {
		t.Fatalf("DeleteShard of a replaced write: %v, %v; want false, nil", ok, err)
	}
	mustRead(t, s, id, 0, first)
	if ok, err := s.DeleteShard(id, 0, 9); !ok || err != nil {
		t.Fatalf("DeleteShard of the stored write: %v, %v; want true, nil", ok, err)
	}
	if _, err := readShard(s, id, 0); !errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("shard 0 after DeleteShard: %v; want not found", err)
	}
	mustRead(t, s, id, 1, second)
	if n := s.KeyCount(objstore.NSChunk); n != 1 {
		t.Fatalf("%d chunks left, want 1 (shard 1)", n)
	}
	if st := stats(t, s); st.Shards != 1 || st.ShardBytes != int64(len(second)) {
		t.Fatalf("Stats = %+v", st)
	}
}

// TestErasureShards stores three shards of a 2+1 code, committed apart from
// the metadata, as a replica node would.
func TestErasureShards(t *testing.T) {
	s, _, _ := newStore(t)
	id := testID(5)
	const bodySize = 5*testChunk + 2
	var ws []*objstore.ShardWriter
	var shards [][]byte
	for i := range 3 {
		d := body(bodySize/2+1, uint64(i))
		shards = append(shards, d)
		spec := objstore.ShardSpec{K: 2, M: 1, Index: i, BodySize: -1}
		w, err := s.NewShardWriter(id, spec)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(d)
		if _, err := w.Finish(); err == nil {
			t.Fatal("Finish of a K=2 shard without body size succeeded")
		}
		if err := w.Abort(); err != nil {
			t.Fatal(err)
		}
		w, _ = s.NewShardWriter(id, spec)
		_, _ = w.Write(d)
		if err := w.SetBodySize(bodySize); err != nil {
			t.Fatal(err)
		}
		if _, err := w.Finish(); err != nil {
			t.Fatal(err)
		}
		ws = append(ws, w)
	}
	if err := s.CommitShards(context.Background(), ws...); err != nil {
		t.Fatal(err)
	}
	infos, err := s.ShardInfos(id)
	if err != nil || len(infos) != 3 {
		t.Fatalf("ShardInfos = %v, %v", infos, err)
	}
	for i, in := range infos {
		if in.Index != i || in.K != 2 || in.M != 1 || in.BodySize != bodySize || in.Size != int64(len(shards[i])) {
			t.Fatalf("shard %d info %+v", i, in)
		}
		mustRead(t, s, id, i, shards[i])
	}
	if _, err := s.Meta(id); !errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("Meta of shards-only message: %v", err)
	}
	if err := s.DeleteShards(id); err != nil {
		t.Fatal(err)
	}
	if n := s.KeyCount(objstore.NSChunk); n != 0 {
		t.Fatalf("%d chunks left after DeleteShards", n)
	}
	if err := ws[0].Abort(); err != nil { // no-op after commit
		t.Fatal(err)
	}
	if _, err := s.NewShardWriter(id, objstore.ShardSpec{K: 2, M: 1, Index: 3}); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Fatalf("shard index out of range: %v", err)
	}
}

func TestConcurrentCommits(t *testing.T) {
	s, _, _ := newStore(t)
	const workers, each = 16, 8
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for g := range workers {
		wg.Go(func() {
			for i := range each {
				n := g*each + i
				id := testID(n)
				data := body(n*37%(3*testChunk)+1, uint64(n))
				w, err := s.NewShardWriter(id, objstore.ShardSpec{K: 1, BodySize: int64(len(data))})
				if err != nil {
					errs <- err
					return
				}
				if _, err := w.Write(data); err != nil {
					errs <- err
					return
				}
				if _, err := w.Finish(); err != nil {
					errs <- err
					return
				}
				if err := s.Commit(context.Background(), testMeta(id, t0.Add(time.Duration(n)*time.Millisecond), int64(len(data))), w); err != nil {
					errs <- err
					return
				}
				// Concurrent updates of one shared message conflict and retry.
				m := testMeta(testID(9999), t0.Add(time.Duration(n)*time.Second), 1)
				if err := s.PutMeta(context.Background(), m); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for n := range workers * each {
		mustRead(t, s, testID(n), 0, body(n*37%(3*testChunk)+1, uint64(n)))
	}
	if st := stats(t, s); st.Messages != workers*each+1 || st.Shards != workers*each {
		t.Fatalf("Stats = %+v", st)
	}
	if n := s.KeyCount(objstore.NSTime); n != workers*each+1 {
		t.Fatalf("%d time index keys, want %d", n, workers*each+1)
	}
}

func TestIDLease(t *testing.T) {
	s, clock, cfg := newStore(t)
	if v, err := s.LoadIDLease(); err != nil || v != 0 {
		t.Fatalf("LoadIDLease on empty store = %d, %v", v, err)
	}
	if err := s.StoreIDLease(1234567890123); err != nil {
		t.Fatal(err)
	}
	_ = s.Close()
	s2 := openStore(t, cfg, clock)
	if v, err := s2.LoadIDLease(); err != nil || v != 1234567890123 {
		t.Fatalf("LoadIDLease after reopen = %d, %v", v, err)
	}
}

func TestClosed(t *testing.T) {
	s, _, _ := newStore(t)
	w, _ := s.NewShardWriter(testID(1), objstore.ShardSpec{K: 1, BodySize: -1})
	_, _ = w.Write([]byte("x"))
	_, _ = w.Finish()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := s.Commit(context.Background(), testMeta(testID(1), t0, 1), w); !errors.Is(err, lazaret.ErrUnavailable) {
		t.Fatalf("Commit after Close: %v", err)
	}
	if _, err := s.Meta(testID(1)); !errors.Is(err, lazaret.ErrUnavailable) {
		t.Fatalf("Meta after Close: %v", err)
	}
	if _, err := s.List(context.Background(), lazaret.ListQuery{}); !errors.Is(err, lazaret.ErrUnavailable) {
		t.Fatalf("List after Close: %v", err)
	}
}

func TestInvalidInput(t *testing.T) {
	s, _, _ := newStore(t)
	if _, err := s.NewShardWriter("", objstore.ShardSpec{K: 1}); !errors.Is(err, lazaret.ErrInvalidID) {
		t.Fatalf("empty id: %v", err)
	}
	if _, err := s.NewShardWriter("a\x00b", objstore.ShardSpec{K: 1}); !errors.Is(err, lazaret.ErrInvalidID) {
		t.Fatalf("id with NUL: %v", err)
	}
	m := testMeta(testID(1), time.Time{}, 0)
	if err := s.PutMeta(context.Background(), m); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Fatalf("zero received: %v", err)
	}
	w := writeShard(t, s, testID(2), objstore.ShardSpec{K: 1, BodySize: -1}, []byte("abc"), 1)
	if err := s.Commit(context.Background(), testMeta(testID(1), t0, 3), w); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Fatalf("shard of another message: %v", err)
	}
	if _, err := s.NewShardWriter(testID(3), objstore.ShardSpec{K: 1, BodySize: 5}); err != nil {
		t.Fatal(err)
	}
	w3, _ := s.NewShardWriter(testID(3), objstore.ShardSpec{K: 1, BodySize: 5})
	_, _ = w3.Write([]byte("abc"))
	if _, err := w3.Finish(); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Fatalf("body size mismatch: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Commit(ctx, testMeta(testID(2), t0, 3), w); !errors.Is(err, context.Canceled) {
		t.Fatalf("Commit with cancelled ctx: %v", err)
	}
	if _, err := s.Meta(testID(2)); !errors.Is(err, lazaret.ErrNotFound) {
		t.Fatalf("Meta after failed commit: %v", err)
	}
	if err := s.Commit(context.Background(), testMeta(testID(2), t0, 3), w); err != nil {
		t.Fatalf("retrying Commit: %v", err)
	}
}

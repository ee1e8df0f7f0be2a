package objstore_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

func outboxStore(t *testing.T, max int) (*objstore.Store, *lazaret.ManualClock, objstore.Config) {
	t.Helper()
	clock := lazaret.NewManualClock(t0)
	cfg := testConfig(t.TempDir())
	cfg.Outbox = true
	cfg.OutboxMaxRecords = max
	return openStore(t, cfg, clock), clock, cfg
}

func outboxStats(t *testing.T, s *objstore.Store) objstore.OutboxStats {
	t.Helper()
	st, err := s.OutboxStats()
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func readAll(t *testing.T, s *objstore.Store) []objstore.OutboxRecord {
	t.Helper()
	recs, err := s.OutboxRead(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Every kind of metadata change appends one record, in order, carrying the
// version of the change; acknowledged records are gone.
func TestOutboxRecordsChanges(t *testing.T) {
	s, clock, _ := outboxStore(t, 1000)
	ctx := context.Background()
	if st := outboxStats(t, s); !st.Enabled || !st.Overflow || st.Records != 0 {
		t.Fatalf("new store: %+v, want enabled, overflow (nothing recorded before), empty", st)
	}
	if err := s.ClearOutboxOverflow(); err != nil {
		t.Fatal(err)
	}
	m := put(t, s, testID(1), t0, []byte("body"))
	clock.Advance(time.Second)
	m.Version = lazaret.Version{Wall: 7, Logical: 2, Node: 3}
	m.State = lazaret.StateReleased
	if err := s.PutMeta(ctx, m); err != nil {
		t.Fatal(err)
	}
	put(t, s, testID(2), t0.Add(time.Hour), []byte("other"))
	clock.Advance(time.Second)
	if n, err := s.Expire(ctx, t0.Add(time.Minute)); err != nil || n != 1 {
		t.Fatalf("Expire: %d, %v", n, err)
	}

	recs := readAll(t, s)
	want := []struct {
		kind objstore.OutboxKind
		id   lazaret.ID
		v    lazaret.Version
		enq  time.Time
	}{
		{objstore.OutboxUpsert, testID(1), lazaret.Version{}, t0},
		{objstore.OutboxUpsert, testID(1), lazaret.Version{Wall: 7, Logical: 2, Node: 3}, t0.Add(time.Second)},
		{objstore.OutboxUpsert, testID(2), lazaret.Version{}, t0.Add(time.Second)},
		{objstore.OutboxExpire, testID(1), lazaret.Version{Wall: 7, Logical: 2, Node: 3}, t0.Add(2 * time.Second)},
	}
	if len(recs) != len(want) {
		t.Fatalf("got %d records %+v, want %d", len(recs), recs, len(want))
	}
	for i, w := range want {
		r := recs[i]
		if r.Kind != w.kind || r.ID != w.id || r.Version != w.v || !r.Enqueued.Equal(w.enq) {
			t.Errorf("record %d = %+v, want %+v", i, r, w)
		}
		if i > 0 && r.Seq <= recs[i-1].Seq {
			t.Errorf("record %d seq %d not after %d", i, r.Seq, recs[i-1].Seq)
		}
	}
	st := outboxStats(t, s)
	if st.Records != 4 || !st.Oldest.Equal(t0) || st.Overflow {
		t.Fatalf("stats %+v, want 4 records, oldest %v, no overflow", st, t0)
	}
	if err := s.OutboxAck(recs[:3]); err != nil {
		t.Fatal(err)
	}
	if err := s.OutboxAck(recs[:1]); err != nil { // acking twice is harmless
		t.Fatal(err)
	}
	rest := readAll(t, s)
	if len(rest) != 1 || rest[0] != recs[3] {
		t.Fatalf("after ack: %+v, want only %+v", rest, recs[3])
	}
	if st := outboxStats(t, s); st.Records != 1 || !st.Oldest.Equal(t0.Add(2*time.Second)) {
		t.Fatalf("stats after ack %+v", st)
	}
}

// The outbox survives a reopen, sequence numbers keep increasing, and
// turning the outbox off drops it while turning it on again asks for a
// resynchronisation.
func TestOutboxReopen(t *testing.T) {
	s, clock, cfg := outboxStore(t, 1000)
	if err := s.ClearOutboxOverflow(); err != nil {
		t.Fatal(err)
	}
	put(t, s, testID(1), t0, []byte("a"))
	first := readAll(t, s)
	s.Close()

	s = openStore(t, cfg, clock)
	if st := outboxStats(t, s); st.Records != 1 || st.Overflow {
		t.Fatalf("reopened: %+v, want 1 record, no overflow", st)
	}
	put(t, s, testID(2), t0, []byte("b"))
	recs := readAll(t, s)
	if len(recs) != 2 || recs[0] != first[0] || recs[1].Seq <= recs[0].Seq {
		t.Fatalf("after reopen: %+v", recs)
	}
	s.Close()

	off := cfg
	off.Outbox = false
	s = openStore(t, off, clock)
	put(t, s, testID(3), t0, []byte("c"))
	if st := outboxStats(t, s); st.Enabled || st.Records != 0 {
		t.Fatalf("outbox off: %+v", st)
	}
	if recs, _ := s.OutboxRead(10); len(recs) != 0 {
		t.Fatalf("outbox off recorded %+v", recs)
	}
	s.Close()

	s = openStore(t, cfg, clock)
	if st := outboxStats(t, s); st.Records != 0 || !st.Overflow {
		t.Fatalf("outbox back on: %+v, want empty with overflow (id 3 was not recorded)", st)
	}
}

// A full outbox stops growing and sets the overflow flag; mail is still
// accepted.
func TestOutboxOverflow(t *testing.T) {
	s, _, _ := outboxStore(t, 3)
	if err := s.ClearOutboxOverflow(); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		put(t, s, testID(i), t0, []byte("x"))
	}
	st := outboxStats(t, s)
	if st.Records != 3 || !st.Overflow {
		t.Fatalf("stats %+v, want 3 records and overflow", st)
	}
	if n := len(readAll(t, s)); n != 3 {
		t.Fatalf("%d records, want 3", n)
	}
	if err := s.ClearOutboxOverflow(); err != nil {
		t.Fatal(err)
	}
	if outboxStats(t, s).Overflow {
		t.Fatal("overflow still set after clear")
	}
}

// Concurrent writers never lose a record: each committed change is in the
// outbox exactly once.
func TestOutboxConcurrent(t *testing.T) {
	s, _, _ := outboxStore(t, 100000)
	const writers, each = 8, 25
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m := testMeta(testID(w*each+i), t0, 1)
				if err := s.PutMeta(context.Background(), m); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	recs := readAll(t, s)
	seen := map[lazaret.ID]int{}
	for _, r := range recs {
		seen[r.ID]++
	}
	if len(recs) != writers*each || len(seen) != writers*each {
		t.Fatalf("%d records for %d ids, want %d each once", len(recs), len(seen), writers*each)
	}
	if st := outboxStats(t, s); st.Records != writers*each {
		t.Fatalf("stats count %d, want %d", st.Records, writers*each)
	}
}

func TestMetaPageAndMetas(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	for i := range 7 {
		if err := s.PutMeta(ctx, testMeta(testID(i), t0, 1)); err != nil {
			t.Fatal(err)
		}
	}
	var got []lazaret.ID
	after := lazaret.ID("")
	for {
		page, err := s.MetaPage(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, m := range page {
			got = append(got, m.ID)
		}
		after = page[len(page)-1].ID
	}
	if len(got) != 7 {
		t.Fatalf("walked %v, want 7 ids", got)
	}
	for i, id := range got {
		if id != testID(i) {
			t.Fatalf("walk order %v", got)
		}
	}
	ms, err := s.Metas([]lazaret.ID{testID(2), testID(99)})
	if err != nil || ms[0] == nil || ms[0].ID != testID(2) || ms[1] != nil {
		t.Fatalf("Metas: %v %v", ms, err)
	}
}

package objstore_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

func TestExpire(t *testing.T) {
	s, clock, _ := newStore(t)
	for i := range 20 { // one an hour, with bodies
		put(t, s, testID(i), t0.Add(time.Duration(i)*time.Hour), body(i*testChunk/2+1, uint64(i)))
	}
	// A shard-only replica whose metadata never arrives, committed at t0.
	w := writeShard(t, s, testID(100), objstore.ShardSpec{K: 2, M: 1, Index: 1, BodySize: 3 * testChunk}, body(2*testChunk, 5), 1)
	if err := s.CommitShards(context.Background(), w); err != nil {
		t.Fatal(err)
	}
	clock.Set(t0.Add(30 * time.Hour))
	const retention = 20 * time.Hour // expire those received before t0+10h
	n, err := s.Expire(context.Background(), clock.Now().Add(-retention))
	if err != nil || n != 10 {
		t.Fatalf("Expire = %d, %v; want 10", n, err)
	}
	for i := range 20 {
		_, merr := s.Meta(testID(i))
		infos, _ := s.ShardInfos(testID(i))
		if gone := i < 10; gone != errors.Is(merr, lazaret.ErrNotFound) || gone != (len(infos) == 0) {
			t.Fatalf("message %d: Meta err %v, %d shards", i, merr, len(infos))
		}
	}
	if infos, _ := s.ShardInfos(testID(100)); len(infos) != 0 {
		t.Fatalf("orphan shard survived: %v", infos)
	}
	got, _ := listAll(t, s, lazaret.ListQuery{States: []lazaret.State{0, 1, 2}})
	if len(got) != 10 || got[len(got)-1] != testID(10) {
		t.Fatalf("List after Expire: %v", got)
	}
	var wantBytes int64
	for i := 10; i < 20; i++ {
		wantBytes += int64(i*testChunk/2 + 1)
	}
	if st := stats(t, s); st.Messages != 10 || st.Shards != 10 || st.BodyBytes != wantBytes || st.ShardBytes != wantBytes {
		t.Fatalf("Stats = %+v", st)
	}
	if n, err := s.Expire(context.Background(), clock.Now().Add(-retention)); err != nil || n != 0 {
		t.Fatalf("second Expire = %d, %v", n, err)
	}
}

func TestExpireBatches(t *testing.T) {
	cfg := testConfig(t.TempDir())
	cfg.ExpireBatch = 3
	s := openStore(t, cfg, lazaret.NewManualClock(t0))
	for i := range 10 {
		put(t, s, testID(i), t0.Add(time.Duration(i)*time.Second), body(100, 1))
	}
	if n, err := s.Expire(context.Background(), t0.Add(8*time.Second)); err != nil || n != 8 {
		t.Fatalf("Expire = %d, %v", n, err)
	}
	if n := s.KeyCount(objstore.NSChunk); n != 2 {
		t.Fatalf("%d chunks left, want 2", n)
	}
}

func TestStartBackground(t *testing.T) {
	s, clock, _ := newStore(t)
	for i := range 5 {
		put(t, s, testID(i), t0.Add(time.Duration(i)*time.Hour), body(testChunk*2, 1))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.StartBackground(ctx, 24*time.Hour, 10*time.Millisecond)
	clock.Set(t0.Add(24*time.Hour + 3*time.Hour - time.Second)) // 0, 1 and 2 expire
	deadline := time.Now().Add(5 * time.Second)
	for stats(t, s).Messages != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("background retention did not run: %+v", stats(t, s))
		}
		time.Sleep(5 * time.Millisecond)
	}
	got, _ := listAll(t, s, lazaret.ListQuery{})
	if !sameIDs(got, []lazaret.ID{testID(4), testID(3)}) {
		t.Fatalf("List = %v", got)
	}
	// Close stops the goroutine (and waits for it).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
}

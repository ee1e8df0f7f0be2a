package index_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/index"
	"github.com/lazaret/lazaret/objstore"
)

// memSink is an index.Sink in memory that can be switched off.
type memSink struct {
	mu    sync.Mutex
	down  bool
	rows  map[lazaret.ID]*lazaret.Metadata
	nodes map[int]string
}

var errDown = errors.New("sink down")

func (s *memSink) Register(ctx context.Context, node int, host string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return false, errDown
	}
	_, ok := s.nodes[node]
	s.nodes[node] = host
	return ok, nil
}

func (s *memSink) Apply(ctx context.Context, cs []index.Change) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.down {
		return errDown
	}
	for _, c := range cs {
		if c.Meta == nil {
			delete(s.rows, c.ID)
		} else if old := s.rows[c.ID]; old == nil || c.Meta.Version.Compare(old.Version) > 0 {
			s.rows[c.ID] = c.Meta
		}
	}
	return nil
}

func (s *memSink) Prune(ctx context.Context, before time.Time) error { return nil }

func (s *memSink) set(down bool) { s.mu.Lock(); s.down = down; s.mu.Unlock() }

// While the sink is down changes wait in the outbox and Status shows them;
// when it is back they all arrive, and expiry removes rows.
func TestFeederHoldsBacklogWhileDown(t *testing.T) {
	cfg := objstore.DefaultConfig(t.TempDir())
	cfg.SyncWrites, cfg.Outbox = false, true
	store, err := objstore.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	sink := &memSink{rows: map[lazaret.ID]*lazaret.Metadata{}, nodes: map[int]string{}}
	fc := index.DefaultFeederConfig()
	fc.BatchSize = 7
	f, err := index.NewFeeder(fc, store, sink, nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sink.set(true)
	old := time.Now().Add(-48 * time.Hour)
	for i := range 50 {
		m := &lazaret.Metadata{ID: lazaret.ID("1aBcDe-0000" + string(rune('A'+i%26)) + string(rune('a'+i/26)) + "-01"), Received: time.Now()}
		if i < 5 {
			m.Received = old
		}
		if err := store.PutMeta(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Drain(ctx); !errors.Is(err, errDown) {
		t.Fatalf("Drain with the sink down: %v", err)
	}
	if st := f.Status(); st.Reachable || st.Backlog != 50 || st.LastError == "" {
		t.Fatalf("status while down: %+v", st)
	}
	sink.set(false)
	if err := f.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if st := f.Status(); !st.Reachable || st.Backlog != 0 || st.Resync || len(sink.rows) != 50 {
		t.Fatalf("after drain: %+v, %d rows", st, len(sink.rows))
	}
	if n, err := store.Expire(ctx, time.Now().Add(-time.Hour)); err != nil || n != 5 {
		t.Fatalf("Expire: %d %v", n, err)
	}
	if err := f.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	if len(sink.rows) != 45 {
		t.Fatalf("%d rows after expiry, want 45", len(sink.rows))
	}
}

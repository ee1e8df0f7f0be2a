package objstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// putMetas stores n metadata records (no bodies) received a minute apart,
// varied enough for the filters, and returns them oldest first.
func putMetas(t *testing.T, s *objstore.Store, n int) []*lazaret.Metadata {
	t.Helper()
	var ms []*lazaret.Metadata
	for i := range n {
		m := testMeta(testID(i), t0.Add(time.Duration(i)*time.Minute), int64(i))
		if i%3 == 0 {
			m.Sender = fmt.Sprintf("user%d@Spam.example", i)
		}
		m.Verdict.Kind = lazaret.VerdictKind(i % 5)
		m.Verdict.Score = float64(i % 10)
		m.State = lazaret.State(i % 4 % 3) // q r d q ...
		m.Node = i % 2
		if err := s.PutMeta(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	return ms
}

// want returns the ids of ms matching q, newest first.
func want(ms []*lazaret.Metadata, q lazaret.ListQuery) []lazaret.ID {
	var ids []lazaret.ID
	for i := len(ms) - 1; i >= 0; i-- {
		if q.Match(ms[i]) {
			ids = append(ids, ms[i].ID)
		}
	}
	return ids
}

// listAll pages through List and returns every id, checking page sizes.
func listAll(t *testing.T, s *objstore.Store, q lazaret.ListQuery) ([]lazaret.ID, int) {
	t.Helper()
	var ids []lazaret.ID
	pages := 0
	for {
		p, err := s.List(context.Background(), q)
		if err != nil {
			t.Fatalf("List(%+v): %v", q, err)
		}
		pages++
		if p.Source != "local" {
			t.Fatalf("Source = %q", p.Source)
		}
		if q.Limit > 0 && len(p.Messages) > q.Limit {
			t.Fatalf("page of %d messages, limit %d", len(p.Messages), q.Limit)
		}
		if p.NextCursor != "" && len(p.Messages) != q.Limit {
			t.Fatalf("page of %d messages with a cursor, limit %d", len(p.Messages), q.Limit)
		}
		for _, m := range p.Messages {
			ids = append(ids, m.ID)
		}
		if p.NextCursor == "" {
			return ids, pages
		}
		q.Cursor = p.NextCursor
	}
}

func sameIDs(a, b []lazaret.ID) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestList(t *testing.T) {
	s, _, _ := newStore(t)
	ms := putMetas(t, s, 60)
	two, five, one := 2.0, 5.0, 1
	for _, tc := range []struct {
		name string
		q    lazaret.ListQuery
	}{
		{"all", lazaret.ListQuery{}},
		{"all states", lazaret.ListQuery{States: []lazaret.State{lazaret.StateQuarantined, lazaret.StateReleased, lazaret.StateDeleted}}},
		{"deleted", lazaret.ListQuery{States: []lazaret.State{lazaret.StateDeleted}}},
		{"sender domain", lazaret.ListQuery{Sender: "@spam.EXAMPLE"}},
		{"sender exact", lazaret.ListQuery{Sender: "USER9@spam.example"}},
		{"domain", lazaret.ListQuery{Domain: "example.com"}},
		{"recipient", lazaret.ListQuery{Recipient: "bob@example.com", Verdicts: []lazaret.VerdictKind{lazaret.VerdictVirus}}},
		{"score", lazaret.ListQuery{MinScore: &two, MaxScore: &five}},
		{"node", lazaret.ListQuery{Node: &one}},
		{"subject", lazaret.ListQuery{Subject: "HELLO 00001"}},
		{"since until", lazaret.ListQuery{Since: t0.Add(10 * time.Minute), Until: t0.Add(40 * time.Minute)}},
		{"since only", lazaret.ListQuery{Since: t0.Add(50 * time.Minute)}},
		{"until only", lazaret.ListQuery{Until: t0.Add(7*time.Minute + time.Second)}},
		{"empty range", lazaret.ListQuery{Since: t0.Add(time.Hour * 5)}},
	} {
		for _, limit := range []int{0, 1, 4, 7} {
			t.Run(fmt.Sprintf("%s/limit%d", tc.name, limit), func(t *testing.T) {
				q := tc.q
				q.Limit = limit
				exp := want(ms, q)
				got, pages := listAll(t, s, q)
				if !sameIDs(got, exp) {
					t.Fatalf("got %v\nwant %v", got, exp)
				}
				pageSize := max(limit, 1)
				if limit == 0 {
					pageSize = 100
				}
				if wantPages := max(1, (len(exp)+pageSize-1)/pageSize); pages != wantPages {
					t.Fatalf("%d pages, want %d", pages, wantPages)
				}
			})
		}
	}
}

func TestListSameTimeAndCursor(t *testing.T) {
	s, _, _ := newStore(t)
	var ms []*lazaret.Metadata
	for i := range 10 { // all received in the same nanosecond: ordered by id
		m := testMeta(testID(i), t0, 1)
		if err := s.PutMeta(context.Background(), m); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	got, pages := listAll(t, s, lazaret.ListQuery{Limit: 3})
	if !sameIDs(got, want(ms, lazaret.ListQuery{})) || pages != 4 {
		t.Fatalf("got %v in %d pages", got, pages)
	}
	for _, c := range []string{"!!", "AA", "AQ"} {
		if _, err := s.List(context.Background(), lazaret.ListQuery{Cursor: c}); !errors.Is(err, lazaret.ErrInvalidArgument) {
			t.Fatalf("cursor %q: %v", c, err)
		}
	}
	if _, err := s.List(context.Background(), lazaret.ListQuery{Limit: -1}); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Fatalf("negative limit: %v", err)
	}
	// A limit above the cap is capped.
	p, err := s.List(context.Background(), lazaret.ListQuery{Limit: 5000})
	if err != nil || len(p.Messages) != 10 || p.NextCursor != "" {
		t.Fatalf("List = %v, %v", p, err)
	}
}

func TestPutMetaMovesTimeIndex(t *testing.T) {
	s, _, _ := newStore(t)
	a := testMeta(testID(1), t0, 10)
	b := testMeta(testID(2), t0.Add(time.Hour), 20)
	for _, m := range []*lazaret.Metadata{a, b} {
		if err := s.PutMeta(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	// Move a after b, then change its state twice.
	a2 := a.Clone()
	a2.Received = t0.Add(2 * time.Hour)
	a2.State = lazaret.StateReleased
	if err := s.PutMeta(context.Background(), a2); err != nil {
		t.Fatal(err)
	}
	if n := s.KeyCount(objstore.NSTime); n != 2 {
		t.Fatalf("%d time index keys, want 2", n)
	}
	got, _ := listAll(t, s, lazaret.ListQuery{})
	if !sameIDs(got, []lazaret.ID{a.ID, b.ID}) {
		t.Fatalf("order after move: %v", got)
	}
	if got, _ := listAll(t, s, lazaret.ListQuery{Until: t0.Add(time.Hour + 1)}); !sameIDs(got, []lazaret.ID{b.ID}) {
		t.Fatalf("old time still listed: %v", got)
	}
	a3 := a2.Clone()
	a3.State = lazaret.StateDeleted
	if err := s.PutMeta(context.Background(), a3); err != nil {
		t.Fatal(err)
	}
	if st := stats(t, s); st.Messages != 1 || st.BodyBytes != 20 {
		t.Fatalf("Stats = %+v, want 1 live message of 20 bytes", st)
	}
	if got, _ := listAll(t, s, lazaret.ListQuery{}); !sameIDs(got, []lazaret.ID{b.ID}) {
		t.Fatalf("deleted message listed: %v", got)
	}
	if m, err := s.Meta(a.ID); err != nil || m.State != lazaret.StateDeleted || !m.Received.Equal(a2.Received) {
		t.Fatalf("Meta = %+v, %v", m, err)
	}
}

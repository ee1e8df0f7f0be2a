package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// Cursors are interchangeable with the local index's, so paging can move
// between the two sources.
func TestCursorMatchesLocal(t *testing.T) {
	cfg := objstore.DefaultConfig(t.TempDir())
	cfg.SyncWrites = false
	s, err := objstore.Open(cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	recv := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, id := range []lazaret.ID{"1aBcDe-000001-01", "1aBcDe-000002-01"} {
		if err := s.PutMeta(ctx, &lazaret.Metadata{ID: id, Received: recv}); err != nil {
			t.Fatal(err)
		}
	}
	page, err := s.List(ctx, lazaret.ListQuery{Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	last := page.Messages[0]
	if got := EncodeCursor(last.Received, last.ID); got != page.NextCursor {
		t.Fatalf("EncodeCursor = %q, local index says %q", got, page.NextCursor)
	}
	tm, id, err := DecodeCursor(page.NextCursor)
	if err != nil || !tm.Equal(recv) || id != last.ID {
		t.Fatalf("DecodeCursor = %v %q %v", tm, id, err)
	}
	for _, bad := range []string{"", "!!", EncodeCursor(recv, "")[:3], "AgAAAAAAAAAAYQ"} {
		if _, _, err := DecodeCursor(bad); err == nil {
			t.Errorf("DecodeCursor(%q) accepted", bad)
		}
	}
}

func TestSearchSQLEscapesLike(t *testing.T) {
	sql, args, err := searchSQL(lazaret.ListQuery{Subject: `50%_Off x\Y`, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(sql, "LIKE") != 2 {
		t.Fatalf("want one LIKE per word: %s", sql)
	}
	want := []any{`%50\%\_off%`, `%x\\y%`}
	if args[1] != want[0] || args[2] != want[1] {
		t.Fatalf("LIKE args %q %q, want %q", args[1], args[2], want)
	}
}

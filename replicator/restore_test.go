package replicator_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// TestRestore: a restore recreates a message with its id, metadata and
// history; a body that is not the record's, or a record that cannot be
// restored, stores nothing; a restore of the same body replaces the
// metadata; another body under the id is a conflict.
func TestRestore(t *testing.T) {
	f := newFx(t, nil)
	ctx := fxCtx(t)
	body := fxMail(5000, 1)
	id := lazaret.ID("1xVCn8-000000-07")
	rec := &lazaret.Metadata{
		ID: id, Node: 7, Received: fxT0.Add(-time.Hour), Sender: "s@example.org",
		Recipients: []string{"a@example.com", "b@example.com"}, Subject: "restored",
		Size: int64(len(body)), SHA256: sha256.Sum256(body),
		Verdict: lazaret.Verdict{Kind: lazaret.VerdictVirus, Score: 5, Scanner: "clamav"},
		State:   lazaret.StateReleased, LearnedAs: lazaret.LearnHam,
		History: []lazaret.Event{
			{Time: fxT0.Add(-time.Hour), Actor: "smtp", Action: "quarantine", Node: 7},
			{Time: fxT0.Add(-30 * time.Minute), Actor: "cli:bob", Action: "learn", Detail: "ham", Node: 2},
			{Time: fxT0.Add(-20 * time.Minute), Actor: "cli:bob", Action: "release", Detail: "a@example.com", Node: 3},
		},
	}
	bad := []struct {
		name string
		mod  func(*lazaret.Metadata)
		body []byte
	}{
		{"other body", nil, append(append([]byte(nil), body...), 'x')},
		{"deleted state", func(m *lazaret.Metadata) { m.State = lazaret.StateDeleted }, body},
		{"bad id", func(m *lazaret.Metadata) { m.ID = "nope" }, body},
		{"no received time", func(m *lazaret.Metadata) { m.Received = time.Time{} }, body},
		{"event without action", func(m *lazaret.Metadata) { m.History = []lazaret.Event{{Time: fxT0}} }, body},
	}
	for _, c := range bad {
		r := *rec
		if c.mod != nil {
			c.mod(&r)
		}
		_, err := f.node.Put(ctx, lazaret.PutRequest{Restore: &r}, bytes.NewReader(c.body))
		if !errors.Is(err, lazaret.ErrInvalidArgument) {
			t.Errorf("%s: %v, want ErrInvalidArgument", c.name, err)
		}
	}
	if ids := f.list(lazaret.ListQuery{}); len(ids) != 0 {
		t.Fatalf("refused restores stored %v", ids)
	}

	m, err := f.node.Put(ctx, lazaret.PutRequest{Restore: rec, Sender: "ignored@example.org"}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, err := f.node.Stat(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != id || got.Node != 7 || !got.Received.Equal(rec.Received) || got.Sender != rec.Sender || got.State != lazaret.StateReleased ||
		got.LearnedAs != lazaret.LearnHam || got.Verdict != rec.Verdict || len(got.History) != 3 || got.MD5 != md5.Sum(body) || m.MD5 != got.MD5 {
		t.Fatalf("restored %+v", got)
	}
	if b, err := f.read(id); err != nil || !bytes.Equal(b, body) {
		t.Fatalf("restored body: %v", err)
	}

	// The same body again with other metadata replaces the record.
	r2 := *rec
	r2.Subject, r2.History = "corrected", rec.History[:1]
	if _, err := f.node.Put(ctx, lazaret.PutRequest{Restore: &r2}, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.node.Stat(ctx, id); got.Subject != "corrected" || len(got.History) != 1 || !got.Version.IsZero() && got.Version.Compare(m.Version) <= 0 {
		t.Fatalf("second restore: %+v", got)
	}
	// Another body under the id is a conflict.
	other := fxMail(5000, 2)
	r3 := *rec
	r3.SHA256, r3.Size = sha256.Sum256(other), int64(len(other))
	if _, err := f.node.Put(ctx, lazaret.PutRequest{Restore: &r3}, bytes.NewReader(other)); !errors.Is(err, lazaret.ErrConflict) {
		t.Fatalf("restore of another body: %v, want ErrConflict", err)
	}
}

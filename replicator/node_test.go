package replicator_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
)

// fxT0 is the manual clock's starting time in these tests.
var fxT0 = time.Date(2026, 3, 1, 9, 0, 0, 0, time.UTC)

// fx is a Node over a real objstore in a temporary directory.
type fx struct {
	t     *testing.T
	clock *lazaret.ManualClock
	store *objstore.Store
	node  *replicator.Node
	cfg   replicator.Config
}

// newFx opens a store and a Node with the config changed by mod; both are
// closed, node first, when the test ends.
func newFx(t *testing.T, mod func(*replicator.Config)) *fx {
	t.Helper()
	scfg := objstore.DefaultConfig(t.TempDir())
	scfg.ChunkSize = 4 << 10
	scfg.MemTableSize = 4 << 20
	scfg.BlockCacheSize = 4 << 20
	scfg.IndexCacheSize = 2 << 20
	scfg.ValueLogFileSize = 8 << 20
	clock := lazaret.NewManualClock(fxT0)
	log := slog.New(slog.DiscardHandler)
	store, err := objstore.Open(scfg, log, clock)
	if err != nil {
		t.Fatalf("objstore.Open: %v", err)
	}
	cfg := replicator.DefaultConfig()
	if mod != nil {
		mod(&cfg)
	}
	node, err := replicator.New(cfg, store, log, clock, nil)
	if err != nil {
		store.Close()
		t.Fatalf("replicator.New: %v", err)
	}
	t.Cleanup(func() {
		if err := node.Close(); err != nil {
			t.Errorf("Node.Close: %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	return &fx{t: t, clock: clock, store: store, node: node, cfg: cfg}
}

func fxCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// fxMail returns a message of at least size bytes with 8-bit, NUL and CR
// bytes in its body.
func fxMail(size int, seed uint64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.org\r\nTo: b@example.com\r\nSubject: msg %d\r\n\r\n", seed)
	r := rand.New(rand.NewPCG(seed, 3))
	for b.Len() < size {
		b.WriteByte(byte(r.Uint32()))
	}
	return b.Bytes()
}

func (f *fx) put(body []byte, rcpts ...string) *lazaret.Metadata {
	f.t.Helper()
	m, err := f.node.Put(fxCtx(f.t), lazaret.PutRequest{Sender: "a@example.org", Recipients: rcpts, Actor: "test"}, bytes.NewReader(body))
	if err != nil {
		f.t.Fatalf("Put: %v", err)
	}
	return m
}

func (f *fx) read(id lazaret.ID) ([]byte, error) {
	_, rc, err := f.node.Open(fxCtx(f.t), id)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	return io.ReadAll(rc)
}

func (f *fx) list(q lazaret.ListQuery) []lazaret.ID {
	f.t.Helper()
	page, err := f.node.List(fxCtx(f.t), q)
	if err != nil {
		f.t.Fatalf("List: %v", err)
	}
	var ids []lazaret.ID
	for _, m := range page.Messages {
		ids = append(ids, m.ID)
	}
	return ids
}

func (f *fx) stats() objstore.Stats {
	f.t.Helper()
	st, err := f.store.Stats()
	if err != nil {
		f.t.Fatal(err)
	}
	return st
}

func lastEvent(m *lazaret.Metadata) lazaret.Event {
	if len(m.History) == 0 {
		return lazaret.Event{}
	}
	return m.History[len(m.History)-1]
}

func TestPutParsesHeadersAndRecordsHistory(t *testing.T) {
	f := newFx(t, nil)
	body := []byte("From: =?ISO-8859-1?Q?J=F6rg?= <j@example.de>\r\nTo: Bob <b@example.com>\r\n" +
		"Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\nDate: Sun, 01 Mar 2026 08:59:00 +0100\r\nMessage-ID: <abc@example.de>\r\n\r\nhi\r\n")
	m, err := f.node.Put(fxCtx(t), lazaret.PutRequest{Sender: "<j@example.de>", Recipients: []string{"<b@example.com>"},
		Verdict: lazaret.Verdict{Kind: lazaret.VerdictHighSpam, Score: 15}, Actor: "mailscanner"}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.From != "Jörg <j@example.de>" || m.Subject != "Grüße" || m.MessageID != "<abc@example.de>" ||
		!m.Date.Equal(time.Date(2026, 3, 1, 7, 59, 0, 0, time.UTC)) || m.Sender != "j@example.de" ||
		strings.Join(m.Recipients, ",") != "b@example.com" || !m.Received.Equal(fxT0) || m.Node != 1 ||
		m.Size != int64(len(body)) || m.SHA256 != sha256.Sum256(body) || m.State != lazaret.StateQuarantined {
		t.Errorf("Put = %+v", m)
	}
	if e := lastEvent(m); len(m.History) != 1 || e.Action != "quarantine" || e.Actor != "mailscanner" || !e.Time.Equal(fxT0) {
		t.Errorf("history = %+v", m.History)
	}
	got, err := f.node.Stat(fxCtx(t), m.ID)
	if err != nil || got.Subject != m.Subject || got.Version != m.Version {
		t.Errorf("Stat = %+v, %v", got, err)
	}
}

func TestDelete(t *testing.T) {
	f := newFx(t, nil)
	ctx := fxCtx(t)
	keep := f.put(fxMail(10<<10, 1), "b@example.com")
	gone := f.put(fxMail(50<<10, 2), "b@example.com")
	before := f.stats()

	m, err := f.node.Delete(ctx, gone.ID, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if e := lastEvent(m); m.State != lazaret.StateDeleted || e.Action != "delete" || e.Actor != "alice" || m.Version.Compare(gone.Version) <= 0 {
		t.Errorf("Delete = state %v, last event %+v, version %v (was %v)", m.State, e, m.Version, gone.Version)
	}
	if _, err := f.node.Stat(ctx, gone.ID); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if _, err := f.read(gone.ID); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("Open after Delete: %v, want ErrNotFound", err)
	}
	if _, err := f.node.Delete(ctx, gone.ID, "alice"); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("second Delete: %v, want ErrNotFound", err)
	}
	if _, err := f.node.Learn(ctx, gone.ID, lazaret.LearnSpam, "alice"); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("Learn after Delete: %v, want ErrNotFound", err)
	}
	if ids := f.list(lazaret.ListQuery{}); len(ids) != 1 || ids[0] != keep.ID {
		t.Errorf("List = %v, want only %s", ids, keep.ID)
	}
	if ids := f.list(lazaret.ListQuery{States: []lazaret.State{lazaret.StateDeleted}}); len(ids) != 1 || ids[0] != gone.ID {
		t.Errorf("List deleted = %v, want the tombstone %s", ids, gone.ID)
	}
	if got, err := f.read(keep.ID); err != nil || !bytes.Equal(got, fxMail(10<<10, 1)) {
		t.Errorf("the other message after Delete: %d bytes, %v", len(got), err)
	}
	// The body is gone from the store; the tombstone's metadata stays.
	after := f.stats()
	if after.Messages != before.Messages-1 || after.Shards != before.Shards-1 || after.ShardBytes != before.ShardBytes-gone.Size {
		t.Errorf("Stats before Delete %+v, after %+v; want one message and shard of %d bytes fewer", before, after, gone.Size)
	}
}

func TestRetention(t *testing.T) {
	const retention = 48 * time.Hour
	f := newFx(t, func(c *replicator.Config) {
		c.Retention = retention
		c.RetentionInterval = time.Hour // the ticker uses real time: it never fires in this test
	})
	ctx := fxCtx(t)
	old := f.put(fxMail(200<<10, 1), "b@example.com")
	f.clock.Advance(24 * time.Hour)
	young := f.put(fxMail(30<<10, 2), "b@example.com")
	full := f.stats()

	// Just inside retention, both are there.
	f.clock.Set(old.Received.Add(retention - time.Second))
	if ids := f.list(lazaret.ListQuery{}); len(ids) != 2 {
		t.Fatalf("List inside retention = %v, want both", ids)
	}
	// Past it, the old one disappears at once, before any purge...
	f.clock.Set(old.Received.Add(retention + time.Second))
	if ids := f.list(lazaret.ListQuery{}); len(ids) != 1 || ids[0] != young.ID {
		t.Errorf("List past retention = %v, want only %s", ids, young.ID)
	}
	all := []lazaret.State{lazaret.StateQuarantined, lazaret.StateReleased, lazaret.StateDeleted}
	if ids := f.list(lazaret.ListQuery{States: all, Since: fxT0.Add(-time.Hour)}); len(ids) != 1 {
		t.Errorf("List of every state since before the old message = %v, want only %s", ids, young.ID)
	}
	if _, err := f.node.Stat(ctx, old.ID); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("Stat of an expired message: %v, want ErrNotFound", err)
	}
	if _, err := f.read(old.ID); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("Open of an expired message: %v, want ErrNotFound", err)
	}
	if _, err := f.node.Release(ctx, old.ID, []string{"c@example.com"}, "test"); err == nil {
		t.Errorf("Release of an expired message succeeded")
	}
	if got, err := f.read(young.ID); err != nil || !bytes.Equal(got, fxMail(30<<10, 2)) {
		t.Errorf("Open of the young message: %d bytes, %v", len(got), err)
	}
	// ...and its bytes are still on disk until the purge runs.
	if st := f.stats(); st.Messages != full.Messages || st.ShardBytes != full.ShardBytes {
		t.Errorf("Stats before the purge = %+v, want unchanged %+v", st, full)
	}

	n, err := f.store.Expire(ctx, f.clock.Now().Add(-retention))
	if err != nil || n != 1 {
		t.Fatalf("Expire = %d, %v; want 1 message", n, err)
	}
	st := f.stats()
	if st.Messages != 1 || st.BodyBytes != young.Size || st.Shards != 1 || st.ShardBytes != young.Size {
		t.Errorf("Stats after the purge = %+v, want 1 message and shard of %d bytes", st, young.Size)
	}
	status, err := f.node.Status(ctx)
	if err != nil || status.Messages != 1 || status.Bytes != young.Size || status.Retention != retention {
		t.Errorf("Status after the purge = %+v, %v", status, err)
	}
	// The young message expires in its turn.
	f.clock.Set(young.Received.Add(retention + time.Second))
	if ids := f.list(lazaret.ListQuery{}); len(ids) != 0 {
		t.Errorf("List after both expired = %v", ids)
	}
}

// TestBackgroundRetention checks that the node's own purge, not just a call
// to Expire, removes expired messages.
func TestBackgroundRetention(t *testing.T) {
	f := newFx(t, func(c *replicator.Config) {
		c.Retention = time.Hour
		c.RetentionInterval = 20 * time.Millisecond
	})
	m := f.put(fxMail(20<<10, 1), "b@example.com")
	f.clock.Set(m.Received.Add(2 * time.Hour))
	deadline := time.Now().Add(10 * time.Second)
	for f.stats().Messages != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("background retention did not purge the expired message within 10s: %+v", f.stats())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if st := f.stats(); st.Shards != 0 || st.ShardBytes != 0 {
		t.Errorf("after the purge Stats = %+v, want no shards", st)
	}
}

func TestPutRefusals(t *testing.T) {
	f := newFx(t, func(c *replicator.Config) { c.MaxMessageSize = 10 << 10 })
	ctx := fxCtx(t)
	for name, tc := range map[string]struct {
		req  lazaret.PutRequest
		body []byte
		want error
	}{
		"empty":          {lazaret.PutRequest{}, nil, lazaret.ErrInvalidArgument},
		"too large":      {lazaret.PutRequest{}, fxMail(10<<10+1, 1), lazaret.ErrTooLarge},
		"bad id":         {lazaret.PutRequest{ID: "x/y"}, []byte("hi"), lazaret.ErrInvalidID},
		"bad sender":     {lazaret.PutRequest{Sender: "a\r\nb@example.org"}, []byte("hi"), lazaret.ErrInvalidArgument},
		"bad recipient":  {lazaret.PutRequest{Recipients: []string{"<a>b@example.org"}}, []byte("hi"), lazaret.ErrInvalidArgument},
		"empty rcpt":     {lazaret.PutRequest{Recipients: []string{"<>"}}, []byte("hi"), lazaret.ErrInvalidArgument},
		"long recipient": {lazaret.PutRequest{Recipients: []string{strings.Repeat("a", 320) + "@x"}}, []byte("hi"), lazaret.ErrInvalidArgument},
		// Values JSON cannot hold were refused as temporary errors once
		// (issue 16): a scanner would retry them forever.
		"NaN score":     {lazaret.PutRequest{Verdict: lazaret.Verdict{Score: math.NaN()}}, []byte("hi"), lazaret.ErrInvalidArgument},
		"Inf score":     {lazaret.PutRequest{Verdict: lazaret.Verdict{Score: math.Inf(-1)}}, []byte("hi"), lazaret.ErrInvalidArgument},
		"bad client IP": {lazaret.PutRequest{ClientIP: "999.1.2.3"}, []byte("hi"), lazaret.ErrInvalidArgument},
		"bad verdict":   {lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: 99}}, []byte("hi"), lazaret.ErrInvalidArgument},
		"year 10000":    {lazaret.PutRequest{Received: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, []byte("hi"), lazaret.ErrInvalidArgument},
	} {
		_, err := f.node.Put(ctx, tc.req, bytes.NewReader(tc.body))
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", name, err, tc.want)
		}
		var le *lazaret.Error
		if !errors.As(err, &le) || le.Op != "put" {
			t.Errorf("%s: %v is not a *lazaret.Error of op put", name, err)
		}
	}
	if st := f.stats(); st.Messages != 0 || st.Shards != 0 {
		t.Errorf("after refused puts Stats = %+v", st)
	}
	// A cancelled context stops the put.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.node.Put(cctx, lazaret.PutRequest{}, bytes.NewReader([]byte("hi"))); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a cancelled context: %v", err)
	}
}

// A change made here wins the merge against the record it was made from,
// even when that record carries a version from a clock far ahead of this
// node's that this node's clock never observed (stored before a restart,
// or written straight into the store as here). The soak saw a repair lose
// this way after one node's clock was stepped ahead.
func TestUpdateNewerThanRecordFromFastClock(t *testing.T) {
	f := newFx(t, nil)
	ctx := fxCtx(t)
	m := f.put(fxMail(2000, 1), "b@example.com")
	ahead := m.Clone()
	ahead.Version = lazaret.Version{Wall: fxT0.Add(5 * time.Minute).UnixNano(), Node: 9}
	ahead.Placement.Version = ahead.Version
	if err := f.store.PutMeta(ctx, ahead); err != nil {
		t.Fatal(err)
	}
	got, err := f.node.Learn(ctx, m.ID, lazaret.LearnSpam, "test")
	if err != nil {
		t.Fatal(err)
	}
	if got.Version.Compare(ahead.Version) <= 0 {
		t.Fatalf("learn gave version %v, not newer than the stored %v", got.Version, ahead.Version)
	}
	if w := lazaret.Merge(ahead, got); w.LearnedAs != lazaret.LearnSpam {
		t.Fatalf("the learn lost the merge to the record it changed: %+v", w.LearnedAs)
	}
}

package rpc_test

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
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/rpc"
	"github.com/lazaret/lazaret/replicator"
)

// testTimeout bounds every test's requests.
const testTimeout = 30 * time.Second

// storeConfig is a small store in dir with 4 KiB chunks, so that test bodies
// span many chunks.
func storeConfig(dir string) objstore.Config {
	cfg := objstore.DefaultConfig(dir)
	cfg.ChunkSize = 4 << 10
	cfg.MemTableSize = 4 << 20
	cfg.BlockCacheSize = 4 << 20
	cfg.IndexCacheSize = 2 << 20
	cfg.ValueLogFileSize = 8 << 20
	return cfg
}

// env is a node served over a unix socket: objstore, replicator.Node and
// rpc.Server, all real.
type env struct {
	t      *testing.T
	dir    string // store directory
	socket string
	rcfg   replicator.Config
	store  *objstore.Store
	node   *replicator.Node
	srv    *rpc.Server
	served chan error
	client *rpc.Client
}

// newEnv starts a node with the replicator config changed by mod.
func newEnv(t *testing.T, mod func(*replicator.Config)) *env {
	t.Helper()
	sockDir, err := os.MkdirTemp("", "lz") // short: unix socket paths are limited to 108 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	rcfg := replicator.DefaultConfig()
	if mod != nil {
		mod(&rcfg)
	}
	e := &env{t: t, dir: t.TempDir(), socket: filepath.Join(sockDir, "s.sock"), rcfg: rcfg}
	e.start()
	t.Cleanup(e.stop)
	return e
}

func (e *env) start() {
	t := e.t
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	store, err := objstore.Open(storeConfig(e.dir), log, nil)
	if err != nil {
		t.Fatalf("objstore.Open: %v", err)
	}
	node, err := replicator.New(e.rcfg, store, log, lazaret.SystemClock{}, nil)
	if err != nil {
		store.Close()
		t.Fatalf("replicator.New: %v", err)
	}
	l, err := rpc.ListenUnix(e.socket, 0o660, "")
	if err != nil {
		node.Close()
		store.Close()
		t.Fatalf("ListenUnix: %v", err)
	}
	e.store, e.node, e.srv, e.served = store, node, rpc.NewServer(node, log), make(chan error, 1)
	go func() { e.served <- e.srv.Serve(l) }()
	if e.client, err = rpc.DialUnix(e.socket); err != nil {
		t.Fatalf("DialUnix: %v", err)
	}
}

// stop shuts everything down in order; it may be called more than once.
func (e *env) stop() {
	if e.srv == nil {
		return
	}
	e.client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e.srv.Stop(ctx)
	if err := <-e.served; err != nil {
		e.t.Errorf("Serve: %v", err)
	}
	e.node.Close()
	if err := e.store.Close(); err != nil {
		e.t.Errorf("store.Close: %v", err)
	}
	e.srv = nil
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// raw returns a generated-code client on the env's socket, for sending
// streams the rpc.Client would never send.
func (e *env) raw() pb.QuarantineClient {
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return pb.NewQuarantineClient(conn)
}

// mail returns a message of at least size bytes: headers, then random bytes.
func mail(size int, seed uint64) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.org\r\nTo: b@example.com\r\nSubject: test %d\r\n\r\n", seed)
	r := rand.New(rand.NewPCG(seed, 7))
	for b.Len() < size {
		b.WriteByte(byte(r.Uint32()))
	}
	return b.Bytes()
}

// assertEmpty checks that nothing is visible through the API and nothing
// committed in the store.
func (e *env) assertEmpty(ctx context.Context) {
	e.t.Helper()
	page, err := e.client.List(ctx, lazaret.ListQuery{States: []lazaret.State{lazaret.StateQuarantined, lazaret.StateReleased, lazaret.StateDeleted}})
	if err != nil {
		e.t.Fatalf("List: %v", err)
	}
	if len(page.Messages) != 0 {
		e.t.Errorf("List shows %d messages, want none: %v", len(page.Messages), page.Messages[0])
	}
	st, err := e.store.Stats()
	if err != nil {
		e.t.Fatal(err)
	}
	if st.Messages != 0 || st.BodyBytes != 0 || st.Shards != 0 || st.ShardBytes != 0 {
		e.t.Errorf("store Stats = %+v, want no messages or shards", st)
	}
	ns, err := e.client.Status(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	if ns.Messages != 0 || ns.Bytes != 0 {
		e.t.Errorf("Status = %+v, want no messages", ns)
	}
}

// rawKeys stops the env and counts the keys of each namespace in its badger
// database, opened directly.
func (e *env) rawKeys() map[byte]int {
	e.t.Helper()
	e.stop()
	n := map[byte]int{}
	withBadger(e.t, e.dir, func(db *badger.DB) {
		_ = db.View(func(txn *badger.Txn) error {
			it := txn.NewIterator(badger.IteratorOptions{})
			defer it.Close()
			for it.Rewind(); it.Valid(); it.Next() {
				n[it.Item().Key()[0]]++
			}
			return nil
		})
	})
	return n
}

// withBadger opens the (closed) store's badger database in dir directly.
func withBadger(t *testing.T, dir string, fn func(*badger.DB)) {
	t.Helper()
	cfg := storeConfig(dir)
	db, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).
		WithMemTableSize(cfg.MemTableSize).WithValueLogFileSize(cfg.ValueLogFileSize).
		WithValueThreshold(cfg.ValueThreshold).WithBlockCacheSize(cfg.BlockCacheSize).
		WithIndexCacheSize(cfg.IndexCacheSize).WithSyncWrites(true))
	if err != nil {
		t.Fatalf("badger.Open: %v", err)
	}
	defer func() {
		if err := db.Close(); err != nil {
			t.Errorf("badger Close: %v", err)
		}
	}()
	fn(db)
}

// wantCode checks that err is a *rpc.RemoteError with code c that errors.Is
// sentinel (when not nil).
func wantCode(t *testing.T, what string, err error, c codes.Code, sentinel error) {
	t.Helper()
	var re *rpc.RemoteError
	switch {
	case err == nil:
		t.Errorf("%s: no error, want %v", what, c)
	case !errors.As(err, &re):
		t.Errorf("%s: %T %v, want a *rpc.RemoteError", what, err, err)
	case re.Code != c:
		t.Errorf("%s: code %v (%v), want %v", what, re.Code, err, c)
	case sentinel != nil && !errors.Is(err, sentinel):
		t.Errorf("%s: %v is not %v", what, err, sentinel)
	case strings.TrimSpace(re.Message) == "":
		t.Errorf("%s: empty error message", what)
	}
}

// liarReader claims (through Len) more bytes than it holds, as a client whose
// file shrank under it would.
type liarReader struct {
	r     io.Reader
	claim int
}

func (l *liarReader) Read(p []byte) (int, error) { return l.r.Read(p) }
func (l *liarReader) Len() int                   { return l.claim }

func TestPutGetRoundTrip(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	for _, size := range []int{1, 4 << 10, rpc.ChunkSize, rpc.ChunkSize + 1, 3*rpc.ChunkSize + 17} {
		body := mail(size, uint64(size))
		// Once with a known size, once through a reader without one.
		for _, r := range []io.Reader{bytes.NewReader(body), io.MultiReader(bytes.NewReader(body))} {
			m, err := e.client.Put(ctx, lazaret.PutRequest{Recipients: []string{"b@example.com"}}, r)
			if err != nil {
				t.Fatalf("Put %d bytes: %v", size, err)
			}
			if m.Size != int64(len(body)) || m.SHA256 != sha256.Sum256(body) {
				t.Errorf("Put %d bytes: size %d sha %x", len(body), m.Size, m.SHA256)
			}
			got := readAll(t, ctx, e.client, m.ID)
			if !bytes.Equal(got, body) {
				t.Errorf("Get %s: %d bytes, want the %d bytes put", m.ID, len(got), len(body))
			}
		}
	}
}

func readAll(t *testing.T, ctx context.Context, c *rpc.Client, id lazaret.ID) []byte {
	t.Helper()
	_, rc, err := c.Open(ctx, id)
	if err != nil {
		t.Fatalf("Open %s: %v", id, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %s: %v", id, err)
	}
	return b
}

func TestPutTruncatedStream(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	body := mail(100<<10, 1)

	// Through the client: the declared size is larger than what is sent.
	_, err := e.client.Put(ctx, lazaret.PutRequest{}, &liarReader{r: bytes.NewReader(body), claim: len(body) + 1})
	wantCode(t, "put of a short body", err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
	if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%d of %d bytes", len(body), len(body)+1)) {
		t.Errorf("short body error %q does not say how short", err)
	}

	// Raw: meta declares 3 chunks, 1 is sent, then the stream is closed.
	stream, err := e.raw().Put(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{ExpectedSize: 3000}}}); err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&pb.PutRequest{Part: &pb.PutRequest_Chunk{Chunk: make([]byte, 1000)}}); err != nil {
		t.Fatal(err)
	}
	_, err = stream.CloseAndRecv()
	if status.Code(err) != codes.InvalidArgument {
		t.Errorf("raw truncated put: %v, want InvalidArgument", err)
	}

	// Longer than declared is refused too.
	_, err = e.client.Put(ctx, lazaret.PutRequest{}, &liarReader{r: bytes.NewReader(body), claim: len(body) - 1})
	wantCode(t, "put of a long body", err, codes.InvalidArgument, lazaret.ErrInvalidArgument)

	e.assertEmpty(ctx)
	if keys := e.rawKeys(); keys['m'] != 0 || keys['t'] != 0 || keys['h'] != 0 || keys['c'] != 0 || keys['p'] != 0 {
		t.Errorf("after failed puts the database holds keys %v, want no message, header, chunk or pending keys", keys)
	}
}

// cancellingReader yields random bytes and cancels the upload's context after
// handing out after bytes, then keeps yielding.
type cancellingReader struct {
	n, after int
	cancel   context.CancelFunc
}

func (c *cancellingReader) Read(p []byte) (int, error) {
	if c.n >= c.after {
		c.cancel()
		time.Sleep(5 * time.Millisecond) // let the cancellation reach the stream
	}
	for i := range p {
		p[i] = byte(c.n + i)
	}
	c.n += len(p)
	return len(p), nil
}

func TestPutClientCancelsMidStream(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	putCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	_, err := e.client.Put(putCtx, lazaret.PutRequest{}, &cancellingReader{after: 3 * rpc.ChunkSize, cancel: cancel})
	if err == nil {
		t.Fatal("Put succeeded after its context was cancelled")
	}
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put: %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("cancelled Put took %v to return", d)
	}
	// The node notices the cancellation and aborts its write; give the
	// handler a moment, then nothing may be visible.
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, _ := e.store.Stats()
		if st.Shards == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.assertEmpty(ctx)
	if keys := e.rawKeys(); keys['c'] != 0 || keys['p'] != 0 || keys['m'] != 0 || keys['h'] != 0 {
		t.Errorf("after a cancelled put the database holds keys %v, want no chunk, pending, message or header keys", keys)
	}
}

func TestPutOversize(t *testing.T) {
	e := newEnv(t, func(c *replicator.Config) { c.MaxMessageSize = 64 << 10 })
	ctx := ctxT(t)
	fits := mail(64<<10, 1)[:64<<10]
	if _, err := e.client.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(fits)); err != nil {
		t.Fatalf("Put of exactly the limit: %v", err)
	}
	for _, size := range []int{64<<10 + 1, 2 << 20} {
		body := mail(size, 2)
		for name, r := range map[string]io.Reader{"known size": bytes.NewReader(body), "unknown size": io.MultiReader(bytes.NewReader(body))} {
			_, err := e.client.Put(ctx, lazaret.PutRequest{}, r)
			wantCode(t, fmt.Sprintf("Put %d bytes, %s", len(body), name), err, codes.ResourceExhausted, lazaret.ErrTooLarge)
			if err != nil && !strings.Contains(err.Error(), "65536") {
				t.Errorf("oversize error %q does not name the limit", err)
			}
		}
	}
	page, err := e.client.List(ctx, lazaret.ListQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Size != 64<<10 {
		t.Errorf("List after oversize puts = %d messages, want only the one that fits", len(page.Messages))
	}
}

func TestPutEmptyBody(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	_, err := e.client.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(nil))
	wantCode(t, "Put of an empty body", err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
	if err != nil && !strings.Contains(err.Error(), "empty body") {
		t.Errorf("empty body error %q does not say so", err)
	}
	e.assertEmpty(ctx)
}

func TestPutBadStreams(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	raw := e.raw()
	for _, tc := range []struct {
		name  string
		parts []*pb.PutRequest
		want  string
	}{
		{"no messages", nil, "first message must carry meta"},
		{"chunk first", []*pb.PutRequest{{Part: &pb.PutRequest_Chunk{Chunk: []byte("Subject: x\r\n\r\nhi")}}}, "first message must carry meta"},
		{"meta twice", []*pb.PutRequest{
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{}}},
			{Part: &pb.PutRequest_Chunk{Chunk: []byte("Subject: x\r\n\r\nhi")}},
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{}}},
		}, "meta sent twice"},
		{"bad id", []*pb.PutRequest{
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{Id: "../../etc"}}},
			{Part: &pb.PutRequest_Chunk{Chunk: []byte("hi")}},
		}, "invalid message id"},
		{"bad recipient", []*pb.PutRequest{
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{Recipients: []string{"a b@example.com"}}}},
			{Part: &pb.PutRequest_Chunk{Chunk: []byte("hi")}},
		}, "recipient"},
		{"NaN score", []*pb.PutRequest{
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{Verdict: &pb.Verdict{Score: math.NaN()}}}},
			{Part: &pb.PutRequest_Chunk{Chunk: []byte("hi")}},
		}, "NaN"},
		{"bad client IP", []*pb.PutRequest{
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{ClientIp: "999.1.2.3"}}},
			{Part: &pb.PutRequest_Chunk{Chunk: []byte("hi")}},
		}, "client IP"},
		{"year 20000", []*pb.PutRequest{
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{Received: &timestamppb.Timestamp{Seconds: 569_000_000_000}}}},
			{Part: &pb.PutRequest_Chunk{Chunk: []byte("hi")}},
		}, "received"},
		{"negative expected size", []*pb.PutRequest{
			{Part: &pb.PutRequest_Meta{Meta: &pb.PutMeta{ExpectedSize: -5}}},
			{Part: &pb.PutRequest_Chunk{Chunk: []byte("hi")}},
		}, "expected_size"},
	} {
		stream, err := raw.Put(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range tc.parts {
			if err := stream.Send(p); err != nil {
				break // the node ended the stream; CloseAndRecv has its reason
			}
		}
		_, err = stream.CloseAndRecv()
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), tc.want) {
			t.Errorf("%s: %v, want InvalidArgument mentioning %q", tc.name, err, tc.want)
		}
	}
	e.assertEmpty(ctx)
}

func TestInvalidIDs(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	for _, id := range []lazaret.ID{"", "nope", "1aBcDe-AbCdEf-0", "1aBcDe-AbCdEf-01\x00", "1aBcDe_AbCdEf_01"} {
		_, err := e.client.Stat(ctx, id)
		wantCode(t, fmt.Sprintf("Stat(%q)", id), err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
		_, _, err = e.client.Open(ctx, id)
		wantCode(t, fmt.Sprintf("Open(%q)", id), err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
		_, err = e.client.Delete(ctx, id, "test")
		wantCode(t, fmt.Sprintf("Delete(%q)", id), err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
		_, err = e.client.Learn(ctx, id, lazaret.LearnSpam, "test")
		wantCode(t, fmt.Sprintf("Learn(%q)", id), err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
		_, err = e.client.Release(ctx, id, nil, "test")
		wantCode(t, fmt.Sprintf("Release(%q)", id), err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
	}
	// A valid id that names nothing is NotFound, not InvalidArgument.
	_, err := e.client.Stat(ctx, "1aBcDe-AbCdEf-01")
	wantCode(t, "Stat of an unknown id", err, codes.NotFound, lazaret.ErrNotFound)
	_, _, err = e.client.Open(ctx, "1aBcDe-AbCdEf-01")
	wantCode(t, "Open of an unknown id", err, codes.NotFound, lazaret.ErrNotFound)
	_, err = e.client.Delete(ctx, "1aBcDe-AbCdEf-01", "test")
	wantCode(t, "Delete of an unknown id", err, codes.NotFound, lazaret.ErrNotFound)
	// Learn with a kind that is neither spam nor ham.
	m, err := e.client.Put(ctx, lazaret.PutRequest{}, strings.NewReader("Subject: x\r\n\r\nhi\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Learn(ctx, m.ID, lazaret.LearnNone, "test")
	wantCode(t, "Learn as none", err, codes.InvalidArgument, lazaret.ErrInvalidArgument)
}

func TestMalformedHeadersStoredIdentical(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	bodies := map[string][]byte{
		"8-bit subject":        []byte("From: J\xf6rg <j@example.de>\r\nSubject: Gr\xfc\xdfe \xff\xfe\r\nTo: x@example.com\r\n\r\nbody \x80\x81\r\n"),
		"no colon":             []byte("This is not a header\r\nSubject: after junk\r\n\r\nbody\r\n"),
		"bad encoded-word":     []byte("Subject: =?bogus?Q?=ZZ=?= and =?UTF-8?B?!!!?=\r\nDate: yesterday\r\nMessage-ID: <<<>\r\n\r\nbody\r\n"),
		"NUL and bare LF":      []byte("Subject: a\x00b\nFrom: \x00\n\nbody\x00\n"),
		"no body separator":    []byte("Subject: only headers\r\nX-Foo: bar"),
		"not mail at all":      {0, 1, 2, 3, 0xff, 0xfe, '\r', '\n', '\r', '\n'},
		"huge folded header":   append([]byte("Subject: "+strings.Repeat("word \r\n ", 20000)+"end\r\n\r\n"), mail(10<<10, 3)...),
		"header line over 1MB": []byte("X-Long: " + strings.Repeat("x", 1<<20+5) + "\r\nSubject: after\r\n\r\nbody\r\n"),
	}
	for name, body := range bodies {
		m, err := e.client.Put(ctx, lazaret.PutRequest{Recipients: []string{"x@example.com"}}, bytes.NewReader(body))
		if err != nil {
			t.Errorf("%s: Put: %v", name, err)
			continue
		}
		if got := readAll(t, ctx, e.client, m.ID); !bytes.Equal(got, body) {
			t.Errorf("%s: read back %d bytes, want the %d bytes put", name, len(got), len(body))
		}
		st, err := e.client.Stat(ctx, m.ID)
		if err != nil || st.Size != int64(len(body)) || st.SHA256 != sha256.Sum256(body) {
			t.Errorf("%s: Stat = %+v, %v", name, st, err)
		}
	}
}

func TestGetCorruptBody(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	body := mail(100<<10, 9)
	m, err := e.client.Put(ctx, lazaret.PutRequest{}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	small, err := e.client.Put(ctx, lazaret.PutRequest{}, strings.NewReader("Subject: tiny\r\n\r\nhello\r\n"))
	if err != nil {
		t.Fatal(err)
	}

	// Flip one bit in chunk 5 of the big body and chunk 0 of the small one,
	// in the database itself, with the node stopped.
	e.stop()
	withBadger(t, e.dir, func(db *badger.DB) {
		for id, chunk := range map[lazaret.ID]int{m.ID: 5, small.ID: 0} {
			if err := corruptChunk(db, id, chunk); err != nil {
				t.Fatalf("corrupting %s: %v", id, err)
			}
		}
	})
	e.start()

	_, rc, err := e.client.Open(ctx, m.ID)
	if err != nil {
		t.Fatalf("Open: %v (the metadata is intact; the error belongs to the read)", err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if !errors.Is(err, lazaret.ErrCorrupt) {
		t.Fatalf("reading a corrupt body: %d bytes, err %v; want an error wrapping ErrCorrupt", len(got), err)
	}
	if !strings.Contains(err.Error(), string(m.ID)) {
		t.Errorf("corruption error %q does not name the message", err)
	}
	if !bytes.HasPrefix(body, got) {
		t.Errorf("before failing the reader returned %d bytes that are not a prefix of the body", len(got))
	}
	if len(got) > 5*4<<10 {
		t.Errorf("the reader returned %d bytes, beyond the corrupt chunk at %d", len(got), 5*4<<10)
	}

	_, rc, err = e.client.Open(ctx, small.ID)
	if err == nil {
		got, err = io.ReadAll(rc)
		rc.Close()
		if len(got) != 0 {
			t.Errorf("reading a corrupt one-chunk body returned %q", got)
		}
	}
	if !errors.Is(err, lazaret.ErrCorrupt) {
		t.Errorf("reading a corrupt one-chunk body: %v, want ErrCorrupt", err)
	}
	// Metadata is still served.
	if _, err := e.client.Stat(ctx, m.ID); err != nil {
		t.Errorf("Stat of a message with a corrupt body: %v", err)
	}
}

// corruptChunk flips one bit in the data of chunk n of every generation of
// shard 0 of id, using the key layout documented in objstore/doc.go:
// 'c' 1 id 0x00 shard(2) gen(8) chunk(4) → CRC32C(4) data.
func corruptChunk(db *badger.DB, id lazaret.ID, n int) error {
	prefix := append(append([]byte{'c', 1}, id...), 0, 0, 0)
	return db.Update(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
		var keys [][]byte
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().KeyCopy(nil)
			if len(k) == len(prefix)+12 && int(k[len(k)-1])|int(k[len(k)-2])<<8 == n && k[len(k)-3] == 0 && k[len(k)-4] == 0 {
				keys = append(keys, k)
			}
		}
		it.Close()
		if len(keys) == 0 {
			return fmt.Errorf("no chunk %d", n)
		}
		for _, k := range keys {
			item, err := txn.Get(k)
			if err != nil {
				return err
			}
			v, err := item.ValueCopy(nil)
			if err != nil {
				return err
			}
			v[4+len(v[4:])/2] ^= 0x10
			if err := txn.Set(k, v); err != nil {
				return err
			}
		}
		return nil
	})
}

func TestHealth(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	conn, err := grpc.NewClient("unix://"+e.socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := healthpb.NewHealthClient(conn)
	for _, svc := range []string{"", pb.Quarantine_ServiceDesc.ServiceName} {
		resp, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("Check(%q) = %v, %v; want SERVING", svc, resp.GetStatus(), err)
		}
	}
	if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{Service: "no.such.Service"}); status.Code(err) != codes.NotFound {
		t.Errorf("Check of an unknown service: %v, want NotFound", err)
	}

	// A watcher sees NOT_SERVING as soon as Stop begins.
	watchCtx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	watch, err := h.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err := watch.Recv(); err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("Watch: %v, %v; want SERVING", resp.GetStatus(), err)
	}
	stopped := make(chan struct{})
	go func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		e.srv.Stop(stopCtx)
		close(stopped)
	}()
	resp, err := watch.Recv()
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Watch during Stop: %v, %v; want NOT_SERVING", resp.GetStatus(), err)
	}
	// The watch is an open stream that a graceful stop waits for; once the
	// watcher goes away Stop completes promptly.
	cancelWatch()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return within 10s of the last stream ending")
	}
	if _, err := h.Check(ctx, &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unavailable {
		t.Errorf("Check after Stop: %v, want Unavailable", err)
	}
	if err := <-e.served; err != nil {
		t.Errorf("Serve after Stop: %v", err)
	}
	e.served <- nil // for e.stop
}

func TestPutRetryIsIdempotent(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	id, err := e.client.AllocateID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lazaret.ParseID(string(id)); err != nil {
		t.Fatalf("AllocateID returned %q: %v", id, err)
	}
	body := mail(300<<10, 4)
	req := lazaret.PutRequest{ID: id, Sender: "a@example.org", Recipients: []string{"b@example.com"}}
	first, err := e.client.Put(ctx, req, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if first.ID != id {
		t.Fatalf("Put with id %s stored %s", id, first.ID)
	}
	again, err := e.client.Put(ctx, req, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("retried Put: %v", err)
	}
	if again.ID != first.ID || again.SHA256 != first.SHA256 || !again.Received.Equal(first.Received) ||
		again.Version != first.Version || len(again.History) != len(first.History) {
		t.Errorf("retried Put = %+v\nwant the stored %+v", again, first)
	}

	other := mail(300<<10, 5)
	_, err = e.client.Put(ctx, req, bytes.NewReader(other))
	wantCode(t, "Put of another body under a used id", err, codes.FailedPrecondition, lazaret.ErrConflict)

	if got := readAll(t, ctx, e.client, id); !bytes.Equal(got, body) {
		t.Errorf("after the conflicting put, Get returns %d bytes, want the original %d", len(got), len(body))
	}
	st, err := e.client.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 1 || st.Bytes != int64(len(body)) {
		t.Errorf("Status = %d messages, %d bytes; want 1, %d", st.Messages, st.Bytes, len(body))
	}
	// The id of a deleted message is not reused either.
	if _, err := e.client.Delete(ctx, id, "test"); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Put(ctx, req, bytes.NewReader(body))
	wantCode(t, "Put under the id of a deleted message", err, codes.FailedPrecondition, lazaret.ErrConflict)
}

func TestListenUnixRefusesLiveSocket(t *testing.T) {
	e := newEnv(t, nil)
	if l, err := rpc.ListenUnix(e.socket, 0o660, ""); err == nil {
		l.Close()
		t.Fatal("ListenUnix took over a socket a live server is serving")
	}
	// A stale socket file (no listener) is replaced.
	stale := filepath.Join(filepath.Dir(e.socket), "stale.sock")
	l, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	l.(*net.UnixListener).SetUnlinkOnClose(false)
	l.Close()
	l, err = rpc.ListenUnix(stale, 0o600, "")
	if err != nil {
		t.Fatalf("ListenUnix over a stale socket: %v", err)
	}
	defer l.Close()
	fi, err := os.Stat(stale)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if _, err := rpc.DialUnix(filepath.Join(filepath.Dir(e.socket), "missing.sock")); err == nil || !strings.Contains(err.Error(), "no such socket") {
		t.Errorf("DialUnix of a missing socket: %v, want 'no such socket'", err)
	}
}

// A List page is bounded by bytes as well as by count (issue 16: ls of a
// real quarantine failed with "received message larger than max"), and
// paging with the cursors returns every message once.
func TestListPagesBoundedByBytes(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	const n = 60
	report := strings.Repeat("r", 60<<10) // 3.6 MB of reports in all
	want := map[lazaret.ID]bool{}
	for i := range n {
		m, err := e.client.Put(ctx, lazaret.PutRequest{Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam, Report: report}},
			strings.NewReader(fmt.Sprintf("Subject: %d\r\n\r\nhi\r\n", i)))
		if err != nil {
			t.Fatal(err)
		}
		want[m.ID] = true
	}
	q := lazaret.ListQuery{Limit: 1000}
	pages := 0
	for {
		page, err := e.client.List(ctx, q)
		if err != nil {
			t.Fatalf("page %d: %v", pages, err)
		}
		pages++
		if len(page.Messages) == 0 {
			t.Fatalf("page %d is empty", pages)
		}
		for _, m := range page.Messages {
			if !want[m.ID] {
				t.Fatalf("page %d: %s unexpected or repeated", pages, m.ID)
			}
			delete(want, m.ID)
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	if len(want) != 0 || pages < 2 {
		t.Errorf("%d pages, %d messages never listed", pages, len(want))
	}
}

// A client reaches a socket by a relative path, also one with a directory
// in it (issue 14: "invalid (non-empty) authority: n1").
func TestDialUnixRelative(t *testing.T) {
	e := newEnv(t, nil)
	dir := filepath.Dir(e.socket)
	t.Chdir(filepath.Dir(dir))
	c, err := rpc.DialUnix(filepath.Join(filepath.Base(dir), filepath.Base(e.socket)))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Status(ctxT(t)); err != nil {
		t.Errorf("Status over a relative socket path: %v", err)
	}
}

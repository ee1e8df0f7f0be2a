package s3api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/s3api"
)

// Test keys: one readwrite, one read-only.
var (
	rwKey = s3api.Key{Name: "restore", AccessKey: "AKRESTORE0000000001", Secret: "rw-secret-0123456789abcdefghij", Role: s3api.RoleReadWrite}
	roKey = s3api.Key{Name: "backup", AccessKey: "AKBACKUP00000000001", Secret: "ro-secret-0123456789abcdefghij", Role: s3api.RoleRead}
)

// env is one real node (badger store in a temp dir) behind the S3 API on
// an httptest server.
type env struct {
	t    *testing.T
	mu   sync.Mutex
	seen map[string]int // x-amz-content-sha256 forms of PUTs received
	node *replicator.Node
	srv  *httptest.Server
	api  *s3api.Server
}

func newEnv(t *testing.T, tlsOn bool, mod func(*s3api.Config)) *env {
	return newEnvNode(t, tlsOn, mod, 1)
}

// newEnvNode is newEnv with node number n (a restore target must not
// allocate the ids of the messages it restores).
func newEnvNode(t *testing.T, tlsOn bool, mod func(*s3api.Config), n int) *env {
	t.Helper()
	log := slog.New(slog.DiscardHandler)
	scfg := objstore.DefaultConfig(t.TempDir())
	scfg.MemTableSize, scfg.BlockCacheSize, scfg.IndexCacheSize, scfg.ValueLogFileSize = 4<<20, 4<<20, 2<<20, 16<<20
	store, err := objstore.Open(scfg, log, nil)
	if err != nil {
		t.Fatalf("objstore.Open: %v", err)
	}
	rcfg := replicator.DefaultConfig()
	rcfg.MaxMessageSize = 4 << 20
	rcfg.NodeNumber = n
	node, err := replicator.New(rcfg, store, log, lazaret.SystemClock{}, nil)
	if err != nil {
		store.Close()
		t.Fatalf("replicator.New: %v", err)
	}
	cfg := s3api.DefaultConfig()
	cfg.MaxObjectSize = rcfg.MaxMessageSize
	if mod != nil {
		mod(&cfg)
	}
	api, err := s3api.New(cfg, node, s3api.StaticKeys{rwKey, roKey}, log, lazaret.SystemClock{})
	if err != nil {
		t.Fatalf("s3api.New: %v", err)
	}
	e := &env{t: t, node: node, api: api, seen: map[string]int{}}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			form := r.Header.Get("X-Amz-Content-Sha256")
			if len(form) == 64 {
				form = "hex"
			}
			e.mu.Lock()
			e.seen[form]++
			e.mu.Unlock()
		}
		api.ServeHTTP(w, r)
	})
	if tlsOn {
		e.srv = httptest.NewTLSServer(h)
	} else {
		e.srv = httptest.NewServer(h)
	}
	t.Cleanup(func() {
		e.srv.Close()
		node.Close()
		store.Close()
	})
	return e
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// mail returns a message body of about n bytes.
func mail(rng *rand.Rand, n int, subject string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: sender@example.org\r\nTo: rcpt@example.com\r\nSubject: %s\r\nMessage-ID: <%d@example.org>\r\n\r\n", subject, rng.Uint64())
	for b.Len() < n {
		fmt.Fprintf(&b, "line %x of the body with some words in it\r\n", rng.Uint64())
	}
	return []byte(b.String())
}

// put stores a message directly in the node.
func (e *env) put(body []byte, received time.Time) *lazaret.Metadata {
	e.t.Helper()
	m, err := e.node.Put(ctxT(e.t), lazaret.PutRequest{
		Sender: "sender@example.org", Recipients: []string{"a@example.com", "b@example.com"},
		Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 9.5}, Received: received,
	}, strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatalf("put: %v", err)
	}
	return m
}

func keyOf(m *lazaret.Metadata, ext string) string {
	return m.Received.UTC().Format("2006/01/02/") + string(m.ID) + ext
}

// signed returns a request signed with key k (header form) for body.
func (e *env) signed(method, path string, body []byte, k s3api.Key, at time.Time) *http.Request {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(string(body)))
	if err != nil {
		e.t.Fatal(err)
	}
	sum := sha256.Sum256(body)
	hash := hex.EncodeToString(sum[:])
	req.Header.Set("X-Amz-Content-Sha256", hash)
	err = s3Signer().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: k.AccessKey, SecretAccessKey: k.Secret}, req, hash, "s3", "us-east-1", at)
	if err != nil {
		e.t.Fatal(err)
	}
	return req
}

func (e *env) do(req *http.Request) (*http.Response, []byte) {
	e.t.Helper()
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("reading response: %v", err)
	}
	return resp, b
}

// count is the number of listed messages.
func (e *env) count() int {
	e.t.Helper()
	n := 0
	q := lazaret.ListQuery{Limit: 1000}
	for {
		p, err := e.node.List(ctxT(e.t), q)
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(p.Messages)
		if p.NextCursor == "" {
			return n
		}
		q.Cursor = p.NextCursor
	}
}

// sawPut reports whether a PUT with payload form form ("hex" for a
// SHA-256) was received.
func (e *env) sawPut(form string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.seen[form] > 0
}

// s3Signer signs as S3 clients do: the path escaped once, not twice.
func s3Signer() *v4.Signer {
	return v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true })
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

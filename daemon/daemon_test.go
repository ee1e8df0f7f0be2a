package daemon

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// A node opened by Open serves the gRPC socket, an extra HTTP handler and
// an extra frontend over the same node, and Run stops them all when its
// context ends.
func TestOpenRunWithExtraHandlerAndFrontend(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	dir, err := os.MkdirTemp("", "lzd") // short: unix socket paths are limited
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := DefaultConfig(filepath.Join(dir, "data"), filepath.Join(dir, "api.sock"))
	cfg.HTTPListen = "127.0.0.1:0"
	cfg.Health.MinFreeDisk = 0
	cfg.Handlers = []Handler{{Pattern: "GET /hello", Name: "hello", New: func(q lazaret.Quarantine) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st, err := q.Status(r.Context())
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "node %d has %d messages", st.Node, st.Messages)
		})
	}}}
	var mu sync.Mutex
	var frontQ lazaret.Quarantine
	stopped := false
	cfg.Frontends = []Frontend{{Name: "test", Start: func(ctx context.Context, env FrontendEnv) (func(context.Context) error, <-chan error, error) {
		mu.Lock()
		frontQ = env.Quarantine
		mu.Unlock()
		return func(context.Context) error { mu.Lock(); stopped = true; mu.Unlock(); return nil }, nil, nil
	}}}
	var out strings.Builder // Open writes it before it returns, Run does not
	d, err := Open(ctx, cfg, Env{Stdout: &out})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx) }()

	// The frontend's Quarantine is the node: a put through it is read
	// back over the gRPC socket.
	mu.Lock()
	q := frontQ
	mu.Unlock()
	body := "Subject: hi\r\n\r\nbody\r\n"
	m, err := q.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.com"}}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c, err := rpc.DialUnix(cfg.API.Socket)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, rc, err := c.Open(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(got) != body {
		t.Fatalf("get over the socket: %q, %v", got, err)
	}

	addr := regexp.MustCompile(`on http://([^/\s]+)/metrics`).FindStringSubmatch(out.String())
	if addr == nil {
		t.Fatalf("no HTTP address in %q", out.String())
	}
	code, b := httpGet(t, "http://"+addr[1]+"/hello")
	if code != http.StatusOK || string(b) != "node 1 has 1 messages" {
		t.Fatalf("GET /hello: %d %q", code, b)
	}
	_, s := scrape(t, addr[1])
	wantSample(t, s, `lazaret_requests_total{op="put",result="ok",source="test"}`, 1)
	wantSample(t, s, `lazaret_requests_total{op="status",result="ok",source="hello"}`, 1)
	wantSample(t, s, `lazaret_store_acked_messages_total`, 1)
	wantSample(t, s, `lazaret_store_acked_bytes_total`, float64(len(body)))

	stop()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Run did not return after its context ended")
	}
	mu.Lock()
	defer mu.Unlock()
	if !stopped {
		t.Error("the frontend was not stopped")
	}
	if _, err := os.Stat(cfg.API.Socket); !os.IsNotExist(err) {
		t.Errorf("socket left behind: %v", err)
	}
}

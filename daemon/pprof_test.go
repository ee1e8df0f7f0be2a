package daemon

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lazaret/lazaret"
)

// The monitoring endpoint serves Go's profiles only when PProf is set.
func TestPProfOffByDefaultOnWhenSet(t *testing.T) {
	get := func(cfg Config, path string) (int, string) {
		h := newMonitor(cfg, slog.New(slog.DiscardHandler), lazaret.SystemClock{}).handler(func(string) lazaret.Quarantine { return nil })
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		return rec.Code, rec.Body.String()
	}
	cfg := DefaultConfig(t.TempDir(), "unused.sock")
	if cfg.PProf {
		t.Fatal("PProf is on by default")
	}
	for _, p := range []string{"/debug/pprof/", "/debug/pprof/heap", "/debug/pprof/cmdline"} {
		if code, _ := get(cfg, p); code != http.StatusNotFound {
			t.Errorf("pprof off: GET %s = %d, want 404", p, code)
		}
	}
	cfg.PProf = true
	if code, body := get(cfg, "/debug/pprof/"); code != http.StatusOK || !strings.Contains(body, "block") {
		t.Errorf("pprof on: GET /debug/pprof/ = %d %.200q", code, body)
	}
	for _, p := range []string{"/debug/pprof/block?debug=1", "/debug/pprof/goroutine?debug=1"} {
		if code, body := get(cfg, p); code != http.StatusOK || body == "" {
			t.Errorf("pprof on: GET %s = %d %.200q", p, code, body)
		}
	}
	// The endpoint's own routes still answer.
	if code, _ := get(cfg, "/metrics"); code != http.StatusOK {
		t.Errorf("pprof on: GET /metrics = %d", code)
	}
}

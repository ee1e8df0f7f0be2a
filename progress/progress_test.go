package progress

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

func TestPlainLinesAtIntervals(t *testing.T) {
	clock := lazaret.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	cfg := DefaultConfig("index rebuild", "messages", 1000)
	cfg.Clock = clock
	r := New(&out, cfg)
	r.Add(100) // before the first interval: no line
	if out.Len() != 0 {
		t.Fatalf("a line before the interval: %q", out.String())
	}
	clock.Advance(5 * time.Second)
	r.Add(150) // 250 in 5 s: 50/s, 750 left: 15 s
	clock.Advance(time.Second)
	r.Add(10) // within the interval: no line
	clock.Advance(4 * time.Second)
	r.Set(500) // 500 in 10 s
	r.Set(400) // never backwards
	r.Finish()
	r.Add(1) // after Finish: nothing
	want := []string{
		"index rebuild: 250/1000 messages (25%), 50/s, elapsed 5s, ETA 15s",
		"index rebuild: 500/1000 messages (50%), 50/s, elapsed 10s, ETA 10s",
		"index rebuild: 500/1000 messages (50%), 50/s, elapsed 10s, ETA 10s done",
	}
	if got := strings.Split(strings.TrimSpace(out.String()), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("lines:\n%s\nwant:\n%s", out.String(), strings.Join(want, "\n"))
	}
}

func TestPlainUnknownTotal(t *testing.T) {
	clock := lazaret.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	cfg := DefaultConfig("bench put", "msgs", 0)
	cfg.Clock = clock
	r := New(&out, cfg)
	clock.Advance(2 * time.Second)
	r.Add(10)
	r.Finish()
	if got := strings.TrimSpace(out.String()); got != "bench put: 10 msgs, 5/s, elapsed 2s done" {
		t.Errorf("got %q", got)
	}
}

// TestBar: on a terminal the library draws a bar with the count, the rate
// and the time left, and ends with a newline.
func TestBar(t *testing.T) {
	var out bytes.Buffer
	cfg := DefaultConfig("node remove", "messages", 200)
	cfg.Terminal = true
	r := New(&out, cfg)
	for range 4 {
		time.Sleep(120 * time.Millisecond) // past the redraw throttle
		r.Add(25)
	}
	mid := out.String()
	r.Finish()
	for _, want := range []string{"node remove", "/200", "messages/s", "50%"} {
		if !strings.Contains(mid, want) {
			t.Errorf("bar lacks %q: %q", want, mid)
		}
	}
	if !strings.Contains(mid, ":") || !strings.Contains(mid, "[") {
		t.Errorf("bar shows no elapsed:left times: %q", mid)
	}
	if !strings.HasSuffix(out.String(), "\n") || !strings.Contains(out.String(), "100%") {
		t.Errorf("finished bar: %q", out.String())
	}
}

func TestIsTerminal(t *testing.T) {
	if IsTerminal(&bytes.Buffer{}) {
		t.Error("a buffer is a terminal")
	}
}

func TestTotalGrowsWhenExceeded(t *testing.T) {
	clock := lazaret.NewManualClock(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var out bytes.Buffer
	cfg := DefaultConfig("index rebuild", "msgs", 100)
	cfg.Clock = clock
	r := New(&out, cfg)
	clock.Advance(time.Second)
	r.Set(120)
	r.Finish()
	if got := strings.TrimSpace(out.String()); got != "index rebuild: 120/120 msgs (100%), 120/s, elapsed 1s done" {
		t.Errorf("got %q", got)
	}
}

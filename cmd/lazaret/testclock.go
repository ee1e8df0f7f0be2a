package main

import (
	"os"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret"
)

// offsetClock is the wall clock shifted by an offset read from a file. It
// is for tests only (`serve --test-clock-offset-file`): the fault soak
// steps one node's clock by minutes, forwards and back, while the node
// runs, as a misbehaving NTP client would. The file holds a Go duration
// ("5m", "-3m30s"); a missing, empty or unreadable file means no offset.
// It is re-read at most once a second.
type offsetClock struct {
	path  string
	every time.Duration // how often the file is re-read

	mu      sync.Mutex
	offset  time.Duration
	checked time.Time // real time of the last read
}

func newOffsetClock(path string) *offsetClock { return &offsetClock{path: path, every: time.Second} }

// Now returns the wall clock plus the file's offset.
func (c *offsetClock) Now() time.Time {
	now := time.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if now.Sub(c.checked) >= c.every || now.Before(c.checked) || c.checked.IsZero() {
		c.checked = now
		c.offset = 0
		if b, err := os.ReadFile(c.path); err == nil {
			if d, err := time.ParseDuration(strings.TrimSpace(string(b))); err == nil {
				c.offset = d
			}
		}
	}
	return now.Add(c.offset)
}

var _ lazaret.Clock = (*offsetClock)(nil)

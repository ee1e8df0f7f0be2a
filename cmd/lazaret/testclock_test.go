package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestOffsetClockFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "offset")
	c := newOffsetClock(path)
	c.every = 0
	near := func(want time.Duration) {
		t.Helper()
		if d := c.Now().Sub(time.Now().Add(want)); d < -time.Minute/2 || d > time.Minute/2 {
			t.Fatalf("clock is %v off the wall clock plus %v", d, want)
		}
	}
	near(0) // no file
	for _, step := range []struct {
		text string
		want time.Duration
	}{{"5m\n", 5 * time.Minute}, {"-3m", -3 * time.Minute}, {"junk", 0}, {"", 0}} {
		if err := os.WriteFile(path, []byte(step.text), 0o644); err != nil {
			t.Fatal(err)
		}
		near(step.want)
	}
}

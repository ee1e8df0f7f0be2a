package main

import (
	"context"
	"strings"
	"testing"
)

// TestSimCommand runs `lazaret sim` with a small sample: one table row per
// cluster size and message count, and the sampling stated.
func TestSimCommand(t *testing.T) {
	var out strings.Builder
	m := NewMain(strings.NewReader(""), &out, &out)
	if rc := m.Run(context.Background(), []string{"sim", "--sample", "2000"}); rc != 0 {
		t.Fatalf("lazaret sim: exit %d\n%s", rc, out.String())
	}
	s := out.String()
	if !strings.Contains(s, "sampling: real reconcile sessions over at most 2000 items") {
		t.Errorf("sampling not stated:\n%s", s)
	}
	for _, row := range []string{"| 5 | 10^6 |", "| 16 | 10^7 |", "| 64 | 10^8 |"} {
		if !strings.Contains(s, row) {
			t.Errorf("no row %q:\n%s", row, s)
		}
	}
}

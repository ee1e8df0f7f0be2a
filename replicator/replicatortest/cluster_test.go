package replicatortest_test

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator/replicatortest"
)

// readAll reads message id's body through q.
func readAll(ctx context.Context, q lazaret.Quarantine, id lazaret.ID) (string, error) {
	_, rc, err := q.Open(ctx, id)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return string(b), err
}

// The way a frontend test uses the twin: take a node of a 5-node cluster
// as its lazaret.Quarantine, store a message through it, and read it back
// through another node, also with a node down (a degraded read from the
// remaining shards).
func TestClusterAsAQuarantine(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c := replicatortest.New(t, 5, replicatortest.Options{})
	var front lazaret.Quarantine = c.Node(1).Node

	body := "Subject: hello\r\n\r\n" + strings.Repeat("spam spam spam\r\n", 4000)
	m, err := front.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.com"}}, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.Placement.K != 3 || m.Placement.M != 2 || len(m.Placement.Shards) != 5 {
		t.Fatalf("placement %+v, want 3+2 on 5 nodes", m.Placement)
	}
	if got, err := readAll(ctx, c.Node(4).Node, m.ID); err != nil || got != body {
		t.Fatalf("read through node 4: %d bytes, %v", len(got), err)
	}
	down := m.Placement.Shards[0].Node
	c.Net.SetDown(down, true)
	reader := 1
	if reader == down {
		reader = 2
	}
	if got, err := readAll(ctx, c.Node(reader).Node, m.ID); err != nil || got != body {
		t.Fatalf("read through node %d with node %d down: %d bytes, %v", reader, down, len(got), err)
	}
}

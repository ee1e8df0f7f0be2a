package rpc_test

import (
	"bytes"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// TestRestoreOverGRPC: PutRequest.Restore and Metadata.MD5 survive the
// wire, and a bad restore comes back as ErrInvalidArgument.
func TestRestoreOverGRPC(t *testing.T) {
	e := newEnv(t, nil)
	ctx := ctxT(t)
	body := mail(3000, 9)
	received := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	rec := &lazaret.Metadata{
		ID: "1xVCn8-000003-05", Node: 5, Received: received, Sender: "s@example.org", Recipients: []string{"r@example.com"},
		Size: int64(len(body)), SHA256: sha256.Sum256(body), State: lazaret.StateQuarantined,
		Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 7},
		History: []lazaret.Event{{Time: received, Actor: "smtp", Action: "quarantine", Node: 5}},
	}
	m, err := e.client.Put(ctx, lazaret.PutRequest{Restore: rec}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != rec.ID || m.Node != 5 || !m.Received.Equal(received) || m.MD5 != md5.Sum(body) || len(m.History) != 1 || m.History[0].Actor != "smtp" {
		t.Fatalf("restored over gRPC: %+v", m)
	}
	got, err := e.client.Stat(ctx, rec.ID)
	if err != nil || got.MD5 != md5.Sum(body) {
		t.Fatalf("Stat: %v %x", err, got.MD5)
	}
	bad := *rec
	bad.ID = "1xVCn8-000004-05"
	bad.Size++
	if _, err := e.client.Put(ctx, lazaret.PutRequest{Restore: &bad}, bytes.NewReader(body)); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Fatalf("bad restore: %v", err)
	}
}

package rpc_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/proto/rpc"
	"github.com/lazaret/lazaret/replicator"
)

// ExampleDialUnix puts a message into a node over its unix socket and reads
// it back. The node is started in-process here; normally it is a running
// `lazaret serve`, and the socket path is its api.socket.
func ExampleDialUnix() {
	dir, err := os.MkdirTemp("", "lz")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	socket := filepath.Join(dir, "lazaret.sock")
	stop := serveExample(dir, socket)
	defer stop()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := rpc.DialUnix(socket)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()

	msg := "From: alice@example.org\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\n\r\nHello, Bob!\r\n"
	m, err := c.Put(ctx, lazaret.PutRequest{
		Sender:     "alice@example.org",
		Recipients: []string{"bob@example.com"},
		Verdict:    lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 7.2, Scanner: "spamassassin"},
	}, strings.NewReader(msg))
	if err != nil {
		log.Fatal(err)
	}

	meta, body, err := c.Open(ctx, m.ID)
	if err != nil {
		log.Fatal(err)
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("same id:", meta.ID == m.ID)
	fmt.Println("subject:", meta.Subject)
	fmt.Println("verdict:", meta.Verdict.Kind, meta.Verdict.Score)
	fmt.Println("size:", meta.Size)
	fmt.Println("identical:", string(b) == msg)
	// Output:
	// same id: true
	// subject: Grüße
	// verdict: spam 7.2
	// size: 78
	// identical: true
}

// serveExample runs a node with its store in dir, serving socket, and
// returns a function that stops it.
func serveExample(dir, socket string) (stop func()) {
	logger := slog.New(slog.DiscardHandler)
	store, err := objstore.Open(objstore.DefaultConfig(filepath.Join(dir, "data")), logger, nil)
	if err != nil {
		log.Fatal(err)
	}
	node, err := replicator.New(replicator.DefaultConfig(), store, logger, lazaret.SystemClock{}, nil)
	if err != nil {
		log.Fatal(err)
	}
	l, err := rpc.ListenUnix(socket, 0o660, "")
	if err != nil {
		log.Fatal(err)
	}
	srv := rpc.NewServer(node, logger)
	go srv.Serve(l)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Stop(ctx)
		node.Close()
		store.Close()
	}
}

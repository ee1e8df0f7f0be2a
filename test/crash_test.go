package test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// crashBody makes the deterministic body of put number seq of client c. The
// test regenerates it from the X-Crash-Seq header to check that whatever is
// visible after a crash is whole.
func crashBody(c, seq int) []byte {
	r := rand.New(rand.NewPCG(uint64(c), uint64(seq)))
	size := 200 + r.IntN(20<<10)
	switch r.IntN(10) {
	case 0:
		size = 1<<20 + r.IntN(2<<20) // some multi-chunk bodies
	case 1, 2:
		size = 20<<10 + r.IntN(200<<10)
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: crash%d@example.org\r\nTo: victim@example.com\r\nSubject: crash %d-%d\r\nX-Crash-Seq: %d-%d\r\n\r\n", c, c, seq, c, seq)
	for b.Len() < size {
		fmt.Fprintf(&b, "%016x line of body text %d\r\n", r.Uint64(), b.Len())
	}
	return b.Bytes()
}

// TestCrashKill9 streams puts from several clients into a real lazaret serve,
// kill -9s it at random moments, restarts it, and checks that every
// acknowledged message reads back byte-identical, that nothing visible is
// partial, and that no id was ever handed out twice.
func TestCrashKill9(t *testing.T) {
	const (
		rounds  = 5
		clients = 4
	)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	dir := shortTempDir(t)
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	t.Logf("seed-independent; crash delays drawn at random")

	var mu sync.Mutex
	acked := map[lazaret.ID][32]byte{} // id → sha256 of the body sent
	seen := map[lazaret.ID]string{}    // every id handed out → who got it
	note := func(id lazaret.ID, who string) {
		mu.Lock()
		defer mu.Unlock()
		if prev, dup := seen[id]; dup {
			t.Errorf("id %s handed out twice: to %s and %s", id, prev, who)
		}
		seen[id] = who
	}
	seq := make([]int, clients)

	for round := 0; round < rounds; round++ {
		p := startServe(t, dir)
		roundCtx, stopClients := context.WithCancel(ctx)
		var wg sync.WaitGroup
		for c := 0; c < clients; c++ {
			wg.Add(1)
			go func(c int) {
				defer wg.Done()
				cl := p.client()
				for roundCtx.Err() == nil {
					seq[c]++
					s := seq[c]
					if s%7 == 0 { // ids may also be allocated ahead of the put
						if id, err := cl.AllocateID(roundCtx); err == nil {
							note(id, fmt.Sprintf("allocate %d-%d", c, s))
						}
						continue
					}
					body := crashBody(c, s)
					m, err := cl.Put(roundCtx, lazaret.PutRequest{Sender: "crash@example.org", Recipients: []string{"victim@example.com"}}, bytes.NewReader(body))
					if err != nil {
						return // the node died under us; unacknowledged
					}
					if m.SHA256 != sha256.Sum256(body) || m.Size != int64(len(body)) {
						t.Errorf("put %d-%d: acknowledged metadata does not match the body", c, s)
					}
					note(m.ID, fmt.Sprintf("put %d-%d", c, s))
					mu.Lock()
					acked[m.ID] = m.SHA256
					mu.Unlock()
				}
			}(c)
		}
		time.Sleep(time.Duration(300+rng.IntN(1500)) * time.Millisecond)
		p.kill()
		stopClients()
		wg.Wait()
		mu.Lock()
		t.Logf("round %d: killed after %d acknowledged puts in total", round, len(acked))
		mu.Unlock()
	}
	if len(acked) == 0 {
		t.Fatal("no put was acknowledged in any round")
	}

	p := startServe(t, dir)
	cl := p.client()
	for id, sum := range acked {
		_, body, err := cl.Open(ctx, id)
		if err != nil {
			t.Errorf("acknowledged %s: %v", id, err)
			continue
		}
		data, err := io.ReadAll(body)
		body.Close()
		if err != nil || sha256.Sum256(data) != sum {
			t.Errorf("acknowledged %s: read back wrong (err %v)", id, err)
		}
	}
	// Everything visible must be whole: acknowledged, or an unacknowledged put
	// that completed just before a kill, byte-identical to what was sent.
	q := lazaret.ListQuery{Limit: 1000}
	visible := 0
	for {
		page, err := cl.List(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page.Messages {
			visible++
			if _, ok := acked[m.ID]; ok {
				continue
			}
			if who, ok := seen[m.ID]; ok {
				t.Errorf("unacknowledged message %s has an id also handed out to %s", m.ID, who)
			}
			_, body, err := cl.Open(ctx, m.ID)
			if err != nil {
				t.Errorf("unacknowledged but visible %s: %v", m.ID, err)
				continue
			}
			data, err := io.ReadAll(body)
			body.Close()
			if err != nil {
				t.Errorf("unacknowledged but visible %s: %v", m.ID, err)
				continue
			}
			if want := regenerate(data); !bytes.Equal(data, want) {
				t.Errorf("unacknowledged %s is visible but not the whole message that was sent", m.ID)
			}
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	if visible < len(acked) {
		t.Errorf("List shows %d messages, fewer than the %d acknowledged", visible, len(acked))
	}
	t.Logf("%d acknowledged, %d visible, %d ids handed out, all verified", len(acked), visible, len(seen))
	p.stop()
}

// regenerate rebuilds the body a client sent from its X-Crash-Seq header.
func regenerate(data []byte) []byte {
	i := bytes.Index(data, []byte("X-Crash-Seq: "))
	if i < 0 {
		return nil
	}
	line := string(data[i+len("X-Crash-Seq: "):])
	line = line[:strings.IndexByte(line, '\r')]
	c, s, ok := strings.Cut(line, "-")
	if !ok {
		return nil
	}
	ci, err1 := strconv.Atoi(c)
	si, err2 := strconv.Atoi(s)
	if errors.Join(err1, err2) != nil {
		return nil
	}
	return crashBody(ci, si)
}

package test

// Hostile and broken peers (issue 10, item 3): a three-node cluster of real
// processes on 127.46.1.1-3 is flooded with garbage, oversized frames and
// slow-loris connections on every port it listens on (peer 1027, gossip
// TCP and UDP, SMTP, HTTP) while a client keeps putting mail; foreign gossip
// without the cluster key is ignored; and after `lazaret node remove` the
// removed node's certificate opens nothing on port 1027.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/hashicorp/serf/serf"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/rpc"
	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/replicator/cluster/clustertest"
)

// hostileNet is the loopback prefix of this test (127.46.0.0/16 is this
// work's range).
const hostileNet = "127.46.1."

type hostileNode struct {
	k    int
	ip   string
	dir  string
	p    *proc
	smtp string
	http string
}

func (n *hostileNode) peer() string   { return n.ip + ":1027" }
func (n *hostileNode) gossip() string { return n.ip + ":7946" }
func (n *hostileNode) socket() string { return filepath.Join(n.dir, "lazaret.sock") }

// startHostileCluster bootstraps three nodes with init/join and serves each
// with the SMTP filter and the HTTP endpoints on.
func startHostileCluster(t *testing.T) []*hostileNode {
	t.Helper()
	root := shortTempDir(t)
	var nodes []*hostileNode
	var token string
	for k := 1; k <= 3; k++ {
		n := &hostileNode{k: k, ip: fmt.Sprintf("%s%d", hostileNet, k), dir: filepath.Join(root, fmt.Sprintf("n%d", k))}
		n.smtp, n.http = n.ip+":2525", n.ip+":9127"
		name := fmt.Sprintf("h%d", k)
		if k == 1 {
			token = tokenFrom(t, mustLz(t, 30*time.Second, "init", "--dir", n.dir, "--name", name, "--addr", n.ip, "--gossip-profile", "local"))
		} else {
			mustLz(t, 60*time.Second, "join", "--peer", nodes[0].peer(), "--token", token, "--ca", filepath.Join(nodes[0].dir, "cluster", "ca.pem"),
				"--dir", n.dir, "--name", name, "--addr", n.ip, "--gossip-profile", "local")
		}
		p, log := serveNodeWith(t, binary, n.dir, 60*time.Second, "--smtp", n.smtp, "--http", n.http)
		if p == nil {
			t.Fatalf("node %d exited at start:\n%s", k, log)
		}
		n.p = p
		nodes = append(nodes, n)
	}
	all := map[int]string{1: "alive", 2: "alive", 3: "alive"}
	for _, n := range nodes {
		waitMembers(t, n.socket(), all, 60*time.Second)
	}
	return nodes
}

// putProbe puts count messages one after another through c (gRPC) and
// through the SMTP filter at smtpAddr, alternating, and returns each put's
// latency. Every put must succeed within a generous deadline.
func putProbe(t *testing.T, c *rpc.Client, smtpAddr string, count int, seed uint64) (grpcLat, smtpLat []time.Duration) {
	t.Helper()
	r := mrand.New(mrand.NewPCG(seed, 7))
	for i := range count {
		size := 2000 + r.IntN(60000)
		body := mailBody(seed*1000+uint64(i), size)
		start := time.Now()
		if i%2 == 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			_, err := c.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.org"}}, bytes.NewReader(body))
			cancel()
			if err != nil {
				t.Fatalf("gRPC put %d: %v", i, err)
			}
			grpcLat = append(grpcLat, time.Since(start))
		} else {
			if err := smtpPut(smtpAddr, body, 90*time.Second); err != nil {
				t.Fatalf("SMTP put %d: %v", i, err)
			}
			smtpLat = append(smtpLat, time.Since(start))
		}
	}
	return grpcLat, smtpLat
}

// mailBody is a message of about size bytes in the form mail has on the
// wire: a header, then base64 lines of 76 characters (SMTP limits lines).
func mailBody(seed uint64, size int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: a@example.org\r\nTo: b@example.org\r\nSubject: probe %d\r\nContent-Transfer-Encoding: base64\r\n\r\n", seed)
	raw := ecBody(seed, size*3/4)
	enc := base64.StdEncoding.EncodeToString(raw)
	for len(enc) > 0 {
		n := min(76, len(enc))
		b.WriteString(enc[:n] + "\r\n")
		enc = enc[n:]
	}
	return b.Bytes()
}

// smtpPut sends one message to the filter and wants its 250.
func smtpPut(addr string, body []byte, timeout time.Duration) error {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return err
	}
	conn.SetDeadline(time.Now().Add(timeout))
	c := smtp.NewClient(conn)
	defer c.Close()
	if err := c.Hello("probe.example"); err != nil {
		return err
	}
	if err := c.Mail("a@example.org", nil); err != nil {
		return err
	}
	if err := c.Rcpt("b@example.org", nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func median(d []time.Duration) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// attack runs hostile clients until ctx ends; counts what they did.
type attack struct {
	ctx   context.Context
	wg    sync.WaitGroup
	conns atomic.Int64 // connections opened
	bytes atomic.Int64 // bytes sent
	pkts  atomic.Int64 // UDP packets sent
}

func (a *attack) goLoop(fn func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		for a.ctx.Err() == nil {
			fn()
		}
	}()
}

func (a *attack) sleep(d time.Duration) {
	select {
	case <-a.ctx.Done():
	case <-time.After(d):
	}
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// garbage connects, writes random bytes and hangs up, again and again.
func (a *attack) garbage(addr string, size int) {
	a.goLoop(func() {
		c, err := net.DialTimeout("tcp", addr, 2*time.Second)
		if err != nil {
			a.sleep(50 * time.Millisecond)
			return
		}
		a.conns.Add(1)
		c.SetDeadline(time.Now().Add(2 * time.Second))
		n, _ := c.Write(randBytes(size))
		a.bytes.Add(int64(n))
		c.Close()
		a.sleep(10 * time.Millisecond)
	})
}

// slowloris holds n connections open, each sending one byte of prefix (then
// of filler) per second and never finishing anything.
func (a *attack) slowloris(addr string, n int, prefix string) {
	for range n {
		a.goLoop(func() {
			c, err := net.DialTimeout("tcp", addr, 2*time.Second)
			if err != nil {
				a.sleep(200 * time.Millisecond)
				return
			}
			a.conns.Add(1)
			go io.Copy(io.Discard, c)
			defer c.Close()
			for i := 0; a.ctx.Err() == nil; i++ {
				b := byte('a')
				if i < len(prefix) {
					b = prefix[i]
				}
				c.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if _, err := c.Write([]byte{b}); err != nil {
					return // the server hung up: open another
				}
				a.bytes.Add(1)
				a.sleep(time.Second)
			}
		})
	}
}

// udpGarbage sends random datagrams.
func (a *attack) udpGarbage(addr string) {
	a.goLoop(func() {
		c, err := net.Dial("udp", addr)
		if err != nil {
			a.sleep(100 * time.Millisecond)
			return
		}
		defer c.Close()
		for i := 0; i < 200 && a.ctx.Err() == nil; i++ {
			c.Write(randBytes(64 + mrand.IntN(1400)))
			a.pkts.Add(1)
			a.sleep(3 * time.Millisecond)
		}
	})
}

// h2Oversized opens TLS without a client certificate, speaks the HTTP/2
// preface and sends a DATA frame header claiming 16 MiB, followed by junk.
func (a *attack) h2Oversized(addr string, pool *tls.Config) {
	a.goLoop(func() {
		cfg := pool.Clone()
		cfg.NextProtos = []string{"h2"}
		d := &net.Dialer{Timeout: 2 * time.Second}
		c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
		if err != nil {
			a.sleep(100 * time.Millisecond)
			return
		}
		a.conns.Add(1)
		c.SetDeadline(time.Now().Add(3 * time.Second))
		hdr := make([]byte, 9)
		hdr[0], hdr[1], hdr[2] = 0xff, 0xff, 0xff // length 16 MiB - 1
		hdr[3] = 0                                // DATA
		hdr[8] = 1                                // stream 1
		c.Write([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"))
		c.Write([]byte{0, 0, 0, 4, 0, 0, 0, 0, 0}) // empty SETTINGS
		c.Write(hdr)
		n, _ := c.Write(randBytes(256 << 10))
		a.bytes.Add(int64(n))
		io.Copy(io.Discard, c)
		c.Close()
		a.sleep(20 * time.Millisecond)
	})
}

// TestHostilePeers floods every port of a live cluster and then retires a
// node; see the file comment.
func TestHostilePeers(t *testing.T) {
	nodes := startHostileCluster(t)
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	c1 := n1.p.client()
	caPEM, err := os.ReadFile(filepath.Join(n1.dir, "cluster", "ca.pem"))
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := cluster.ParseCertPEM(caPEM)
	if err != nil {
		t.Fatal(err)
	}
	pool := (&cluster.CA{Cert: caCert}).Pool()
	creds3, err := cluster.Dir(filepath.Join(n3.dir, "cluster")).LoadCredentials(time.Now())
	if err != nil {
		t.Fatal(err)
	}

	// Undisturbed latency first, then the same probe under attack.
	const probes = 24
	quietG, quietS := putProbe(t, c1, n2.smtp, probes, 1)

	ctx, stopAttack := context.WithCancel(context.Background())
	a := &attack{ctx: ctx}
	for _, n := range nodes {
		a.garbage(n.peer(), 32<<10)
		a.garbage(n.gossip(), 32<<10)
		a.udpGarbage(n.gossip())
		a.slowloris(n.peer(), 60, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
		a.slowloris(n.gossip(), 30, "\x01\x00\x00")
		a.h2Oversized(n.peer(), cluster.PinnedTLS(pool, n.ip))
	}
	for _, n := range []*hostileNode{n1, n2} {
		a.garbage(n.smtp, 32<<10)
		a.garbage(n.http, 32<<10)
		a.slowloris(n.smtp, 40, "EHLO slow.example\r\nMAIL FROM:<")
		a.slowloris(n.http, 60, "GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
		// One line far over the limits, as a broken client would send.
		a.garbage(n.smtp, 1<<20)
	}
	// A member (node 3's valid certificate) sends a PushMeta over the
	// peer port's message limit: refused with ResourceExhausted, nothing
	// else happens.
	oversized := make(chan error, 1)
	go func() {
		cc, err := cluster.DialPeer(n1.peer(), creds3.ClientTLS(n1.ip, 1))
		if err != nil {
			oversized <- err
			return
		}
		defer cc.Close()
		octx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		big := &lazaretpb.PushMetaRequest{Messages: []*lazaretpb.Message{{Id: strings.Repeat("x", 20<<20)}}}
		_, err = lazaretpb.NewPeerClient(cc).PushMeta(octx, big)
		oversized <- err
	}()
	// HTTP with a header far over the limit.
	httpBig := make(chan int, 2)
	for _, n := range []*hostileNode{n1, n2} {
		go func() {
			req, _ := http.NewRequest("GET", "http://"+n.http+"/health", nil)
			req.Header.Set("X-Big", strings.Repeat("b", 2<<20))
			cl := &http.Client{Timeout: 30 * time.Second}
			resp, err := cl.Do(req)
			if err != nil {
				httpBig <- -1
				return
			}
			resp.Body.Close()
			httpBig <- resp.StatusCode
		}()
	}
	time.Sleep(2 * time.Second) // let the slow-loris connections pile up
	loudG, loudS := putProbe(t, c1, n2.smtp, probes, 2)
	// Health and readiness still answer on the HTTP port.
	for _, n := range []*hostileNode{n1, n2} {
		cl := &http.Client{Timeout: 30 * time.Second}
		resp, err := cl.Get("http://" + n.http + "/ready")
		if err != nil {
			t.Fatalf("node %d /ready under attack: %v", n.k, err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("node %d /ready under attack: %d", n.k, resp.StatusCode)
		}
	}
	stopAttack()
	a.wg.Wait()
	if err := <-oversized; status.Code(err) != codes.ResourceExhausted {
		t.Errorf("oversized PushMeta from a member: %v, want ResourceExhausted", err)
	}
	for range 2 {
		if code := <-httpBig; code != -1 && code < 400 {
			t.Errorf("HTTP request with a 2 MiB header answered %d", code)
		}
	}
	ratioG := float64(median(loudG)) / float64(median(quietG))
	ratioS := float64(median(loudS)) / float64(median(quietS))
	t.Logf("put latency p50: gRPC %v undisturbed, %v under attack (ratio %.2f); SMTP %v undisturbed, %v under attack (ratio %.2f); attack: %d connections, %d bytes, %d UDP packets",
		median(quietG).Round(time.Millisecond), median(loudG).Round(time.Millisecond), ratioG,
		median(quietS).Round(time.Millisecond), median(loudS).Round(time.Millisecond), ratioS,
		a.conns.Load(), a.bytes.Load(), a.pkts.Load())
	// The cluster is still whole: nobody was declared dead.
	all := map[int]string{1: "alive", 2: "alive", 3: "alive"}
	for _, n := range nodes {
		waitMembers(t, n.socket(), all, 60*time.Second)
	}

	t.Run("gossip without the key is ignored", func(t *testing.T) {
		for i, key := range [][]byte{nil, randBytes(32)} {
			conf := serf.DefaultConfig()
			conf.NodeName = fmt.Sprintf("intruder%d", i)
			conf.Tags = map[string]string{"n": "9", "peer": hostileNet + "9:1027"}
			conf.MemberlistConfig.BindAddr = hostileNet + "9"
			conf.MemberlistConfig.BindPort = 17946 + i
			conf.MemberlistConfig.SecretKey = key
			conf.MemberlistConfig.LogOutput = io.Discard
			conf.LogOutput = io.Discard
			s, err := serf.Create(conf)
			if err != nil {
				t.Fatal(err)
			}
			n, err := s.Join([]string{n1.gossip()}, true)
			s.Shutdown()
			if err == nil && n > 0 {
				t.Errorf("a serf with key %x joined the cluster (%d contacted)", key, n)
			}
		}
		time.Sleep(2 * time.Second)
		for _, n := range nodes {
			st := waitMembers(t, n.socket(), all, 30*time.Second)
			for _, m := range st.Members {
				if strings.HasPrefix(m.Name, "intruder") {
					t.Errorf("node %d lists the intruder: %+v", n.k, m)
				}
			}
		}
	})

	t.Run("removed node's certificate", func(t *testing.T) {
		n3.p.kill()
		waitMembers(t, n1.socket(), map[int]string{1: "alive", 2: "alive", 3: "failed"}, 60*time.Second)
		out := mustLz(t, 30*time.Second, "node", "remove", "--config", filepath.Join(n1.dir, "lazaret.toml"), "3")
		if !strings.Contains(out, "node 3 retired") {
			t.Fatalf("node remove: %s", out)
		}
		// Node 2 learns the retirement by anti-entropy; until then it
		// still accepts node 3's certificate.
		for _, n := range []*hostileNode{n1, n2} {
			var codesSeen map[string]codes.Code
			waitFor(t, fmt.Sprintf("node %d to refuse node 3's certificate", n.k), 90*time.Second, func() bool {
				cc, err := cluster.DialPeer(n.peer(), creds3.ClientTLS(n.ip, n.k))
				if err != nil {
					t.Fatal(err)
				}
				defer cc.Close()
				codesSeen = clustertest.CallEveryMethod(cc, 10*time.Second)
				for _, c := range codesSeen {
					if c != codes.Unavailable {
						return false
					}
				}
				return true
			})
			t.Logf("node %d refuses every peer method to removed node 3: %v", n.k, codesSeen)
			// The control: no certificate is refused except Join, and a
			// foreign CA's certificate everywhere.
			cc, err := cluster.DialPeer(n.peer(), cluster.PinnedTLS(pool, n.ip))
			if err != nil {
				t.Fatal(err)
			}
			for m, c := range clustertest.CallEveryMethod(cc, 10*time.Second) {
				if m != "Join" && c != codes.Unauthenticated {
					t.Errorf("node %d, no certificate: %s answered %v", n.k, m, c)
				}
			}
			cc.Close()
			other, err := cluster.NewCA("other", time.Now())
			if err != nil {
				t.Fatal(err)
			}
			cfg := cluster.PinnedTLS(pool, n.ip)
			foreign := signFor(t, other, "h2", 2).Cert
			// Sent even though the server asks for its own CA (a Go
			// client would otherwise send no certificate at all).
			cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &foreign, nil }
			cc, err = cluster.DialPeer(n.peer(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			for m, c := range clustertest.CallEveryMethod(cc, 10*time.Second) {
				if c != codes.Unavailable {
					t.Errorf("node %d, another CA's certificate: %s answered %v", n.k, m, c)
				}
			}
			cc.Close()
		}
		// The two remaining nodes still serve each other and clients.
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		md, err := c1.Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.org"}}, bytes.NewReader(ecBody(99, 5000)))
		if err != nil {
			t.Fatalf("put after the removal: %v", err)
		}
		_, rc, err := n2.p.client().Open(ctx, md.ID)
		if err != nil {
			t.Fatalf("read %s from node 2 after the removal: %v", md.ID, err)
		}
		rc.Close()
	})
}

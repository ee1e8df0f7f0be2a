package test

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/cluster"
)

// TestClusterDevThreeNodes: `lazaret dev --nodes 3` forms a cluster that
// every node's status shows; a message put on one node reads back from
// another; Ctrl-C stops every node; running dev again restarts the same
// cluster with its data.
func TestClusterDevThreeNodes(t *testing.T) {
	start := time.Now()
	dir := shortTempDir(t)
	d := startDev(t, dir, 3, "127.31.0.1")
	t.Logf("3-node dev cluster up in %v", time.Since(start))
	all := map[int]string{1: "alive", 2: "alive", 3: "alive"}
	for k := 1; k <= 3; k++ {
		st := waitMembers(t, d.socket(k), all, 30*time.Second)
		for _, m := range st.Members {
			if m.Self != (m.Node == k) || m.PeerAddr != "127.31.0."+string(rune('0'+m.Node))+":1027" {
				t.Errorf("node %d's status lists %+v", k, m)
			}
		}
	}
	// The table form too.
	out := mustLz(t, 20*time.Second, "status", "--socket", d.socket(2))
	for _, want := range []string{"cluster: 3 members", "node1", "node3", "127.31.0.3:1027", "UNDER-PROTECTED"} {
		if !strings.Contains(out, want) {
			t.Errorf("status table lacks %q:\n%s", want, out)
		}
	}

	body := bytes.Repeat([]byte("Subject: dev\r\n\r\nhello cluster\r\n"), 4000)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	md, err := d.client(1).Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.org"}}, bytes.NewReader(body))
	if err != nil {
		t.Fatalf("put: %v\n%s", err, d.logs())
	}
	readBack := func(k int) {
		t.Helper()
		_, rc, err := d.client(k).Open(ctx, md.ID)
		if err != nil {
			t.Fatalf("get %s from node %d: %v", md.ID, k, err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("get %s from node %d: %d bytes, %v; want the %d bytes put", md.ID, k, len(got), err, len(body))
		}
	}
	readBack(3)

	pids := []int{d.pid(1), d.pid(2), d.pid(3)}
	stopStart := time.Now()
	d.stop()
	t.Logf("Ctrl-C stopped the cluster in %v", time.Since(stopStart))
	for k, p := range pids {
		if syscall.Kill(p, 0) == nil {
			t.Errorf("node %d (pid %d) still runs after dev stopped", k+1, p)
		}
		if _, err := os.Stat(filepath.Join(d.nodeDir(k+1), "pid")); err == nil {
			t.Errorf("node %d's pid file left behind", k+1)
		}
	}

	// Same directory again: the same cluster, with its data, no new init.
	d = startDev(t, dir, 3, "127.31.0.1")
	if strings.Contains(d.out.String(), "initialised") || strings.Contains(d.out.String(), "joined") {
		t.Errorf("restart bootstrapped again:\n%s", d.out.String())
	}
	waitMembers(t, d.socket(2), all, 30*time.Second)
	readBack(2)
	d.stop()
}

// TestClusterDevOneNode: a one-node cluster works and lists itself.
func TestClusterDevOneNode(t *testing.T) {
	dir := shortTempDir(t)
	d := startDev(t, dir, 1, "127.32.0.1")
	waitMembers(t, d.socket(1), map[int]string{1: "alive"}, 30*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := []byte("Subject: one\r\n\r\nalone\r\n")
	md, err := d.client(1).Put(ctx, lazaret.PutRequest{Sender: "a@example.org", Recipients: []string{"b@example.org"}}, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	_, rc, err := d.client(1).Open(ctx, md.ID)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, body) {
		t.Fatalf("read back %q", got)
	}
	d.stop()
}

// TestClusterSecurity bootstraps with init/join/serve as an operator would
// and checks what port 1027 and gossip refuse: callers without a
// certificate, certificates from another CA, a duplicate node number, and
// a rotated-out join token.
func TestClusterSecurity(t *testing.T) {
	root := shortTempDir(t)
	n1 := filepath.Join(root, "n1")
	out := mustLz(t, 30*time.Second, "init", "--dir", n1, "--name", "alpha", "--addr", "127.33.0.1", "--gossip-profile", "local")
	token := tokenFrom(t, out)
	ca := filepath.Join(n1, "cluster", "ca.pem")
	p1, log := serveNode(t, n1, 30*time.Second)
	if p1 == nil {
		t.Fatalf("node 1 exited:\n%s", log)
	}

	// A second node joins with the token and the CA; it gets number 2.
	n2 := filepath.Join(root, "n2")
	mustLz(t, 30*time.Second, "join", "--peer", "127.33.0.1:1027", "--token", token, "--ca", ca, "--dir", n2, "--name", "beta", "--addr", "127.33.0.2", "--gossip-profile", "local")
	if p2, log := serveNode(t, n2, 30*time.Second); p2 == nil {
		t.Fatalf("node 2 exited:\n%s", log)
	}
	both := map[int]string{1: "alive", 2: "alive"}
	waitMembers(t, filepath.Join(n1, "lazaret.sock"), both, 30*time.Second)
	waitMembers(t, filepath.Join(n2, "lazaret.sock"), both, 30*time.Second)

	t.Run("no certificate", func(t *testing.T) {
		caPEM, _ := os.ReadFile(ca)
		caCert, _ := cluster.ParseCertPEM(caPEM)
		cfg := cluster.PinnedTLS((&cluster.CA{Cert: caCert}).Pool(), "127.33.0.1")
		for name, err := range peerCalls(t, "127.33.0.1:1027", cfg) {
			if status.Code(err) != codes.Unauthenticated {
				t.Errorf("%s without a client certificate: %v, want Unauthenticated", name, err)
			}
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		other, err := cluster.NewCA("other", time.Now())
		if err != nil {
			t.Fatal(err)
		}
		creds := signFor(t, other, "mallory", 2)
		caPEM, _ := os.ReadFile(ca)
		caCert, _ := cluster.ParseCertPEM(caPEM)
		cfg := cluster.PinnedTLS((&cluster.CA{Cert: caCert}).Pool(), "127.33.0.1")
		cfg.Certificates = creds.ClientTLS("", -1).Certificates
		for name, err := range peerCalls(t, "127.33.0.1:1027", cfg) {
			if err == nil || status.Code(err) == codes.NotFound || status.Code(err) == codes.OK {
				t.Errorf("%s with a foreign certificate was served: %v", name, err)
			}
		}
	})

	t.Run("duplicate node number", func(t *testing.T) {
		// A node with a perfectly valid certificate (signed by the cluster
		// CA, as a stolen key or a copied directory would give) claiming
		// node number 2 under another name.
		dup := filepath.Join(root, "dup")
		mustLz(t, 30*time.Second, "init", "--dir", dup, "--name", "gamma", "--addr", "127.33.0.9", "--gossip-profile", "local")
		realCA, err := cluster.Dir(filepath.Join(n1, "cluster")).LoadCA()
		if err != nil {
			t.Fatal(err)
		}
		writeIdentity(t, cluster.Dir(filepath.Join(dup, "cluster")), filepath.Join(n1, "cluster"), realCA, "gamma", 2, "127.33.0.9")
		conf, _ := os.ReadFile(filepath.Join(dup, "lazaret.toml"))
		conf = bytes.Replace(conf, []byte("number = 1"), []byte("number = 2"), 1)
		conf = bytes.Replace(conf, []byte("join = []"), []byte("join = ['127.33.0.1:7946']"), 1)
		if !bytes.Contains(conf, []byte("number = 2")) || !bytes.Contains(conf, []byte("127.33.0.1:7946")) {
			t.Fatalf("could not edit the config:\n%s", conf)
		}
		os.WriteFile(filepath.Join(dup, "lazaret.toml"), conf, 0o640)
		p, log := serveNode(t, dup, 60*time.Second)
		if p != nil {
			t.Fatalf("a node with a duplicate number started")
		}
		if !strings.Contains(log, "node number 2 is already taken") {
			t.Errorf("refusal is not clear:\n%s", log)
		}
		time.Sleep(time.Second)
		for _, sock := range []string{filepath.Join(n1, "lazaret.sock"), filepath.Join(n2, "lazaret.sock")} {
			st := waitMembers(t, sock, both, 10*time.Second)
			for _, m := range st.Members {
				if m.Name == "gamma" {
					t.Errorf("the refused node is listed: %+v", m)
				}
			}
		}
	})

	t.Run("token rotation", func(t *testing.T) {
		// Rotate on node 2; joining through node 1 with the old token
		// fails at once, with the new one it works.
		out := mustLz(t, 30*time.Second, "token", "rotate", "--config", filepath.Join(n2, "lazaret.toml"))
		newTok := tokenFrom(t, out)
		if newTok == token {
			t.Fatal("rotation returned the same token")
		}
		n3 := filepath.Join(root, "n3")
		args := []string{"join", "--peer", "127.33.0.1:1027", "--ca", ca, "--dir", n3, "--name", "delta", "--addr", "127.33.0.3", "--gossip-profile", "local", "--token"}
		out, err := lz(t, 30*time.Second, append(args, token)...)
		if err == nil || !strings.Contains(out, "not valid") {
			t.Fatalf("join with the rotated-out token: %v\n%s", err, out)
		}
		if _, err := os.Stat(filepath.Join(n3, "lazaret.toml")); err == nil {
			t.Fatal("a refused join wrote a config")
		}
		out = mustLz(t, 30*time.Second, append(args, newTok)...)
		if !strings.Contains(out, "node 3 (delta)") {
			t.Errorf("join with the new token: %s", out)
		}
		// The rotation reached node 1's own file too (user event).
		deadline := time.Now().Add(10 * time.Second)
		for {
			st, err := cluster.ReadTokenState(filepath.Join(n1, "cluster", "token.json"))
			if err == nil && st.Matches(newTok) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node 1 still holds the old token state: %+v %v", st, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// peerCalls calls the data-path methods of a peer port with cfg and
// returns each error.
func peerCalls(t *testing.T, addr string, cfg *tls.Config) map[string]error {
	t.Helper()
	cc, err := cluster.DialPeer(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := lazaretpb.NewPeerClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := map[string]error{}
	if ps, err := c.PutShard(ctx); err != nil {
		errs["PutShard"] = err
	} else {
		ps.Send(&lazaretpb.PutShardRequest{Part: &lazaretpb.PutShardRequest_Header{Header: &lazaretpb.ShardHeader{Id: "1xVCNH-000000-01", K: 1}}})
		ps.Send(&lazaretpb.PutShardRequest{Part: &lazaretpb.PutShardRequest_Chunk{Chunk: []byte("evil")}})
		_, errs["PutShard"] = ps.CloseAndRecv()
	}
	if gs, err := c.GetShard(ctx, &lazaretpb.GetShardRequest{Id: "1xVCNH-000000-01"}); err != nil {
		errs["GetShard"] = err
	} else {
		_, errs["GetShard"] = gs.Recv()
	}
	_, errs["PushMeta"] = c.PushMeta(ctx, &lazaretpb.PushMetaRequest{})
	_, errs["DeleteShards"] = c.DeleteShards(ctx, &lazaretpb.DeleteShardsRequest{Id: "1xVCNH-000000-01"})
	_, errs["NodeStatus"] = c.NodeStatus(ctx, &lazaretpb.NodeStatusRequest{})
	return errs
}

// signFor issues credentials for name/number from ca.
func signFor(t *testing.T, ca *cluster.CA, name string, number int) *cluster.Credentials {
	t.Helper()
	key, csr, err := cluster.NewNodeKey(name)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := ca.Sign(csr, cluster.Identity{Name: name, Number: number}, []string{"127.0.0.1"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := cluster.MarshalKeyPEM(key)
	creds, err := cluster.LoadCredentials(ca.CertPEM, cert, keyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// writeIdentity replaces the cluster files in dir with the real cluster's
// CA and gossip key and a certificate for name/number signed by ca.
func writeIdentity(t *testing.T, dir cluster.Dir, realDir string, ca *cluster.CA, name string, number int, addr string) {
	t.Helper()
	key, csr, _ := cluster.NewNodeKey(name)
	cert, err := ca.Sign(csr, cluster.Identity{Name: name, Number: number}, []string{addr}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, _ := cluster.MarshalKeyPEM(key)
	real := cluster.Dir(realDir)
	for _, f := range []struct {
		path string
		data []byte
	}{{dir.CertPath(), cert}, {dir.KeyPath(), keyPEM}} {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range [][2]string{{real.CAPath(), dir.CAPath()}, {real.CAKeyPath(), dir.CAKeyPath()}, {real.GossipKeyPath(), dir.GossipKeyPath()}} {
		b, err := os.ReadFile(p[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p[1], b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

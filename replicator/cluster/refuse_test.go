package cluster_test

import (
	"crypto/tls"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"

	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/replicator/cluster/clustertest"
)

// retiredSet is a cluster.Retired the test changes while connections live.
type retiredSet struct {
	mu  sync.Mutex
	set map[int]bool
}

func (r *retiredSet) IsRetired(n int) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set[n]
}

func (r *retiredSet) retire(n int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.set[n] = true
}

// callAll calls every peer method once over cc.
func callAll(t *testing.T, cc *grpc.ClientConn) map[string]codes.Code {
	t.Helper()
	return clustertest.CallEveryMethod(cc, 10*time.Second)
}

func dialOrFatal(t *testing.T, addr string, cfg *tls.Config) *grpc.ClientConn {
	t.Helper()
	cc, err := cluster.DialPeer(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// TestPeerPortRefusesEveryMethod calls every method of the peer API with no
// client certificate, a certificate of another CA, and a retired node's
// certificate (retired before it connects, and retired while its
// connection is open): every call is refused. A member's certificate is the
// control: its calls pass authorisation (the data path is not wired here,
// so they answer Unimplemented).
func TestPeerPortRefusesEveryMethod(t *testing.T) {
	ca := newCA(t)
	server := issue(t, ca, "srv", 1, "127.0.0.1")
	retired := &retiredSet{set: map[int]bool{}}
	server.SetRetired(retired)
	addr := startPeer(t, server, newJoinFixture(t, ca, server).svc)

	member := issue(t, ca, "m2", 2)
	for m, code := range callAll(t, dialOrFatal(t, addr, member.ClientTLS("127.0.0.1", 1))) {
		if code != codes.Unimplemented && !(m == "Join" && code == codes.InvalidArgument) {
			t.Errorf("member: %s answered %v, want Unimplemented (authorised)", m, code)
		}
	}

	for m, code := range callAll(t, dialOrFatal(t, addr, cluster.PinnedTLS(server.CA, "127.0.0.1"))) {
		if m == "Join" {
			continue // open to joiners; authenticated by the token (join_test.go)
		}
		if code != codes.Unauthenticated {
			t.Errorf("no certificate: %s answered %v, want Unauthenticated", m, code)
		}
	}

	stranger := issue(t, newCA(t), "evil", 9)
	cfg := cluster.PinnedTLS(server.CA, "127.0.0.1")
	// Sent whatever CA the server asks for.
	cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &stranger.Cert, nil }
	for m, code := range callAll(t, dialOrFatal(t, addr, cfg)) {
		if code != codes.Unavailable {
			t.Errorf("another CA's certificate: %s answered %v, want Unavailable (handshake refused)", m, code)
		}
	}

	// Node 3 connects while a member, then is retired: its open
	// connection is refused from the next call on.
	n3 := issue(t, ca, "m3", 3)
	open := dialOrFatal(t, addr, n3.ClientTLS("127.0.0.1", 1))
	if code := callAll(t, open)["NodeStatus"]; code != codes.Unimplemented {
		t.Fatalf("node 3 before retirement: NodeStatus %v, want Unimplemented", code)
	}
	retired.retire(3)
	for m, code := range callAll(t, open) {
		if m == "Join" {
			continue
		}
		if code != codes.PermissionDenied {
			t.Errorf("retired node 3 on its open connection: %s answered %v, want PermissionDenied", m, code)
		}
	}
	// A new connection with the retired certificate fails the handshake.
	for m, code := range callAll(t, dialOrFatal(t, addr, n3.ClientTLS("127.0.0.1", 1))) {
		if code != codes.Unavailable {
			t.Errorf("retired node 3, new connection: %s answered %v, want Unavailable (handshake refused)", m, code)
		}
	}
	// The member is unaffected.
	if code := callAll(t, dialOrFatal(t, addr, member.ClientTLS("127.0.0.1", 1)))["NodeStatus"]; code != codes.Unimplemented {
		t.Errorf("member after node 3's retirement: NodeStatus %v", code)
	}

	// Dialing out, a node refuses a retired node's server certificate.
	n3srv := issue(t, ca, "m3", 3, "127.0.0.1")
	addr3 := startPeer(t, n3srv, newJoinFixture(t, ca, n3srv).svc)
	member.SetRetired(retired)
	if code := callAll(t, dialOrFatal(t, addr3, member.ClientTLS("127.0.0.1", 3)))["NodeStatus"]; code != codes.Unavailable {
		t.Errorf("dialing retired node 3: NodeStatus %v, want Unavailable (its certificate refused)", code)
	}
}

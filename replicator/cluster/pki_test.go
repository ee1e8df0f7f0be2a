package cluster_test

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/cluster"
)

func newCA(t *testing.T) *cluster.CA {
	t.Helper()
	ca, err := cluster.NewCA("test", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ca
}

func issue(t *testing.T, ca *cluster.CA, name string, number int, hosts ...string) *cluster.Credentials {
	t.Helper()
	key, csr, err := cluster.NewNodeKey(name)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := ca.Sign(csr, cluster.Identity{Name: name, Number: number}, hosts, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := cluster.MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := cluster.LoadCredentials(ca.CertPEM, certPEM, keyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

func TestCertificateCarriesIdentity(t *testing.T) {
	ca := newCA(t)
	creds := issue(t, ca, "mx3", 3, "127.0.0.3", "mx3.example.org")
	if creds.ID != (cluster.Identity{Name: "mx3", Number: 3}) {
		t.Fatalf("identity = %+v", creds.ID)
	}
	leaf := creds.Cert.Leaf
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != "127.0.0.3" {
		t.Errorf("IP SANs = %v", leaf.IPAddresses)
	}
	if len(leaf.DNSNames) != 2 || leaf.DNSNames[1] != "mx3.example.org" {
		t.Errorf("DNS SANs = %v", leaf.DNSNames)
	}
	if got := leaf.URIs[0].String(); got != "lazaret://node/3" {
		t.Errorf("URI SAN = %s", got)
	}
	if d := time.Until(leaf.NotAfter); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("node certificate valid for %v, want a year", d)
	}
	if d := time.Until(ca.Cert.NotAfter); d < 9*365*24*time.Hour {
		t.Errorf("CA valid for %v, want 10 years", d)
	}
	// The CA key round-trips.
	keyPEM, _ := ca.KeyPEM()
	if _, err := cluster.ParseCA(ca.CertPEM, keyPEM); err != nil {
		t.Fatal(err)
	}
}

func TestCredentialsFromAnotherCARefused(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	key, csr, _ := cluster.NewNodeKey("x")
	certPEM, _ := other.Sign(csr, cluster.Identity{Name: "x", Number: 1}, nil, time.Now())
	keyPEM, _ := cluster.MarshalKeyPEM(key)
	if _, err := cluster.LoadCredentials(ca.CertPEM, certPEM, keyPEM, time.Now()); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	if _, err := ca.Sign([]byte("junk"), cluster.Identity{Name: "x", Number: 1}, nil, time.Now()); err == nil {
		t.Fatal("junk CSR signed")
	}
	if _, err := ca.Sign(csr, cluster.Identity{Name: "bad name", Number: 1}, nil, time.Now()); err == nil {
		t.Fatal("bad node name signed")
	}
}

// startPeer serves the peer API (data path unimplemented, Join from a fake)
// on a loopback port.
func startPeer(t *testing.T, creds *cluster.Credentials, join *cluster.JoinService) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := cluster.NewPeerServer(creds, cluster.NewPeerService(nil, join))
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func call(t *testing.T, addr string, cfg *tls.Config) (joinErr, putErr, getErr, statusErr error) {
	t.Helper()
	cc, err := cluster.DialPeer(addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	c := lazaretpb.NewPeerClient(cc)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, joinErr = c.Join(ctx, &lazaretpb.JoinRequest{Name: "new", Token: "wrong", CsrDer: []byte("x")})
	if ps, err := c.PutShard(ctx); err != nil {
		putErr = err
	} else {
		ps.Send(&lazaretpb.PutShardRequest{Part: &lazaretpb.PutShardRequest_Chunk{Chunk: []byte("evil")}})
		_, putErr = ps.CloseAndRecv()
	}
	if gs, err := c.GetShard(ctx, &lazaretpb.GetShardRequest{Id: "x"}); err != nil {
		getErr = err
	} else {
		_, getErr = gs.Recv()
	}
	_, statusErr = c.NodeStatus(ctx, &lazaretpb.NodeStatusRequest{})
	return
}

func TestPeerPortRefusesCallersWithoutCertificate(t *testing.T) {
	ca := newCA(t)
	server := issue(t, ca, "srv", 1, "127.0.0.1")
	join := newJoinFixture(t, ca, server).svc
	addr := startPeer(t, server, join)

	// No client certificate: only Join is served (and refuses the bad token).
	joinErr, putErr, getErr, stErr := call(t, addr, cluster.PinnedTLS(server.CA, "127.0.0.1"))
	if status.Code(joinErr) != codes.PermissionDenied {
		t.Errorf("Join without cert, bad token: %v, want PermissionDenied", joinErr)
	}
	for name, err := range map[string]error{"PutShard": putErr, "GetShard": getErr, "NodeStatus": stErr} {
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s without a certificate: %v, want Unauthenticated", name, err)
		}
	}

	// A member's certificate passes authentication (the data path is not
	// wired in this test, so the methods answer Unimplemented).
	member := issue(t, ca, "m2", 2)
	_, putErr, getErr, stErr = call(t, addr, member.ClientTLS("127.0.0.1", 1))
	for name, err := range map[string]error{"PutShard": putErr, "GetShard": getErr, "NodeStatus": stErr} {
		if status.Code(err) != codes.Unimplemented {
			t.Errorf("%s with a member certificate: %v, want Unimplemented", name, err)
		}
	}

	// A certificate from another CA fails the TLS handshake.
	stranger := issue(t, newCA(t), "evil", 9)
	cfg := cluster.PinnedTLS(server.CA, "127.0.0.1")
	cfg.Certificates = stranger.ClientTLS("", -1).Certificates
	joinErr, putErr, getErr, stErr = call(t, addr, cfg)
	for name, err := range map[string]error{"Join": joinErr, "PutShard": putErr, "GetShard": getErr, "NodeStatus": stErr} {
		if code := status.Code(err); code != codes.Unavailable {
			t.Errorf("%s with a foreign certificate: %v, want Unavailable (handshake failure)", name, err)
		}
	}

	// The client refuses a server that is not the node it dialed.
	_, _, _, stErr = call(t, addr, member.ClientTLS("127.0.0.1", 7))
	if stErr == nil || !strings.Contains(stErr.Error(), "want node 7") {
		t.Errorf("dialing node 7 but reaching node 1: %v", stErr)
	}
}

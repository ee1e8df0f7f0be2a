package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/cluster"
)

// joinCluster is `lazaret join`: admit this node into a running cluster.
// It calls Join on a member's peer port over TLS that trusts only the CA
// given with --ca, presenting the token; the member allocates a node
// number, signs this node's certificate request and hands over the
// cluster's secrets, which are written to DIR/cluster with DIR/lazaret.toml.
func (m *Main) joinCluster(ctx context.Context, args []string) error {
	fs := m.newFlags("join", "")
	f := m.addNodeFlags(fs)
	peer := fs.String("peer", "", "HOST:PORT of a member's peer API, e.g. 10.0.0.1:1027 (required)")
	token := fs.String("token", "", "join token printed by 'lazaret init' or 'lazaret token rotate' (required; or env LAZARET_JOIN_TOKEN)")
	caPath := fs.String("ca", "", "the cluster CA certificate (ca.pem from a member's cluster directory) (required)")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *token == "" {
		*token = m.Getenv("LAZARET_JOIN_TOKEN")
	}
	switch {
	case *peer == "":
		return usagef("--peer is required")
	case *token == "":
		return usagef("--token is required")
	case *caPath == "":
		return usagef("--ca is required")
	}
	if err := f.check(); err != nil {
		return err
	}
	j := &joiner{f: f, peer: *peer, token: strings.TrimSpace(*token), caPath: *caPath}
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, keyPEM, err := j.ask(cctx)
	if err != nil {
		return err
	}
	number, err := j.check(resp, keyPEM)
	if err != nil {
		return err
	}
	if err := j.write(resp, keyPEM, number); err != nil {
		return err
	}
	printBootstrap(m.Stdout, f, number, "", filepath.Join(f.clusterDir(), "ca.pem"))
	return nil
}

// joiner is one `lazaret join`: this node's flags, the member asked and
// the CA it must prove to hold.
type joiner struct {
	f      *nodeFlags
	peer   string
	token  string
	caPath string
	caPEM  []byte
}

// ask sends Join, with a new key's certificate request, to the member over
// TLS pinned to the CA of --ca. It returns the answer and the key.
func (j *joiner) ask(ctx context.Context) (*lazaretpb.JoinResponse, []byte, error) {
	host, _, err := net.SplitHostPort(j.peer)
	if err != nil {
		return nil, nil, usagef("--peer %q: want HOST:PORT", j.peer)
	}
	if j.caPEM, err = os.ReadFile(j.caPath); err != nil {
		return nil, nil, err
	}
	caCert, err := cluster.ParseCertPEM(j.caPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("--ca %s: %w", j.caPath, err)
	}
	if cluster.Dir(j.f.clusterDir()).Exists() {
		return nil, nil, fmt.Errorf("%s already holds a node certificate", j.f.clusterDir())
	}
	key, csr, err := cluster.NewNodeKey(j.f.name)
	if err != nil {
		return nil, nil, err
	}
	keyPEM, err := cluster.MarshalKeyPEM(key)
	if err != nil {
		return nil, nil, err
	}
	pool := (&cluster.CA{Cert: caCert}).Pool()
	cc, err := cluster.DialPeer(j.peer, cluster.PinnedTLS(pool, host))
	if err != nil {
		return nil, nil, err
	}
	defer cc.Close()
	resp, err := lazaretpb.NewPeerClient(cc).Join(ctx, &lazaretpb.JoinRequest{
		Token: j.token, Name: j.f.name, CsrDer: csr, Addresses: []string{j.f.addr},
	})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return nil, nil, fmt.Errorf("join via %s refused: %s (%s)", j.peer, st.Message(), st.Code())
		}
		return nil, nil, fmt.Errorf("join via %s: %w", j.peer, err)
	}
	return resp, keyPEM, nil
}

// check verifies the answer before anything is written: the same CA, a
// usable CA key, and a certificate for this node's name and number. It
// returns the node number.
func (j *joiner) check(resp *lazaretpb.JoinResponse, keyPEM []byte) (int, error) {
	if !bytes.Equal(bytes.TrimSpace(resp.CaPem), bytes.TrimSpace(j.caPEM)) {
		return 0, fmt.Errorf("join via %s: the member returned a different CA than %s", j.peer, j.caPath)
	}
	if _, err := cluster.ParseCA(resp.CaPem, resp.CaKeyPem); err != nil {
		return 0, fmt.Errorf("join via %s: %w", j.peer, err)
	}
	creds, err := cluster.LoadCredentials(resp.CaPem, resp.CertPem, keyPEM, time.Now())
	if err != nil {
		return 0, fmt.Errorf("join via %s: %w", j.peer, err)
	}
	number := int(resp.NodeNumber)
	if creds.ID.Name != j.f.name || creds.ID.Number != number {
		return 0, fmt.Errorf("join via %s: certificate is for %s, want node %d (%s)", j.peer, creds.ID, number, j.f.name)
	}
	return number, nil
}

// write stores the cluster directory and the node's config.
func (j *joiner) write(resp *lazaretpb.JoinResponse, keyPEM []byte, number int) error {
	// Only the token's hash is kept; its real issue time is learned from
	// the cluster when the node starts (the oldest possible time until then).
	state := cluster.TokenState{SHA256: cluster.HashToken(resp.Token), Issued: time.Unix(0, 1).UTC()}
	if err := os.MkdirAll(j.f.dir, 0o750); err != nil {
		return err
	}
	if err := cluster.Dir(j.f.clusterDir()).Write(resp.CaPem, resp.CaKeyPem, resp.CertPem, keyPEM, resp.GossipKey, state, number); err != nil {
		return err
	}
	return j.f.writeNodeConfig(number, resp.Policy, resp.GossipPeers)
}

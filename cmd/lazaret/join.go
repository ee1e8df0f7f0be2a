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
	host, _, err := net.SplitHostPort(*peer)
	if err != nil {
		return usagef("--peer %q: want HOST:PORT", *peer)
	}
	caPEM, err := os.ReadFile(*caPath)
	if err != nil {
		return err
	}
	caCert, err := cluster.ParseCertPEM(caPEM)
	if err != nil {
		return fmt.Errorf("--ca %s: %w", *caPath, err)
	}
	if cluster.Dir(f.clusterDir()).Exists() {
		return fmt.Errorf("%s already holds a node certificate", f.clusterDir())
	}
	key, csr, err := cluster.NewNodeKey(f.name)
	if err != nil {
		return err
	}
	keyPEM, err := cluster.MarshalKeyPEM(key)
	if err != nil {
		return err
	}
	pool := (&cluster.CA{Cert: caCert}).Pool()
	cc, err := cluster.DialPeer(*peer, cluster.PinnedTLS(pool, host))
	if err != nil {
		return err
	}
	defer cc.Close()
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	resp, err := lazaretpb.NewPeerClient(cc).Join(cctx, &lazaretpb.JoinRequest{
		Token: strings.TrimSpace(*token), Name: f.name, CsrDer: csr, Addresses: []string{f.addr},
	})
	if err != nil {
		if st, ok := status.FromError(err); ok {
			return fmt.Errorf("join via %s refused: %s (%s)", *peer, st.Message(), st.Code())
		}
		return fmt.Errorf("join via %s: %w", *peer, err)
	}

	// Check what came back before writing anything.
	if !bytes.Equal(bytes.TrimSpace(resp.CaPem), bytes.TrimSpace(caPEM)) {
		return fmt.Errorf("join via %s: the member returned a different CA than %s", *peer, *caPath)
	}
	if _, err := cluster.ParseCA(resp.CaPem, resp.CaKeyPem); err != nil {
		return fmt.Errorf("join via %s: %w", *peer, err)
	}
	creds, err := cluster.LoadCredentials(resp.CaPem, resp.CertPem, keyPEM, time.Now())
	if err != nil {
		return fmt.Errorf("join via %s: %w", *peer, err)
	}
	number := int(resp.NodeNumber)
	if creds.ID.Name != f.name || creds.ID.Number != number {
		return fmt.Errorf("join via %s: certificate is for %s, want node %d (%s)", *peer, creds.ID, number, f.name)
	}
	// Only the token's hash is kept; its real issue time is learned from
	// the cluster when the node starts (the oldest possible time until then).
	state := cluster.TokenState{SHA256: cluster.HashToken(resp.Token), Issued: time.Unix(0, 1).UTC()}
	if err := os.MkdirAll(f.dir, 0o750); err != nil {
		return err
	}
	if err := cluster.Dir(f.clusterDir()).Write(resp.CaPem, resp.CaKeyPem, resp.CertPem, keyPEM, resp.GossipKey, state, number); err != nil {
		return err
	}
	if err := f.writeNodeConfig(number, resp.Policy, resp.GossipPeers); err != nil {
		return err
	}
	printBootstrap(m.Stdout, f, number, "", filepath.Join(f.clusterDir(), "ca.pem"))
	return nil
}

package cluster

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
)

// Certificate lifetimes.
const (
	// CAValidity is how long the cluster CA is valid.
	CAValidity = 10 * 365 * 24 * time.Hour
	// NodeCertValidity is how long a node certificate is valid.
	NodeCertValidity = 365 * 24 * time.Hour
	// clockSkew back-dates certificates so that a peer whose clock is a
	// little behind accepts them at once.
	clockSkew = 5 * time.Minute
)

// URIScheme and URIHost form the URI SAN that carries a node's number in its
// certificate: lazaret://node/<number>. The node's name is the certificate's
// CommonName.
const (
	URIScheme = "lazaret"
	URIHost   = "node"
)

// Identity is who a node certificate speaks for.
type Identity struct {
	Name   string // the certificate's CommonName
	Number int    // from the lazaret://node/<number> URI SAN
}

// String formats the identity as "node 3 (mx3)".
func (id Identity) String() string { return fmt.Sprintf("node %d (%s)", id.Number, id.Name) }

// NodeURI returns the URI SAN for a node number.
func NodeURI(number int) *url.URL {
	return &url.URL{Scheme: URIScheme, Host: URIHost, Path: "/" + strconv.Itoa(number)}
}

// IdentityOf reads the node identity from a certificate signed by the CA.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	for _, u := range cert.URIs {
		if u.Scheme != URIScheme || u.Host != URIHost {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(u.Path, "/"))
		if err != nil || n < 0 {
			return Identity{}, fmt.Errorf("certificate %q: bad node URI %s", cert.Subject.CommonName, u)
		}
		return Identity{Name: cert.Subject.CommonName, Number: n}, nil
	}
	return Identity{}, fmt.Errorf("certificate %q carries no %s://%s/N URI", cert.Subject.CommonName, URIScheme, URIHost)
}

// CA is the cluster certificate authority. Every node holds its key so that
// any node can admit a joiner.
type CA struct {
	Cert    *x509.Certificate
	Key     *ecdsa.PrivateKey
	CertPEM []byte
}

// NewCA creates a self-signed ECDSA P-256 CA valid for CAValidity.
func NewCA(clusterName string, now time.Time) (*CA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA key: %w", err)
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "lazaret cluster CA " + clusterName, Organization: []string{"lazaret"}},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(CAValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{Cert: cert, Key: key, CertPEM: pemBlock("CERTIFICATE", der)}, nil
}

// ParseCA loads a CA from its PEM certificate and PEM key.
func ParseCA(certPEM, keyPEM []byte) (*CA, error) {
	cert, err := ParseCertPEM(certPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA certificate: %w", err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("cluster: CA certificate %q is not a CA", cert.Subject.CommonName)
	}
	key, err := ParseKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA key: %w", err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, errors.New("cluster: CA key does not match the CA certificate")
	}
	return &CA{Cert: cert, Key: key, CertPEM: certPEM}, nil
}

// KeyPEM encodes the CA key.
func (ca *CA) KeyPEM() ([]byte, error) { return MarshalKeyPEM(ca.Key) }

// Pool returns a certificate pool holding only this CA.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// Sign issues a node certificate for the CSR's public key with the given
// identity and host names or IP addresses (hosts become IP or DNS SANs). The
// CSR's own subject and SANs are ignored: the CA decides who the node is.
func (ca *CA) Sign(csrDER []byte, id Identity, hosts []string, now time.Time) ([]byte, error) {
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		return nil, fmt.Errorf("cluster: certificate request: %w", err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("cluster: certificate request signature: %w", err)
	}
	if _, ok := csr.PublicKey.(*ecdsa.PublicKey); !ok {
		return nil, fmt.Errorf("cluster: certificate request: want an ECDSA key, got %T", csr.PublicKey)
	}
	if err := ValidName(id.Name); err != nil {
		return nil, err
	}
	serial, err := newSerial()
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: id.Name, Organization: []string{"lazaret"}},
		NotBefore:    now.Add(-clockSkew),
		NotAfter:     now.Add(NodeCertValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{NodeURI(id.Number)},
		DNSNames:     []string{id.Name},
	}
	for _, h := range hosts {
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if h != id.Name {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, csr.PublicKey, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("cluster: sign certificate: %w", err)
	}
	return pemBlock("CERTIFICATE", der), nil
}

// ValidName checks a node name: 1..63 characters of [A-Za-z0-9.-], the
// characters serf accepts and a DNS SAN allows.
func ValidName(name string) error {
	if name == "" || len(name) > 63 {
		return fmt.Errorf("cluster: node name %q: want 1..63 characters", name)
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-') {
			return fmt.Errorf("cluster: node name %q: only letters, digits, '.' and '-' are allowed", name)
		}
	}
	return nil
}

// NewNodeKey creates a node's ECDSA P-256 key and a certificate request for
// it (DER) naming the node.
func NewNodeKey(name string) (*ecdsa.PrivateKey, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: node key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{Subject: pkix.Name{CommonName: name}}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("cluster: certificate request: %w", err)
	}
	return key, csr, nil
}

// MarshalKeyPEM encodes an ECDSA key as a PKCS#8 PEM block.
func MarshalKeyPEM(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pemBlock("PRIVATE KEY", der), nil
}

// ParseKeyPEM decodes a PKCS#8 (or SEC 1) ECDSA key.
func ParseKeyPEM(b []byte) (*ecdsa.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	switch blk.Type {
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if err != nil {
			return nil, err
		}
		ek, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("want an ECDSA key, got %T", k)
		}
		return ek, nil
	case "EC PRIVATE KEY":
		return x509.ParseECPrivateKey(blk.Bytes)
	}
	return nil, fmt.Errorf("unexpected PEM block %q", blk.Type)
}

// ParseCertPEM decodes the first certificate of a PEM file.
func ParseCertPEM(b []byte) (*x509.Certificate, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(blk.Bytes)
}

// Credentials is what a node needs for mutual TLS: the CA and its own
// certificate and key.
type Credentials struct {
	CA   *x509.CertPool
	Cert tls.Certificate
	// ID is the identity in Cert.
	ID Identity

	retired atomic.Pointer[retiredHolder]
}

// Retired tells whether a node number was retired (`lazaret node remove`).
// A retired node's certificate is still signed by the CA and still valid
// in time, but it no longer speaks for a member: node numbers are never
// issued twice (Numbers), so refusing the number refuses every
// certificate that node ever had, and no other. The replicator keeps the
// retired set, persists it in each node's data directory and spreads it
// to every member by anti-entropy (replicator.Node.IsRetired).
type Retired interface {
	IsRetired(number int) bool
}

type retiredHolder struct{ r Retired }

// SetRetired makes every TLS configuration made from c (both directions)
// and the peer server's per-call check refuse certificates of numbers r
// reports retired. It may be called while connections are being made.
func (c *Credentials) SetRetired(r Retired) {
	c.retired.Store(&retiredHolder{r: r})
}

// checkRetired fails if the certificate's node was retired.
func (c *Credentials) checkRetired(id Identity) error {
	if h := c.retired.Load(); h != nil && h.r != nil && h.r.IsRetired(id.Number) {
		return fmt.Errorf("%s was retired (lazaret node remove); its certificate is refused", id)
	}
	return nil
}

// LoadCredentials parses the CA certificate and the node's certificate and
// key, checking that the certificate was issued by the CA.
func LoadCredentials(caPEM, certPEM, keyPEM []byte, now time.Time) (*Credentials, error) {
	caCert, err := ParseCertPEM(caPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: CA certificate: %w", err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("cluster: node certificate: %w", err)
	}
	leaf := pair.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(pair.Certificate[0]); err != nil {
			return nil, err
		}
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("cluster: node certificate %q: %w", leaf.Subject.CommonName, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, err
	}
	return &Credentials{CA: pool, Cert: pair, ID: id}, nil
}

// ServerTLS returns the peer port's TLS configuration: TLS 1.3, the node's
// certificate, and client certificates verified against the cluster CA when
// given. A client certificate is optional at the TLS layer only so that a
// new node can call Join; the interceptor in NewPeerServer refuses every
// other method without one.
//
// A client certificate of a retired node fails the handshake; the peer
// server also checks every call (NewPeerServer), so a connection made
// before the retirement is refused from then on too.
func (c *Credentials) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{c.Cert},
		ClientAuth:   tls.VerifyClientCertIfGiven,
		ClientCAs:    c.CA,
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
				return nil // no certificate: only Join is served (authorize)
			}
			id, err := IdentityOf(cs.VerifiedChains[0][0])
			if err != nil {
				return err
			}
			return c.checkRetired(id)
		},
	}
}

// ClientTLS returns the TLS configuration for dialing a peer: TLS 1.3, the
// node's certificate, the cluster CA as the only root, serverName checked
// against the peer's IP/DNS SANs. When wantNumber >= 0 the peer's
// certificate must also carry that node number. A server whose
// certificate is a retired node's is refused.
func (c *Credentials) ClientTLS(serverName string, wantNumber int) *tls.Config {
	cfg := PinnedTLS(c.CA, serverName)
	cfg.Certificates = []tls.Certificate{c.Cert}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return errors.New("peer sent no certificate")
		}
		id, err := IdentityOf(cs.PeerCertificates[0])
		if err != nil {
			if wantNumber < 0 {
				return nil
			}
			return err
		}
		if wantNumber >= 0 && id.Number != wantNumber {
			return fmt.Errorf("peer at %s is %s, want node %d", serverName, id, wantNumber)
		}
		return c.checkRetired(id)
	}
	return cfg
}

// PinnedTLS returns a client TLS configuration that trusts only ca and
// presents no certificate (what `lazaret join` uses before it has one).
func PinnedTLS(ca *x509.CertPool, serverName string) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: ca, ServerName: serverName}
}

// PeerIdentity returns the verified identity of the gRPC caller, if it
// presented a certificate from the cluster CA.
func PeerIdentity(ctx context.Context) (Identity, bool) {
	p, ok := peer.FromContext(ctx)
	if !ok || p.AuthInfo == nil {
		return Identity{}, false
	}
	ti, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(ti.State.VerifiedChains) == 0 || len(ti.State.VerifiedChains[0]) == 0 {
		return Identity{}, false
	}
	id, err := IdentityOf(ti.State.VerifiedChains[0][0])
	if err != nil {
		return Identity{}, false
	}
	return id, true
}

func newSerial() (*big.Int, error) {
	s, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, fmt.Errorf("cluster: serial number: %w", err)
	}
	return s, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

package cluster

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret/internal/durable"
)

// Dir is a node's cluster directory. It holds (modes in brackets):
//
//	ca.pem          cluster CA certificate              [0644]
//	ca-key.pem      cluster CA key (every node admits)  [0600]
//	node.pem        this node's certificate             [0644]
//	node-key.pem    this node's key                     [0600]
//	gossip.key      serf keyring key, base64            [0600]
//	token.json      join token state (hash only)        [0600]
//	numbers         highest node number ever allocated  [0600]
type Dir string

// Paths of the files in a cluster directory.
func (d Dir) CAPath() string        { return filepath.Join(string(d), "ca.pem") }
func (d Dir) CAKeyPath() string     { return filepath.Join(string(d), "ca-key.pem") }
func (d Dir) CertPath() string      { return filepath.Join(string(d), "node.pem") }
func (d Dir) KeyPath() string       { return filepath.Join(string(d), "node-key.pem") }
func (d Dir) GossipKeyPath() string { return filepath.Join(string(d), "gossip.key") }
func (d Dir) TokenPath() string     { return filepath.Join(string(d), "token.json") }
func (d Dir) NumbersPath() string   { return filepath.Join(string(d), "numbers") }

// Exists reports whether the directory already holds a node certificate.
func (d Dir) Exists() bool {
	_, err := os.Stat(d.CertPath())
	return err == nil
}

// LoadCA reads the cluster CA with its key.
func (d Dir) LoadCA() (*CA, error) {
	cert, err := os.ReadFile(d.CAPath())
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	key, err := os.ReadFile(d.CAKeyPath())
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	return ParseCA(cert, key)
}

// LoadCredentials reads the CA certificate and this node's certificate and key.
func (d Dir) LoadCredentials(now time.Time) (*Credentials, error) {
	var b [3][]byte
	for i, p := range []string{d.CAPath(), d.CertPath(), d.KeyPath()} {
		var err error
		if b[i], err = os.ReadFile(p); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	return LoadCredentials(b[0], b[1], b[2], now)
}

// LoadGossipKey reads the gossip key.
func (d Dir) LoadGossipKey() ([]byte, error) {
	b, err := os.ReadFile(d.GossipKeyPath())
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(b)))
	if err != nil || (len(k) != 16 && len(k) != 24 && len(k) != 32) {
		return nil, fmt.Errorf("cluster: %s: want a base64 16, 24 or 32 byte key", d.GossipKeyPath())
	}
	return k, nil
}

// NewGossipKey returns a random 32-byte gossip key (AES-256-GCM).
func NewGossipKey() ([]byte, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("cluster: gossip key: %w", err)
	}
	return k, nil
}

// Write stores the files of a node's identity and cluster secrets, creating
// the directory (mode 0700). It refuses to overwrite an existing node
// certificate.
func (d Dir) Write(caPEM, caKeyPEM, certPEM, keyPEM, gossipKey []byte, token TokenState, highest int) error {
	if d.Exists() {
		return fmt.Errorf("cluster: %s already holds a node certificate; refusing to overwrite it", d)
	}
	if err := os.MkdirAll(string(d), 0o700); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	files := []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{d.CAPath(), caPEM, 0o644},
		{d.CAKeyPath(), caKeyPEM, 0o600},
		{d.KeyPath(), keyPEM, 0o600},
		{d.GossipKeyPath(), []byte(base64.StdEncoding.EncodeToString(gossipKey) + "\n"), 0o600},
		{d.NumbersPath(), []byte(strconv.Itoa(highest) + "\n"), 0o600},
	}
	for _, f := range files {
		if err := writeFileAtomic(f.path, f.data, f.mode); err != nil {
			return err
		}
	}
	if err := WriteTokenState(d.TokenPath(), token); err != nil {
		return err
	}
	// The certificate last: its presence marks the directory complete.
	return writeFileAtomic(d.CertPath(), certPEM, 0o644)
}

// writeFileAtomic writes data to path durably (see package durable).
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	if err := durable.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

// Numbers is the persisted high-water mark of node numbers: the highest
// number this node has ever allocated or seen. Allocation never goes below
// it, so a number is never handed out twice by the same node, even after
// the node it went to has left and been reaped from gossip.
type Numbers struct {
	path string
	mu   sync.Mutex
	max  int
}

// OpenNumbers reads the mark at path (0 if the file does not exist).
func OpenNumbers(path string) (*Numbers, error) {
	n := &Numbers{path: path}
	b, err := os.ReadFile(path)
	switch {
	case os.IsNotExist(err):
		return n, nil
	case err != nil:
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if n.max, err = strconv.Atoi(strings.TrimSpace(string(b))); err != nil {
		return nil, fmt.Errorf("cluster: %s is damaged: %q", path, b)
	}
	return n, nil
}

// Max returns the mark.
func (n *Numbers) Max() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.max
}

// Observe raises the mark to num if higher, persisting it.
func (n *Numbers) Observe(num int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.observeLocked(num)
}

func (n *Numbers) observeLocked(num int) error {
	if num <= n.max {
		return nil
	}
	if err := writeFileAtomic(n.path, []byte(strconv.Itoa(num)+"\n"), 0o600); err != nil {
		return err
	}
	n.max = num
	return nil
}

// Allocate returns max(mark, seen...) + 1 and persists it as the new mark
// before returning, so a crash cannot hand it out again.
func (n *Numbers) Allocate(seen []int, limit int) (int, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	next := n.max
	for _, s := range seen {
		next = max(next, s)
	}
	next++
	if next > limit {
		return 0, fmt.Errorf("cluster: no node number left (next would be %d, limit %d)", next, limit)
	}
	if err := n.observeLocked(next); err != nil {
		return 0, err
	}
	return next, nil
}

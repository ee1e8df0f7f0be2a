package cluster

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Join tokens.
//
// A token is 32 random bytes written "lzt_" + base32. Nodes never store a
// token, only its SHA-256 (TokenState, the file Dir.TokenPath, mode 0600),
// with the time it was issued. `lazaret token rotate` writes a new state
// into the local node's file and prints the token once. The running node
// notices the file changed (WatchTokens polls it) and broadcasts a serf user
// event "lz-token" carrying "<issued unix ns> <sha256 hex>" (~85 bytes, well
// under serf's 512-byte limit); every node that receives a newer state than
// its own writes it to its file. A node that was down during a rotation and
// missed the event is covered at join time: the Join handler asks all alive
// members for their state with a serf query "lz-token" and accepts only the
// newest hash it hears, adopting it. The newest state wins by issue time, so
// clocks only need to be correct to well within the time between two
// rotations.

// TokenEvent is the serf user event and query name for join tokens.
const TokenEvent = "lz-token"

// ErrBadToken is the answer to a join with a wrong or rotated-out token.
var ErrBadToken = errors.New("cluster: join token is not valid (wrong, or rotated out)")

// TokenState is what a node keeps of the current join token.
type TokenState struct {
	SHA256 string    `json:"sha256"` // hex SHA-256 of the token
	Issued time.Time `json:"issued"` // when it was issued; the newest wins
}

// NewToken returns a fresh random join token and its state.
func NewToken(now time.Time) (string, TokenState, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", TokenState{}, fmt.Errorf("cluster: join token: %w", err)
	}
	tok := "lzt_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
	return tok, TokenState{SHA256: HashToken(tok), Issued: now.UTC()}, nil
}

// HashToken returns the hex SHA-256 of a token.
func HashToken(tok string) string {
	s := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return hex.EncodeToString(s[:])
}

// Matches reports whether tok is this state's token, in constant time.
func (s TokenState) Matches(tok string) bool {
	h := HashToken(tok)
	return s.SHA256 != "" && subtle.ConstantTimeCompare([]byte(h), []byte(s.SHA256)) == 1
}

// Newer reports whether s was issued after o.
func (s TokenState) Newer(o TokenState) bool { return s.Issued.After(o.Issued) }

// encode formats the state as a gossip payload.
func (s TokenState) encode() []byte {
	return []byte(strconv.FormatInt(s.Issued.UnixNano(), 10) + " " + s.SHA256)
}

func decodeTokenState(b []byte) (TokenState, error) {
	ts, h, ok := strings.Cut(string(b), " ")
	n, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || len(h) != 64 {
		return TokenState{}, fmt.Errorf("cluster: bad token state %q", b)
	}
	if _, err := hex.DecodeString(h); err != nil {
		return TokenState{}, fmt.Errorf("cluster: bad token state %q", b)
	}
	return TokenState{SHA256: h, Issued: time.Unix(0, n).UTC()}, nil
}

// ReadTokenState reads a token state file.
func ReadTokenState(path string) (TokenState, error) {
	var s TokenState
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("cluster: join token: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil || len(s.SHA256) != 64 {
		return s, fmt.Errorf("cluster: join token file %s is damaged", path)
	}
	return s, nil
}

// WriteTokenState writes a token state file atomically (mode 0600).
func WriteTokenState(path string, s TokenState) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'), 0o600)
}

// Tokens keeps the node's join token state, in memory and in its file.
type Tokens struct {
	path string
	mu   sync.Mutex
	cur  TokenState
	mod  time.Time // file modification time last read
}

// OpenTokens reads the token state at path.
func OpenTokens(path string) (*Tokens, error) {
	t := &Tokens{path: path}
	if _, err := t.Reload(); err != nil {
		return nil, err
	}
	return t, nil
}

// Current returns the state this node holds.
func (t *Tokens) Current() TokenState {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.cur
}

// Reload re-reads the file if it changed and reports whether the state
// changed to a newer one.
func (t *Tokens) Reload() (bool, error) {
	fi, err := os.Stat(t.path)
	if err != nil {
		return false, fmt.Errorf("cluster: join token: %w", err)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if fi.ModTime().Equal(t.mod) && t.cur.SHA256 != "" {
		return false, nil
	}
	s, err := ReadTokenState(t.path)
	if err != nil {
		return false, err
	}
	t.mod = fi.ModTime()
	if s.SHA256 == t.cur.SHA256 || (t.cur.SHA256 != "" && !s.Newer(t.cur)) {
		return false, nil
	}
	t.cur = s
	return true, nil
}

// Adopt stores s if it is newer than the current state, and reports
// whether it did.
func (t *Tokens) Adopt(s TokenState) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !s.Newer(t.cur) {
		return false, nil
	}
	if err := WriteTokenState(t.path, s); err != nil {
		return false, err
	}
	t.cur = s
	if fi, err := os.Stat(t.path); err == nil {
		t.mod = fi.ModTime()
	}
	return true, nil
}

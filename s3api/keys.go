package s3api

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Role is what a key may do.
type Role string

// Roles.
const (
	// RoleRead lists and reads (backups).
	RoleRead Role = "read"
	// RoleReadWrite also puts (restores) and deletes.
	RoleReadWrite Role = "readwrite"
)

// ParseRole accepts "read" and "readwrite".
func ParseRole(s string) (Role, error) {
	switch Role(s) {
	case RoleRead, RoleReadWrite:
		return Role(s), nil
	}
	return "", fmt.Errorf("s3 key role %q: want read or readwrite", s)
}

// Key is one access key. SigV4 needs the secret itself to check a
// signature, so it cannot be stored as a one-way hash; the key file keeps
// it encrypted (KeyFile).
type Key struct {
	Name      string `json:"name"`
	AccessKey string `json:"access_key"`
	Secret    string `json:"-"`
	Role      Role   `json:"role"`
}

// KeyLookup finds a key by its access key id.
type KeyLookup interface {
	Lookup(accessKey string) (Key, bool)
}

// StaticKeys is a fixed set of keys (from the config file).
type StaticKeys []Key

// Lookup implements KeyLookup.
func (s StaticKeys) Lookup(ak string) (Key, bool) {
	for _, k := range s {
		if k.AccessKey == ak {
			return k, true
		}
	}
	return Key{}, false
}

// Keys looks keys up in each of several sources, in order.
type Keys []KeyLookup

// Lookup implements KeyLookup.
func (ks Keys) Lookup(ak string) (Key, bool) {
	for _, k := range ks {
		if k == nil {
			continue
		}
		if key, ok := k.Lookup(ak); ok {
			return key, true
		}
	}
	return Key{}, false
}

// KeyFile is a JSON file of access keys whose secrets are sealed with
// AES-256-GCM under a 32-byte master key kept in a separate file
// (PATH.master, mode 0600, created on first use). Copying the key file
// alone reveals no secret. The file is re-read when it changes, so keys
// created with `lazaret s3 key create` work without a restart.
type KeyFile struct {
	path string

	mu    sync.Mutex
	mtime time.Time
	keys  StaticKeys
}

type sealedKey struct {
	Key
	Sealed  string    `json:"secret_sealed"` // base64(nonce || AES-GCM ciphertext)
	Created time.Time `json:"created"`
}

// OpenKeyFile returns the key file at path (which need not exist yet).
func OpenKeyFile(path string) *KeyFile { return &KeyFile{path: path} }

// Path is the key file's path.
func (f *KeyFile) Path() string { return f.path }

func (f *KeyFile) masterPath() string { return f.path + ".master" }

func (f *KeyFile) master(create bool) (cipher.AEAD, error) {
	b, err := os.ReadFile(f.masterPath())
	if errors.Is(err, os.ErrNotExist) && create {
		b = make([]byte, 32)
		rand.Read(b)
		if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
			return nil, err
		}
		if err := writeFileSync(f.masterPath(), b, 0o600); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("s3 key file: master key: %w", err)
	}
	if len(b) != 32 {
		return nil, fmt.Errorf("s3 key file: master key %s is not 32 bytes", f.masterPath())
	}
	blk, err := aes.NewCipher(b)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(blk)
}

func (f *KeyFile) read() ([]sealedKey, error) {
	b, err := os.ReadFile(f.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("s3 key file: %w", err)
	}
	var ks []sealedKey
	if err := json.Unmarshal(b, &ks); err != nil {
		return nil, fmt.Errorf("s3 key file %s: %w", f.path, err)
	}
	return ks, nil
}

// Load reads and decrypts every key.
func (f *KeyFile) Load() (StaticKeys, error) {
	sealed, err := f.read()
	if err != nil || len(sealed) == 0 {
		return nil, err
	}
	aead, err := f.master(false)
	if err != nil {
		return nil, err
	}
	var out StaticKeys
	for _, s := range sealed {
		raw, err := base64.StdEncoding.DecodeString(s.Sealed)
		if err != nil || len(raw) < aead.NonceSize() {
			return nil, fmt.Errorf("s3 key file: key %s: bad sealed secret", s.AccessKey)
		}
		pt, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(s.AccessKey))
		if err != nil {
			return nil, fmt.Errorf("s3 key file: key %s: cannot decrypt (wrong master key?)", s.AccessKey)
		}
		k := s.Key
		k.Secret = string(pt)
		out = append(out, k)
	}
	return out, nil
}

// Lookup implements KeyLookup, re-reading the file when it changed.
func (f *KeyFile) Lookup(ak string) (Key, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if fi, err := os.Stat(f.path); err == nil && !fi.ModTime().Equal(f.mtime) {
		if ks, err := f.Load(); err == nil {
			f.keys, f.mtime = ks, fi.ModTime()
		}
	}
	return f.keys.Lookup(ak)
}

// Create adds a new key named name with role and returns it, secret
// included (shown once; only the sealed form is stored).
func (f *KeyFile) Create(name string, role Role, now time.Time) (Key, error) {
	if name == "" || strings.ContainsAny(name, " \t\n") {
		return Key{}, fmt.Errorf("s3 key: name %q must be non-empty without spaces", name)
	}
	sealed, err := f.read()
	if err != nil {
		return Key{}, err
	}
	for _, s := range sealed {
		if s.Name == name {
			return Key{}, fmt.Errorf("s3 key: a key named %q exists already", name)
		}
	}
	aead, err := f.master(true)
	if err != nil {
		return Key{}, err
	}
	k := Key{Name: name, AccessKey: "LZ" + randomString(18, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), Secret: randomString(40, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"), Role: role}
	nonce := make([]byte, aead.NonceSize())
	rand.Read(nonce)
	ct := aead.Seal(nonce, nonce, []byte(k.Secret), []byte(k.AccessKey))
	sealed = append(sealed, sealedKey{Key: k, Sealed: base64.StdEncoding.EncodeToString(ct), Created: now.UTC()})
	b, err := json.MarshalIndent(sealed, "", "  ")
	if err != nil {
		return Key{}, err
	}
	if err := writeFileSync(f.path, append(b, '\n'), 0o600); err != nil {
		return Key{}, err
	}
	return k, nil
}

func randomString(n int, alphabet string) string {
	b := make([]byte, n)
	rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}

// writeFileSync replaces path atomically with data, fsync'd.
func writeFileSync(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConfigS3 checks the [s3] table's rules and `lazaret s3 key create`.
func TestConfigS3(t *testing.T) {
	for text, want := range map[string]string{
		"[s3]\nlisten = \"0.0.0.0:9000\"\n":                                                                                     "plain HTTP only on a loopback address",
		"[s3]\nlisten = \"127.0.0.1:9000\"\ncert = \"c.pem\"\n":                                                                 "give both or neither",
		"[s3]\nlisten = \"127.0.0.1:9000\"\nbucket = \"Bad_Name\"\n":                                                            "s3 bucket",
		"[s3]\nlisten = \"127.0.0.1:9000\"\n[[s3.keys]]\naccess_key = \"A\"\nsecret = \"short\"\n":                              "secret of at least 16",
		"[s3]\nlisten = \"127.0.0.1:9000\"\n[[s3.keys]]\naccess_key = \"A\"\nsecret = \"0123456789abcdef\"\nrole = \"admin\"\n": "want read or readwrite",
	} {
		if _, err := LoadConfig(writeConfig(t, text)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error containing %q", text, err, want)
		}
	}
	dir := t.TempDir()
	path := writeConfig(t, "[store]\ndata = \""+filepath.Join(dir, "data")+"\"\n[s3]\nlisten = \"127.0.0.1:9000\"\n")
	var out bytes.Buffer
	m := NewMain(strings.NewReader(""), &out, &out)
	if code := m.Run(context.Background(), []string{"s3", "key", "create", "--config", path, "--name", "backup", "--read-only"}); code != 0 {
		t.Fatalf("s3 key create: %d %s", code, out.String())
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := cfg.s3Keys()
	if err != nil {
		t.Fatal(err)
	}
	ak := strings.Fields(strings.SplitN(out.String(), "access key:", 2)[1])[0]
	k, ok := keys.Lookup(ak)
	if !ok || k.Role != "read" || k.Name != "backup" || !strings.Contains(out.String(), k.Secret) {
		t.Fatalf("created key %+v not found as printed:\n%s", k, out.String())
	}
	if stored, err := os.ReadFile(cfg.s3KeysFile()); err != nil || bytes.Contains(stored, []byte(k.Secret)) {
		t.Fatalf("key file holds the secret in the clear (or is unreadable: %v)", err)
	}
	if code := m.Run(context.Background(), []string{"s3", "key", "create", "--config", path, "--name", "backup"}); code == 0 {
		t.Fatal("a second key with the same name was created")
	}
}

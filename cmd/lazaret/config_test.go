package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeConfig writes text as a config file in a temporary directory.
func writeConfig(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "lazaret.toml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadConfigRefusesNamingTheKey(t *testing.T) {
	for _, tc := range []struct {
		name, text string
		want       []string // substrings of the error
	}{
		{"unknown key", "[node]\nnumbr = 3\n", []string{"unknown key", "node.numbr"}},
		{"unknown table", "[nodes]\nnumber = 3\n", []string{"unknown key", "nodes"}},
		{"negative days", "[retention]\ndays = -1\n", []string{"retention.days"}},
		{"bad duration", "[retention]\ninterval = \"soon\"\n", []string{"retention.interval", "soon"}},
		{"bad size", "[store]\nmax_message_size = \"lots\"\n", []string{"store.max_message_size", "lots"}},
		{"wrong type", "[node]\nnumber = \"three\"\n", []string{"node.number"}},
		{"node out of range", "[node]\nnumber = 99999\n", []string{"node.number"}},
		{"bad id format", "[node]\nid_format = \"exim99\"\n", []string{"node.id_format"}},
		{"bad socket mode", "[api]\nsocket_mode = \"rwx\"\n", []string{"api.socket_mode"}},
		{"bad log level", "[log]\nlevel = \"loud\"\n", []string{"log.level"}},
		{"bad learn timeout", "[learn]\ntimeout = \"0s\"\n", []string{"learn.timeout"}},
		{"syntax", "[node\nnumber = 1\n", []string{"line 1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := writeConfig(t, tc.text)
			_, err := LoadConfig(path)
			if err == nil {
				t.Fatalf("LoadConfig(%q) succeeded, want an error", tc.text)
			}
			msg := err.Error()
			if strings.Contains(msg, "\n") {
				t.Errorf("error is not one line: %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if !strings.Contains(msg, path) {
				t.Errorf("error %q does not name the file", msg)
			}
		})
	}
}

func TestLoadConfigGoodFile(t *testing.T) {
	path := writeConfig(t, `
[node]
number = 7
name = "mx7"
id_format = "exim23"

[store]
data = "/srv/lazaret"
max_message_size = "10MiB"

[api]
socket = "/run/lz/api.sock"
socket_mode = "0600"
socket_group = "mail"

[retention]
days = 14
interval = "90s"

[learn]
spam = ["sa-learn", "--spam"]
ham = ["sa-learn", "--ham"]
timeout = "20s"

[log]
level = "debug"
format = "json"
`)
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("LoadConfig: %v", err)
	}
	want := DefaultConfig()
	want.Node = NodeConfig{Number: 7, Name: "mx7", IDFormat: "exim23"}
	want.Store = StoreConfig{Data: "/srv/lazaret", MaxMessageSize: 10 << 20}
	want.API = APIConfig{Socket: "/run/lz/api.sock", SocketMode: "0600", SocketGroup: "mail"}
	want.Retention = RetentionConfig{Days: 14, Interval: Duration(90 * time.Second)}
	want.Learn = LearnConfig{Spam: []string{"sa-learn", "--spam"}, Ham: []string{"sa-learn", "--ham"}, Timeout: Duration(20 * time.Second)}
	want.Log = LogConfig{Level: "debug", Format: "json"}
	if !equalConfig(cfg, want) {
		t.Errorf("LoadConfig =\n%+v\nwant\n%+v", cfg, want)
	}
	rc := cfg.replicatorConfig()
	if rc.NodeNumber != 7 || rc.MaxMessageSize != 10<<20 || rc.Retention != 14*24*time.Hour ||
		rc.RetentionInterval != 90*time.Second || rc.LearnTimeout != 20*time.Second {
		t.Errorf("replicatorConfig = %+v", rc)
	}
	if err := rc.Validate(); err != nil {
		t.Errorf("replicatorConfig().Validate: %v", err)
	}
}

func TestLoadConfigEmptyFileIsDefaults(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, "# nothing\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !equalConfig(cfg, DefaultConfig()) {
		t.Errorf("empty file: %+v, want defaults %+v", cfg, DefaultConfig())
	}
}

func TestLoadConfigMissingFile(t *testing.T) {
	_, err := LoadConfig(filepath.Join(t.TempDir(), "nope.toml"))
	if err == nil || !strings.Contains(err.Error(), "nope.toml") {
		t.Fatalf("LoadConfig of a missing file: %v, want an error naming it", err)
	}
}

func equalConfig(a, b Config) bool {
	return a.Node == b.Node && a.Store == b.Store && a.API == b.API && a.Retention == b.Retention &&
		a.Log == b.Log && a.Learn.Timeout == b.Learn.Timeout &&
		strings.Join(a.Learn.Spam, "\x00") == strings.Join(b.Learn.Spam, "\x00") &&
		strings.Join(a.Learn.Ham, "\x00") == strings.Join(b.Learn.Ham, "\x00")
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{
		"0": 0, "123": 123, "64MiB": 64 << 20, "64mib": 64 << 20, "10MB": 10e6, "1 GiB": 1 << 30,
		"4k": 4 << 10, "2KB": 2000, "7b": 7,
	} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{"", "lots", "-1", "1.5MiB", "MiB", "99999999999GiB"} {
		if got, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) = %d, want an error", in, got)
		}
	}
}

func TestConfigClusterTuning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.toml")
	if err := os.WriteFile(path, []byte("[cluster]\nanti_entropy_interval = \"3s\"\nrepair_rate = \"0\"\nstraggler_grace = \"500ms\"\nspool_dir = \"/var/tmp\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	rc := cfg.replicatorConfig()
	if rc.Cluster.AntiEntropy.Interval != 3*time.Second || rc.Cluster.AntiEntropy.RepairRate != -1 ||
		rc.Cluster.StragglerGrace != 500*time.Millisecond || rc.Cluster.SpoolDir != "/var/tmp" {
		t.Errorf("cluster tuning not applied: %+v", rc.Cluster)
	}
	if err := os.WriteFile(path, []byte("[cluster]\nrepair_rate = \"fast\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadConfig(path); err == nil || !strings.Contains(err.Error(), "cluster.repair_rate") {
		t.Errorf("bad repair_rate: error %v does not name cluster.repair_rate", err)
	}
}

package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/fuse"
)

func TestFUSEConfig(t *testing.T) {
	cfg, err := LoadConfig(writeConfig(t, `
[fuse]
mountpoint = "/var/spool/MailScanner/quarantine"
time_zone = "Europe/Berlin"
user = "0"
group = "0"
permissions = "0644"
entry_timeout = "2s"
list_ttl = "3s"
allow_other = false
[fuse.places]
highspam = "mcp"
policy = "dir"
`))
	if err != nil {
		t.Fatal(err)
	}
	fc, err := cfg.fuseConfig(slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if fc.Location.String() != "Europe/Berlin" || fc.Mode != 0o644 || fc.EntryTimeout != 2*time.Second || fc.ListTTL != 3*time.Second || fc.AttrTimeout != time.Second || fc.AllowOther {
		t.Fatalf("fuse config %+v", fc)
	}
	if fc.Places[lazaret.VerdictHighSpam] != fuse.PlaceMCP || fc.Places[lazaret.VerdictPolicy] != fuse.PlaceDir || fc.Places[lazaret.VerdictSpam] != fuse.PlaceSpam {
		t.Fatalf("places %v", fc.Places)
	}
	// Written files get the first verdict shown in their place.
	if fc.Verdicts[fuse.PlaceMCP] != lazaret.VerdictHighSpam || fc.Verdicts[fuse.PlaceDir] != lazaret.VerdictPolicy {
		t.Fatalf("verdicts %v", fc.Verdicts)
	}

	for text, key := range map[string]string{
		"[fuse]\ntime_zone = \"Mars/Olympus\"\n": "fuse.time_zone",
		"[fuse]\npermissions = \"rw\"\n":         "fuse.permissions",
		"[fuse]\nuser = \"no-such-user-here\"\n": "fuse.user",
		"[fuse.places]\nspam = \"trash\"\n":      "fuse.places.spam",
		"[fuse.places]\nham = \"spam\"\n":        "fuse.places",
		"[fuse]\nentry_timeout = \"-1s\"\n":      "fuse.entry_timeout",
		"[fuse]\nmount_point = \"/x\"\n":         "fuse.mount_point",
	} {
		_, err := LoadConfig(writeConfig(t, text))
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Errorf("%q: %v, want an error naming %s", text, err, key)
		}
	}
}

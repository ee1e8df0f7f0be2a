package main

import (
	"strings"
	"testing"

	"github.com/pelletier/go-toml/v2"
)

// FuzzParseConfig feeds arbitrary text to the config parser. It must not
// panic; a refused file gets an error naming the file; an accepted one
// yields configurations every package accepts (an accepted file never
// fails later at start-up for a reason the parser could have seen), and
// it survives a round trip through TOML unchanged.
func FuzzParseConfig(f *testing.F) {
	for _, s := range []string{
		"",
		"[node]\nnumber = 7\nname = \"mx7\"\nid_format = \"exim23\"\n[store]\ndata = \"/srv\"\nmax_message_size = \"10MiB\"\n",
		"[retention]\ndays = 14\ninterval = \"90s\"\n[learn]\nspam = [\"sa-learn\", \"--spam\"]\ntimeout = \"20s\"\n[log]\nlevel = \"debug\"\nformat = \"json\"\n",
		"[cluster]\nenabled = true\npeer_listen = \"10.0.0.2:1027\"\ngossip_listen = \"10.0.0.2:7946\"\nadvertise = \"10.0.0.2\"\njoin = [\"10.0.0.1:7946\"]\ndir = \"/etc/lazaret/cluster\"\npolicy = \"3+2\"\nwrite_quorum = 4\nrepair_rate = \"50MB\"\nstraggler_grace = \"2s\"\n",
		"[smtp]\nenabled = true\nlisten = \"127.0.0.1:10026\"\nmax_recipients = 10\ntrusted_proxies = [\"10.0.0.0/8\"]\n[[smtp.users]]\nname = \"mta\"\npassword = \"x\"\n[[smtp.header_rules]]\nheader = \"X-Acme\"\nvalue = '^spam (?P<score>[0-9.]+)'\nverdict = \"spam\"\n",
		"[release]\nrelay = \"127.0.0.1:25\"\nconnect_timeout = \"30s\"\n[index]\npostgres = \"postgres://u:p@h/db\"\npool_size = 4\n[http]\nlisten = \"127.0.0.1:9127\"\n[health]\nmin_free_disk = \"1GiB\"\nmax_under_protected = -1\n",
		"[node]\nnumber = -1\n",
		"[api]\nsocket_mode = \"0999\"\n",
		"[store]\nmax_message_size = \"1e400\"\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig(data, "fuzz.toml")
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config fuzz.toml: ") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if rc := cfg.replicatorConfig(); rc.Validate() != nil {
			err := rc.Validate()
			t.Fatalf("accepted config gives an invalid replicator config: %v\n%s", err, data)
		}
		if sc := cfg.smtpfilterConfig(); cfg.SMTP.Enabled && sc.Validate() != nil {
			err := sc.Validate()
			t.Fatalf("accepted config gives an invalid SMTP config: %v\n%s", err, data)
		}
		_ = cfg.relayConfig()
		_ = cfg.feederConfig()
		out, err := toml.Marshal(cfg)
		if err != nil {
			t.Fatalf("accepted config does not encode: %v", err)
		}
		again, err := ParseConfig(out, "round-trip")
		if err != nil {
			t.Fatalf("accepted config refused after a round trip: %v\n%s\nre-encoded:\n%s", err, data, out)
		}
		// Compared by their encodings: a nil and an empty list are the
		// same configuration.
		if out2, err := toml.Marshal(again); err != nil || string(out2) != string(out) {
			t.Fatalf("round trip changed the config (%v):\n%s\nbecame\n%s", err, out, out2)
		}
	})
}

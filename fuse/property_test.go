package fuse

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/lazaret/lazaret"
)

// waitGone waits up to 2 s for path to stop existing.
func waitGone(t *rapid.T, path string) {
	for deadline := time.Now().Add(2 * time.Second); ; time.Sleep(time.Millisecond) {
		if _, err := os.Lstat(path); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still exists 2 s after closing it empty", path)
		}
	}
}

// TestPropertyAgainstModel runs random sequences of create/write/close,
// unlink, readdir and read in one kind directory and checks every result
// against a model: a map from name to bytes.
func TestPropertyAgainstModel(t *testing.T) {
	if flag.Lookup("rapid.checks").Value.String() == "100" { // not set on the command line
		checks := "50"
		if raceEnabled {
			checks = "20"
		}
		flag.Set("rapid.checks", checks)
	}
	f := newFixture(t, nil)
	spam := filepath.Join(f.mkdirs(), "spam")
	used := map[string]bool{} // ids ever stored, across runs
	serial := 0
	pool := make([]string, 8)
	for i := range pool {
		pool[i] = fmt.Sprintf("1wShJQ-0000P%d-07", i)
	}
	rapid.Check(t, func(rt *rapid.T) {
		model := map[string][]byte{}
		for _, n := range readdir(t, spam) {
			b, err := os.ReadFile(filepath.Join(spam, n))
			if err != nil {
				rt.Fatal(err)
			}
			model[n] = b
		}
		names := func() []string {
			var out []string
			for n := range model {
				out = append(out, n)
			}
			slices.Sort(out)
			return out
		}
		rt.Repeat(map[string]func(*rapid.T){
			"create": func(rt *rapid.T) {
				name := rapid.OneOf(rapid.SampledFrom(pool), rapid.Just("note.eml")).Draw(rt, "name")
				if _, ok := model[name]; ok {
					return // the kernel would open the existing file instead
				}
				serial++
				var data []byte
				if rapid.IntRange(0, 9).Draw(rt, "empty") > 0 { // one in ten empty
					data = append([]byte(fmt.Sprintf("Subject: %d\r\n\r\n", serial)), rapid.SliceOfN(rapid.Byte(), 0, 5000).Draw(rt, "body")...)
				}
				fh, err := os.OpenFile(filepath.Join(spam, name), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o660)
				if err != nil {
					rt.Fatalf("create %s: %v", name, err)
				}
				for rest := data; len(rest) > 0; {
					n := min(len(rest), rapid.IntRange(1, 4096).Draw(rt, "chunk"))
					if _, err := fh.Write(rest[:n]); err != nil {
						rt.Fatalf("write: %v", err)
					}
					rest = rest[n:]
				}
				if err := fh.Close(); err != nil {
					rt.Fatalf("close: %v", err)
				}
				switch {
				case len(data) == 0:
					// Not stored; the name goes when the kernel releases the
					// file, which it does just after close returns.
					waitGone(rt, filepath.Join(spam, name))
				case !used[name] && name != "note.eml":
					model[name], used[name] = data, true
				default: // stored under an allocated id
					var fresh []string
					for _, n := range readdir(t, spam) {
						if _, ok := model[n]; !ok {
							fresh = append(fresh, n)
						}
					}
					if len(fresh) != 1 {
						rt.Fatalf("write to %s: new names %v, want one allocated id", name, fresh)
					}
					model[fresh[0]], used[fresh[0]] = data, true
				}
			},
			"abandon": func(rt *rapid.T) {
				name := rapid.SampledFrom(pool).Draw(rt, "name")
				if _, ok := model[name]; ok {
					return
				}
				p := filepath.Join(spam, name)
				fh, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o660)
				if err != nil {
					rt.Fatalf("create: %v", err)
				}
				fh.Write([]byte("Subject: abandoned\r\n\r\nx"))
				if err := os.Remove(p); err != nil {
					rt.Fatalf("unlink while writing: %v", err)
				}
				fh.Close()
			},
			"unlink": func(rt *rapid.T) {
				name := rapid.OneOf(rapid.SampledFrom(append(names(), pool[0])), rapid.SampledFrom(pool)).Draw(rt, "name")
				err := os.Remove(filepath.Join(spam, name))
				if _, ok := model[name]; ok {
					if err != nil {
						rt.Fatalf("unlink %s: %v", name, err)
					}
					delete(model, name)
				} else if !errors.Is(err, syscall.ENOENT) {
					rt.Fatalf("unlink of missing %s: %v", name, err)
				}
			},
			"read": func(rt *rapid.T) {
				if len(model) == 0 {
					return
				}
				name := rapid.SampledFrom(names()).Draw(rt, "name")
				b, err := os.ReadFile(filepath.Join(spam, name))
				if err != nil || !bytes.Equal(b, model[name]) {
					rt.Fatalf("read %s: %v, %d bytes, want %d", name, err, len(b), len(model[name]))
				}
			},
			"": func(rt *rapid.T) { // after every action: readdir equals the model
				if got := readdir(t, spam); !slices.Equal(got, names()) {
					rt.Fatalf("readdir = %v, model %v", got, names())
				}
			},
		})
	})
	// The store agrees with the tree.
	for _, n := range readdir(t, spam) {
		if m, err := f.q.Stat(f.ctx(), lazaret.ID(n)); err != nil || m.Verdict.Kind != lazaret.VerdictSpam {
			t.Fatalf("%s: %v %v", n, m, err)
		}
	}
}

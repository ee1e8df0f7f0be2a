package test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestDebPackage builds the Debian package with `make deb` and checks it as
// an operator would meet it: its contents and control data, lintian, the
// systemd units (systemd-analyze verify and security), and an install into
// a scratch root whose maintainer scripts create the lazaret user and
// hand it the state directory; the installed binary then runs there, and
// the shipped configuration starts a node.
func TestDebPackage(t *testing.T) {
	bins := needBinaries(t, "dpkg-deb", "dpkg", "systemd-analyze", "make", "chroot")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	_, here, _, _ := runtime.Caller(0)
	top := filepath.Dir(filepath.Dir(here))
	out := t.TempDir()
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Dir = top
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, b)
		}
		return string(b)
	}
	run("make", "deb", "DEB_OUT="+out)
	debs, _ := filepath.Glob(filepath.Join(out, "lazaret_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("make deb made %v", debs)
	}
	deb := debs[0]

	contents := run(bins["dpkg-deb"], "-c", deb)
	for _, want := range []string{
		"-rwxr-xr-x root/root", "./usr/bin/lazaret",
		"./lib/systemd/system/lazaret.service", "./lib/systemd/system/lazaret-mount@.service",
		"./etc/lazaret/lazaret.toml", "./var/lib/lazaret/", "./usr/share/doc/lazaret/copyright",
	} {
		if !strings.Contains(contents, want) {
			t.Errorf("package contents lack %q:\n%s", want, contents)
		}
	}
	info := run(bins["dpkg-deb"], "-I", deb)
	for _, want := range []string{"Package: lazaret", "Version: ", "postinst", "prerm", "postrm", "conffiles"} {
		if !strings.Contains(info, want) {
			t.Errorf("package control data lacks %q:\n%s", want, info)
		}
	}
	if conf := run(bins["dpkg-deb"], "-f", deb, "Architecture"); strings.TrimSpace(conf) == "" {
		t.Error("no Architecture")
	}
	ctl := t.TempDir()
	run(bins["dpkg-deb"], "-e", deb, ctl)
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/lazaret/lazaret.toml" {
		t.Errorf("conffiles = %q", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		run("sh", "-n", filepath.Join(ctl, s))
	}

	if lintian, err := exec.LookPath("lintian"); err == nil {
		// Errors fail; warnings are shown. Known, justified tags are
		// overridden in deploy/debian/lintian-overrides.
		b, _ := exec.CommandContext(ctx, lintian, "--tag-display-limit", "0", deb).CombinedOutput()
		for _, line := range strings.Split(string(b), "\n") {
			switch {
			case strings.HasPrefix(line, "E: "):
				t.Errorf("lintian: %s", line)
			case strings.HasPrefix(line, "W: "):
				t.Logf("lintian: %s", line)
			}
		}
	} else {
		t.Log("lintian not installed (test/deps.sh installs it): not run")
	}

	// A scratch root with just what dpkg and the maintainer scripts need.
	root := t.TempDir()
	for _, d := range []string{"etc", "var/lib/dpkg/info", "var/lib/dpkg/updates", "var/lib/dpkg/triggers"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, text := range map[string]string{
		"var/lib/dpkg/status": "",
		"etc/passwd":          "root:x:0:0:root:/root:/bin/sh\n",
		"etc/group":           "root:x:0:\n",
		"etc/shadow":          "root:*::0:99999:7:::\n",
		"etc/gshadow":         "root:*::\n",
	} {
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// Scripts run outside the root with DPKG_ROOT set (the root has no
	// shell); dependencies (passwd) are the host's.
	run(bins["dpkg"], "--root="+root, "--force-script-chrootless", "--force-depends", "--log=/dev/null", "-i", deb)
	passwd, _ := os.ReadFile(filepath.Join(root, "etc/passwd"))
	if !strings.Contains(string(passwd), "\nlazaret:x:") || !strings.Contains(string(passwd), ":/var/lib/lazaret:/usr/sbin/nologin") {
		t.Errorf("postinst made no lazaret system user:\n%s", passwd)
	}
	st, err := os.Stat(filepath.Join(root, "var/lib/lazaret"))
	if err != nil || st.Mode().Perm() != 0o750 {
		t.Errorf("/var/lib/lazaret: %v %v, want 0750", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(root, "etc/lazaret/lazaret.toml")); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("/etc/lazaret/lazaret.toml: %v, want 0640", err)
	}
	// Installing again (an upgrade) finds the user and keeps it.
	run(bins["dpkg"], "--root="+root, "--force-script-chrootless", "--force-depends", "--log=/dev/null", "-i", deb)
	if again, _ := os.ReadFile(filepath.Join(root, "etc/passwd")); string(again) != string(passwd) {
		t.Errorf("reinstall changed passwd:\n%s", again)
	}

	if v := run("chroot", root, "/usr/bin/lazaret", "version"); !strings.HasPrefix(v, "lazaret ") {
		t.Errorf("lazaret version in the root printed %q", v)
	}

	// The units: systemd-analyze verify against the root (with the host's
	// own units beside them, as on a real system); any complaint fails.
	units := filepath.Join(root, "lib/systemd/system")
	run("cp", "-an", "/lib/systemd/system/.", units)
	mountUnit := "lazaret-mount@srv-quarantine.service"
	verify := exec.CommandContext(ctx, bins["systemd-analyze"], "verify", "--root="+root, "lazaret.service", mountUnit)
	if b, err := verify.CombinedOutput(); err != nil || len(strings.TrimSpace(string(b))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, b)
	}
	sec := exec.CommandContext(ctx, bins["systemd-analyze"], "security", "--offline=true", "--root="+root, "--threshold=30", "lazaret.service")
	if b, err := sec.CombinedOutput(); err != nil {
		t.Errorf("systemd-analyze security: exposure above 3.0: %v\n%s", err, b)
	} else {
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		t.Logf("lazaret.service %s", lines[len(lines)-1])
	}

	// The shipped configuration starts a node (paths and the HTTP port
	// moved to the test's).
	dir := shortTempDir(t)
	node := startServe(t, dir, "--config", filepath.Join(root, "etc/lazaret/lazaret.toml"), "--http", freeAddrOn(t, "127.44.0.3"))
	if out := runCLI(t, node.socket, "status"); !strings.Contains(out, "node") {
		t.Errorf("status of a node on the packaged configuration: %q", out)
	}
}

package fuse

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/lazaret/lazaret"
)

// lazyWait bounds how long a lazy Unmount waits for the last user.
const lazyWait = 2 * time.Second

// Mount is a mounted view.
type Mount struct {
	dir    string
	server *gofuse.Server
}

// New mounts the view of q at dir and serves it until Unmount. It refuses,
// with a clear error, a missing /dev/fuse, a mountpoint that is not a
// directory and one that is already mounted (busy).
func New(ctx context.Context, dir string, q lazaret.Quarantine, cfg Config) (*Mount, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("mount %s: %w", dir, err)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		return nil, fmt.Errorf("mount %s: /dev/fuse is missing (load the fuse module, or give the container --device /dev/fuse): %w", abs, err)
	}
	fi, err := os.Stat(abs)
	switch {
	case err != nil:
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	case !fi.IsDir():
		return nil, fmt.Errorf("mount %s: not a directory", abs)
	case Mounted(abs):
		return nil, fmt.Errorf("mount %s: busy: something is already mounted there (unmount it with 'fusermount3 -u %s')", abs, abs)
	}
	if cfg.Days == 0 {
		sctx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
		st, err := q.Status(sctx)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("mount %s: asking the node for its retention: %w", abs, err)
		}
		cfg.Days = int((st.Retention + 24*time.Hour - 1) / (24 * time.Hour))
		if cfg.Days <= 0 {
			cfg.Days = 30
		}
	}
	v := newView(q, cfg)
	root := &dirNode{v: v, level: levelRoot, mtime: cfg.Clock.Now(), pending: map[string]*fileNode{}}
	entry, attr := cfg.EntryTimeout, cfg.AttrTimeout
	opts := &fs.Options{
		EntryTimeout: &entry,
		AttrTimeout:  &attr,
		UID:          cfg.UID, GID: cfg.GID,
		MountOptions: gofuse.MountOptions{
			FsName:        cfg.FsName,
			Name:          "lazaret",
			AllowOther:    cfg.AllowOther,
			Options:       []string{"default_permissions"},
			DirectMount:   os.Geteuid() == 0,
			DisableXAttrs: true,
			MaxWrite:      1 << 20,
			MaxReadAhead:  1 << 20,
		},
	}
	server, err := fs.Mount(abs, root, opts)
	if err != nil {
		if errors.Is(err, syscall.EBUSY) {
			return nil, fmt.Errorf("mount %s: busy: %w", abs, err)
		}
		return nil, fmt.Errorf("mount %s: %w", abs, err)
	}
	return &Mount{dir: abs, server: server}, nil
}

// Dir is the mountpoint.
func (m *Mount) Dir() string { return m.dir }

// Wait returns when the mount is gone (unmounted, by Unmount or by
// fusermount3 -u).
func (m *Mount) Wait() { m.server.Wait() }

// Unmount unmounts; it fails (EBUSY) while a process has a file or its
// working directory in the mount, unless lazy is set, which detaches the
// mount now and lets it go when the last user does (this waits for that
// at most lazyWait; the user's calls fail with ENOTCONN once the process
// serving the mount is gone).
func (m *Mount) Unmount(lazy bool) error {
	err := m.server.Unmount()
	if err != nil && lazy {
		if lerr := syscall.Unmount(m.dir, syscall.MNT_DETACH); lerr == nil {
			done := make(chan struct{})
			go func() { m.server.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(lazyWait):
			}
			return nil
		}
	}
	if err != nil {
		return fmt.Errorf("unmount %s: %w", m.dir, err)
	}
	return nil
}

// Mounted reports whether dir (absolute, clean) is listed as a mount point
// in /proc/self/mountinfo.
func Mounted(dir string) bool {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == dir {
			return true
		}
	}
	return false
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var c byte
			if _, err := fmt.Sscanf(s[i+1:i+4], "%03o", &c); err == nil {
				b.WriteByte(c)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

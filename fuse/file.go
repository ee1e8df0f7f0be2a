package fuse

import (
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/lazaret/lazaret"
)

// fileNode is a message file: a stored message (e set), or a file being
// written (dir, name and buf set) until it is stored.
type fileNode struct {
	fs.Inode
	v *view

	mu sync.Mutex
	e  *entry // the stored message; nil while being written

	// Being written.
	dir       *dirNode
	name      string
	buf       *spool
	created   time.Time
	closed    bool // a temp name flushed: stored when renamed to a real name
	discarded bool
}

var (
	_ fs.NodeGetattrer = (*fileNode)(nil)
	_ fs.NodeSetattrer = (*fileNode)(nil)
	_ fs.NodeOpener    = (*fileNode)(nil)
	_ fs.NodeReader    = (*fileNode)(nil)
	_ fs.NodeWriter    = (*fileNode)(nil)
	_ fs.NodeFlusher   = (*fileNode)(nil)
	_ fs.NodeFsyncer   = (*fileNode)(nil)
	_ fs.NodeReleaser  = (*fileNode)(nil)
)

// readHandle holds a whole, verified body for reads.
type readHandle struct {
	mu     sync.Mutex
	body   *spool
	loaded bool
	errno  syscall.Errno
}

// writeHandle marks a descriptor that created the file.
type writeHandle struct{}

func (f *fileNode) fillAttr(a *gofuse.Attr) {
	c := &f.v.cfg
	f.mu.Lock()
	defer f.mu.Unlock()
	a.Mode = syscall.S_IFREG | c.Mode&0o7777
	a.Uid, a.Gid = c.UID, c.GID
	a.Nlink = 1
	a.Blksize = 4096
	var size int64
	var t time.Time
	if f.e != nil {
		size, t = f.e.Size, f.e.Received
	} else if f.buf != nil {
		size, t = f.buf.Size(), f.created
	}
	a.Size = uint64(size)
	a.Blocks = uint64(size+511) / 512
	a.SetTimes(&t, &t, &t)
}

// Getattr: exact size, mtime = received time, configured owner and mode.
func (f *fileNode) Getattr(ctx context.Context, fh fs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	f.mu.Lock()
	gone := f.discarded
	f.mu.Unlock()
	if gone {
		return syscall.ENOENT
	}
	f.fillAttr(&out.Attr)
	return 0
}

// Setattr accepts chmod/chown to the configured values and time changes as
// no-ops, and truncation only of a file being written; anything else on a
// stored (immutable) message is EPERM.
func (f *fileNode) Setattr(ctx context.Context, fh fs.FileHandle, in *gofuse.SetAttrIn, out *gofuse.AttrOut) syscall.Errno {
	c := &f.v.cfg
	f.mu.Lock()
	pending := f.e == nil
	f.mu.Unlock()
	if !pending {
		if m, ok := in.GetMode(); ok && m&0o7777 != c.Mode&0o7777 {
			return syscall.EPERM
		}
		if errno := checkOwner(c, in); errno != 0 {
			return errno
		}
	}
	if sz, ok := in.GetSize(); ok {
		f.mu.Lock()
		switch {
		case f.e != nil && int64(sz) != f.e.Size:
			f.mu.Unlock()
			return syscall.EPERM
		case f.e == nil && int64(sz) > c.MaxMessageSize:
			f.mu.Unlock()
			return syscall.EFBIG
		case f.e == nil && f.buf != nil:
			if err := f.buf.Truncate(int64(sz)); err != nil {
				f.mu.Unlock()
				return syscall.EIO
			}
		}
		f.mu.Unlock()
	}
	f.fillAttr(&out.Attr)
	return 0
}

// Open opens a stored message for reading (its page cache is kept: the
// body never changes). Writing to a stored message is EPERM, and a file
// still being written cannot be opened again (EBUSY).
func (f *fileNode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.e == nil {
		return nil, 0, syscall.EBUSY
	}
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&(syscall.O_TRUNC|syscall.O_APPEND) != 0 {
		return nil, 0, syscall.EPERM
	}
	return &readHandle{}, gofuse.FOPEN_KEEP_CACHE, 0
}

// Read serves a body fetched whole on the first read and checked against
// its SHA-256 and size first: a reader gets the exact bytes or EIO.
func (f *fileNode) Read(ctx context.Context, fh fs.FileHandle, dest []byte, off int64) (gofuse.ReadResult, syscall.Errno) {
	h, ok := fh.(*readHandle)
	if !ok {
		return nil, syscall.EBADF
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.loaded {
		h.body, h.errno = f.load(ctx)
		h.loaded = h.errno != syscall.EINTR
	}
	if h.errno != 0 {
		return nil, h.errno
	}
	n, err := h.body.ReadAt(dest, off)
	if err != nil && err != io.EOF {
		return nil, syscall.EIO
	}
	return gofuse.ReadResultData(dest[:n]), 0
}

func (f *fileNode) load(ctx context.Context) (*spool, syscall.Errno) {
	f.mu.Lock()
	e := f.e
	f.mu.Unlock()
	v := f.v
	ctx, cancel := v.op(ctx)
	defer cancel()
	body := newSpool(v.cfg.MemoryBuffer, v.cfg.SpoolDir)
	body.expect(e.Size)
	err := func() error {
		_, rc, err := v.q.Open(ctx, e.ID)
		if err != nil {
			return err
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.Copy(io.MultiWriter(body, h), io.LimitReader(rc, e.Size+1))
		if err != nil {
			return err
		}
		var sum [32]byte
		h.Sum(sum[:0])
		if n != e.Size || sum != e.SHA256 {
			return fmt.Errorf("%w: read %d bytes, sha256 %x; metadata says %d bytes, sha256 %x", lazaret.ErrCorrupt, n, sum[:8], e.Size, e.SHA256[:8])
		}
		return nil
	}()
	if err != nil {
		body.Close()
		en := errno(err)
		if en == syscall.ENOENT {
			en = syscall.EIO // stat said it exists: deleted since, or unreachable
		}
		if en != syscall.EINTR {
			v.log.Error("fuse: read failed", "id", e.ID, "err", err)
		}
		return nil, en
	}
	return body, 0
}

// Write writes into a file being created. A write past the size limit is
// EFBIG.
func (f *fileNode) Write(ctx context.Context, fh fs.FileHandle, data []byte, off int64) (uint32, syscall.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.e != nil || f.closed:
		return 0, syscall.EBADF // stored: immutable
	case f.discarded:
		return 0, syscall.ENOENT
	case off+int64(len(data)) > f.v.cfg.MaxMessageSize:
		return 0, syscall.EFBIG
	}
	n, err := f.buf.WriteAt(data, off)
	if err != nil {
		f.v.log.Error("fuse: spooling a written file failed", "name", f.name, "err", err)
		return uint32(n), syscall.EIO
	}
	return uint32(n), 0
}

// isTemp says a name is a temporary one (".name.XXXXXX" of rsync, "*.tmp"):
// its file is stored only when renamed to a real name.
func isTemp(name string) bool {
	return strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".tmp") || strings.HasSuffix(name, "~")
}

// Flush runs on every close(2). The first close of a written file stores
// it, durably, before close returns; a failure is close's error. A writer
// killed by a signal closes through the kernel, not by itself: its file is
// dropped, never stored.
func (f *fileNode) Flush(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	if _, ok := fh.(*writeHandle); !ok {
		return 0
	}
	if c, ok := gofuse.FromContext(ctx); ok && killedWriter(c.Pid) {
		f.v.log.Warn("fuse: writer killed before closing; its file is dropped", "name", f.name, "pid", c.Pid)
		f.forget(f.drop())
		return 0
	}
	// Nothing written yet is no message, but not the end either: a shell's
	// "> file" closes its first descriptor before the builtin writes to the
	// duplicate. The file goes at release if it stays empty.
	errno, gone := f.commit(ctx, false)
	f.forget(gone)
	return errno
}

// forget makes the kernel drop a written name that no longer exists. It
// runs in flush and fsync, where the kernel holds no directory lock, so
// that a create of the same name right after close does not see it.
func (f *fileNode) forget(name string) {
	f.mu.Lock()
	d := f.dir
	f.mu.Unlock()
	if name != "" && d != nil {
		d.NotifyEntry(name)
	}
}

// Fsync stores a file being written, as its close would.
func (f *fileNode) Fsync(ctx context.Context, fh fs.FileHandle, flags uint32) syscall.Errno {
	if _, ok := fh.(*writeHandle); !ok {
		return 0
	}
	errno, gone := f.commit(ctx, false)
	f.forget(gone)
	return errno
}

// Release drops a file being written that was never stored (empty, killed
// or failed). A flushed temp file stays until renamed or unlinked.
func (f *fileNode) Release(ctx context.Context, fh fs.FileHandle) syscall.Errno {
	switch h := fh.(type) {
	case *readHandle:
		h.mu.Lock()
		if h.body != nil {
			h.body.Close()
		}
		h.mu.Unlock()
	case *writeHandle:
		f.mu.Lock()
		keep := f.e != nil || f.closed
		f.mu.Unlock()
		if !keep {
			if name := f.drop(); name != "" {
				go f.dir.NotifyEntry(name)
			}
		}
	}
	return 0
}

// drop forgets a file being written and returns the name it had, for
// the kernel to forget too ("" if none).
func (f *fileNode) drop() string {
	f.mu.Lock()
	d, name := f.dir, f.name
	f.mu.Unlock()
	f.discard()
	if d == nil {
		return ""
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.pending[name] == f {
		delete(d.pending, name)
	}
	return name
}

func (f *fileNode) discard() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.discarded = true
	if f.e == nil && f.buf != nil {
		f.buf.Close()
	}
}

// moved is a rename of a file being written to dir/name: a flushed file
// is stored now.
func (f *fileNode) moved(ctx context.Context, to *dirNode, name string) syscall.Errno {
	f.mu.Lock()
	f.dir, f.name = to, name
	closed := f.closed
	f.closed = false
	f.mu.Unlock()
	if closed {
		errno, _ := f.commit(ctx, true) // rename already moved the name
		return errno
	}
	return 0
}

// commit stores a file being written: id from its name when that is a
// valid id not in use, else allocated; verdict from its directory. An empty
// file is not stored (there is no message); it goes away when closed.
// gone is the written name when the message was stored under another id.
func (f *fileNode) commit(ctx context.Context, renamed bool) (syscall.Errno, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.e != nil:
		return 0, "" // already stored: a second close of a dup'd descriptor
	case f.discarded:
		return 0, ""
	case f.buf.Size() == 0:
		return 0, ""
	case isTemp(f.name) && !renamed:
		f.closed = true
		return 0, ""
	}
	d := f.dir
	var id lazaret.ID
	place := d.place
	if d.level == levelIDDir {
		id, place = d.id, PlaceDir
	} else if p, err := lazaret.ParseID(f.name); err == nil {
		id = p
	}
	e, err := f.v.put(ctx, id, place, f.buf)
	if err != nil {
		en := errno(err)
		if en == syscall.EIO || en == syscall.EINVAL {
			f.v.log.Error("fuse: storing a written file failed", "path", join(d.path(), f.name), "err", err)
		}
		if en == syscall.EEXIST {
			en = syscall.EIO
		}
		return en, ""
	}
	f.e = e
	f.buf.Close()
	f.buf = nil
	d.mu.Lock()
	if d.pending[f.name] == f {
		delete(d.pending, f.name)
	}
	d.mu.Unlock()
	if string(e.ID) != f.name && d.level == levelKind {
		return 0, f.name // stored under another id: the written name goes
	}
	return 0, ""
}

package fuse

import (
	"context"
	"hash/fnv"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	gofuse "github.com/hanwen/go-fuse/v2/fuse"

	"github.com/lazaret/lazaret"
)

// dirLevel says which directory of the tree a dirNode is.
type dirLevel int

const (
	levelRoot  dirLevel = iota // the quarantine dir: day directories
	levelDay                   // YYYYMMDD: kind dirs and <id> dirs
	levelKind                  // YYYYMMDD/{spam,nonspam,mcp}: message files
	levelIDDir                 // YYYYMMDD/<id>: the file "message"
)

// messageName is the whole message's name in an <id> directory.
const messageName = "message"

// dirNode is one directory of the tree.
type dirNode struct {
	fs.Inode
	v     *view
	level dirLevel
	day   string
	place Place      // levelKind
	id    lazaret.ID // levelIDDir
	mtime time.Time

	mu      sync.Mutex
	pending map[string]*fileNode // files being written here, by name
}

var (
	_ fs.NodeLookuper  = (*dirNode)(nil)
	_ fs.NodeReaddirer = (*dirNode)(nil)
	_ fs.NodeGetattrer = (*dirNode)(nil)
	_ fs.NodeSetattrer = (*dirNode)(nil)
	_ fs.NodeMkdirer   = (*dirNode)(nil)
	_ fs.NodeRmdirer   = (*dirNode)(nil)
	_ fs.NodeUnlinker  = (*dirNode)(nil)
	_ fs.NodeCreater   = (*dirNode)(nil)
	_ fs.NodeRenamer   = (*dirNode)(nil)
	_ fs.NodeMknoder   = (*dirNode)(nil)
	_ fs.NodeSymlinker = (*dirNode)(nil)
	_ fs.NodeLinker    = (*dirNode)(nil)
)

// path is the directory's path under the mount, "" for the root.
func (d *dirNode) path() string {
	switch d.level {
	case levelDay:
		return d.day
	case levelKind:
		return d.day + "/" + string(d.place)
	case levelIDDir:
		return d.day + "/" + string(d.id)
	}
	return ""
}

// ino gives a stable inode number for a path (directories) or an id
// (messages), unique within the mount; go-fuse's own numbers start at 2^63.
func ino(kind, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(kind))
	h.Write([]byte{0})
	h.Write([]byte(key))
	return h.Sum64()&(1<<63-1) | 2
}

func (d *dirNode) fillDirAttr(a *gofuse.Attr) {
	c := &d.v.cfg
	a.Mode = syscall.S_IFDIR | c.dirMode()
	a.Uid, a.Gid = c.UID, c.GID
	a.Nlink = 2
	a.Size = 4096
	a.Blocks = 8
	a.SetTimes(&d.mtime, &d.mtime, &d.mtime)
}

// Getattr reports the configured owner and mode.
func (d *dirNode) Getattr(ctx context.Context, f fs.FileHandle, out *gofuse.AttrOut) syscall.Errno {
	d.fillDirAttr(&out.Attr)
	return 0
}

// Setattr accepts chmod/chown to the configured mode and owner as no-ops
// (MailScanner does both after mkdir) and refuses anything else.
func (d *dirNode) Setattr(ctx context.Context, f fs.FileHandle, in *gofuse.SetAttrIn, out *gofuse.AttrOut) syscall.Errno {
	c := &d.v.cfg
	if m, ok := in.GetMode(); ok && m&0o7777 != c.dirMode() && m&0o7777 != c.Mode&0o7777 {
		return syscall.EPERM
	}
	if errno := checkOwner(c, in); errno != 0 {
		return errno
	}
	if _, ok := in.GetSize(); ok {
		return syscall.EISDIR
	}
	d.fillDirAttr(&out.Attr)
	return 0
}

func checkOwner(c *Config, in *gofuse.SetAttrIn) syscall.Errno {
	if u, ok := in.GetUID(); ok && u != c.UID {
		return syscall.EPERM
	}
	if g, ok := in.GetGID(); ok && g != c.GID {
		return syscall.EPERM
	}
	return 0
}

func (d *dirNode) child(ctx context.Context, level dirLevel, name string) *fs.Inode {
	n := &dirNode{v: d.v, level: level, day: d.day, pending: map[string]*fileNode{}}
	switch level {
	case levelDay:
		n.day = name
	case levelKind:
		n.place = Place(name)
	case levelIDDir:
		n.id = lazaret.ID(name)
	}
	if start, _, ok := d.v.parseDay(n.day); ok {
		n.mtime = start
	}
	return d.NewInode(ctx, n, fs.StableAttr{Mode: syscall.S_IFDIR, Ino: ino("d", n.path())})
}

// Readdir lists the directory from metadata only.
func (d *dirNode) Readdir(ctx context.Context) (fs.DirStream, syscall.Errno) {
	var list []gofuse.DirEntry
	dir := func(name string) {
		list = append(list, gofuse.DirEntry{Name: name, Mode: syscall.S_IFDIR, Ino: ino("d", join(d.path(), name))})
	}
	switch d.level {
	case levelRoot:
		days, err := d.v.days(ctx)
		if err != nil {
			return nil, d.fail("readdir", "", err)
		}
		for _, day := range days {
			dir(day)
		}
	case levelDay:
		entries, err := d.v.day(ctx, d.day)
		if err != nil {
			return nil, d.fail("readdir", "", err)
		}
		names := d.v.madeUnder(d.day)
		for _, e := range entries {
			if e.Place == PlaceDir {
				names = append(names, string(e.ID))
			} else {
				names = append(names, string(e.Place))
			}
		}
		slices.Sort(names)
		for _, n := range slices.Compact(names) {
			dir(n)
		}
	case levelKind, levelIDDir:
		entries, err := d.v.day(ctx, d.day)
		if err != nil {
			return nil, d.fail("readdir", "", err)
		}
		var ids []string
		for _, e := range entries {
			switch {
			case d.level == levelKind && e.Place == d.place:
				ids = append(ids, string(e.ID))
			case d.level == levelIDDir && e.Place == PlaceDir && e.ID == d.id:
				list = append(list, gofuse.DirEntry{Name: messageName, Mode: syscall.S_IFREG, Ino: ino("m", string(e.ID))})
			}
		}
		slices.Sort(ids)
		for _, id := range ids {
			list = append(list, gofuse.DirEntry{Name: id, Mode: syscall.S_IFREG, Ino: ino("m", id)})
		}
	}
	return fs.NewListDirStream(list), 0
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// fail logs an unexpected store error with what was asked and maps it.
func (d *dirNode) fail(op, name string, err error) syscall.Errno {
	e := errno(err)
	if e == syscall.EIO {
		d.v.log.Error("fuse: store call failed", "op", op, "path", join(d.path(), name), "err", err)
	}
	return e
}

// maxName is the longest name in the tree (the kernel lets FUSE names be
// up to 1024 bytes; every tool expects NAME_MAX).
const maxName = 255

// Lookup finds a name: a day, a kind dir, an <id> dir or a message.
func (d *dirNode) Lookup(ctx context.Context, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	switch d.level {
	case levelRoot:
		if _, _, ok := d.v.parseDay(name); !ok {
			return nil, syscall.ENOENT
		}
		if !d.v.isMade(name) {
			entries, err := d.v.day(ctx, name)
			if err != nil {
				return nil, d.fail("lookup", name, err)
			}
			if len(entries) == 0 {
				return nil, syscall.ENOENT
			}
		}
		ch := d.child(ctx, levelDay, name)
		ch.Operations().(*dirNode).fillDirAttr(&out.Attr)
		return ch, 0
	case levelDay:
		level := levelKind
		if _, err := ParsePlace(name); err != nil || Place(name) == PlaceDir {
			if _, err := lazaret.ParseID(name); err != nil {
				return nil, syscall.ENOENT
			}
			level = levelIDDir
		}
		if !d.v.isMade(join(d.day, name)) {
			if level == levelKind {
				has, err := d.v.hasPlace(ctx, d.day, Place(name))
				if err != nil {
					return nil, d.fail("lookup", name, err)
				}
				if !has {
					return nil, syscall.ENOENT
				}
			} else if _, err := d.v.message(ctx, d.day, PlaceDir, lazaret.ID(name)); err != nil {
				return nil, errno(err)
			}
		}
		ch := d.child(ctx, level, name)
		ch.Operations().(*dirNode).fillDirAttr(&out.Attr)
		return ch, 0
	}
	if f := d.pendingFile(name); f != nil {
		f.fillAttr(&out.Attr)
		return f.EmbeddedInode(), 0
	}
	id, place, ok := d.messageID(name)
	if !ok {
		return nil, syscall.ENOENT
	}
	e, err := d.v.message(ctx, d.day, place, id)
	if err != nil {
		return nil, errno(err)
	}
	f := &fileNode{v: d.v, e: e}
	f.fillAttr(&out.Attr)
	return d.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG, Ino: ino("m", string(e.ID))}), 0
}

// dayHas reports whether a day's entries make the named subdirectory.
func dayHas(entries map[lazaret.ID]*entry, level dirLevel, name string) bool {
	if level == levelIDDir {
		e := entries[lazaret.ID(name)]
		return e != nil && e.Place == PlaceDir
	}
	for _, e := range entries {
		if string(e.Place) == name {
			return true
		}
	}
	return false
}

// messageID says which message a file name in this directory would be.
func (d *dirNode) messageID(name string) (lazaret.ID, Place, bool) {
	switch d.level {
	case levelKind:
		id, err := lazaret.ParseID(name)
		return id, d.place, err == nil
	case levelIDDir:
		return d.id, PlaceDir, name == messageName
	}
	return "", "", false
}

func (d *dirNode) pendingFile(name string) *fileNode {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.pending[name]
}

// Mkdir makes a day in the root, a kind dir or an <id> dir in a day; they
// exist in this view until removed or filled. Anything else is EPERM.
func (d *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	if len(name) > maxName {
		return nil, syscall.ENAMETOOLONG
	}
	var level dirLevel
	switch d.level {
	case levelRoot:
		if _, _, ok := d.v.parseDay(name); !ok {
			return nil, syscall.EPERM
		}
		level = levelDay
	case levelDay:
		if p, err := ParsePlace(name); err == nil && p != PlaceDir {
			level = levelKind
		} else if _, err := lazaret.ParseID(name); err == nil {
			level = levelIDDir
		} else {
			return nil, syscall.EPERM
		}
	default:
		return nil, syscall.EPERM
	}
	if _, errno := d.Lookup(ctx, name, &gofuse.EntryOut{}); errno == 0 {
		return nil, syscall.EEXIST
	}
	d.v.mkdir(join(d.path(), name))
	ch := d.child(ctx, level, name)
	ch.Operations().(*dirNode).fillDirAttr(&out.Attr)
	return ch, 0
}

// Rmdir removes an empty directory; ENOTEMPTY while it holds a message.
func (d *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if d.level == levelKind || d.level == levelIDDir {
		return syscall.ENOTDIR
	}
	path := join(d.path(), name)
	var nonEmpty bool
	switch d.level {
	case levelRoot:
		if _, _, ok := d.v.parseDay(name); !ok {
			return syscall.ENOENT
		}
		entries, err := d.v.day(ctx, name)
		if err != nil {
			return d.fail("rmdir", name, err)
		}
		nonEmpty = len(entries) > 0 || len(d.v.madeUnder(name)) > 0
	case levelDay:
		entries, err := d.v.day(ctx, d.day)
		if err != nil {
			return d.fail("rmdir", name, err)
		}
		level := levelKind
		if _, err := ParsePlace(name); err != nil || Place(name) == PlaceDir {
			level = levelIDDir
		}
		nonEmpty = dayHas(entries, level, name)
		if ch := d.GetChild(name); ch != nil {
			if cd, ok := ch.Operations().(*dirNode); ok && len(cd.pendingNames()) > 0 {
				nonEmpty = true
			}
		}
	}
	// The kernel asks only for a name it found: one emptied since (the
	// last message unlinked) goes like one made with mkdir.
	if nonEmpty {
		return syscall.ENOTEMPTY
	}
	d.v.unmake(path)
	return 0
}

func (d *dirNode) pendingNames() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for n := range d.pending {
		out = append(out, n)
	}
	return out
}

// Unlink deletes a message (a tombstone, actor "fuse"), or drops a file
// still being written.
func (d *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	d.mu.Lock()
	if f := d.pending[name]; f != nil {
		delete(d.pending, name)
		d.mu.Unlock()
		f.discard()
		return 0 // a successful unlink removes the name from the kernel
	}
	d.mu.Unlock()
	id, place, ok := d.messageID(name)
	if !ok {
		if d.level == levelRoot || d.level == levelDay {
			return syscall.EISDIR
		}
		return syscall.ENOENT
	}
	if _, err := d.v.message(ctx, d.day, place, id); err != nil {
		return errno(err)
	}
	if err := d.v.remove(ctx, id); err != nil {
		return d.fail("unlink", name, err)
	}
	return 0
}

// Create starts a new message: a file in a kind dir, or "message" in an
// <id> dir. It is stored when closed (see fileNode.Flush); nothing is
// visible in the store before that.
func (d *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *gofuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	switch {
	case len(name) > maxName:
		return nil, nil, 0, syscall.ENAMETOOLONG
	case d.level == levelKind:
	case d.level == levelIDDir && name == messageName:
	default:
		return nil, nil, 0, syscall.EPERM
	}
	d.mu.Lock()
	if d.pending[name] != nil {
		d.mu.Unlock()
		return nil, nil, 0, syscall.EEXIST
	}
	f := &fileNode{v: d.v, dir: d, name: name, buf: newSpool(d.v.cfg.MemoryBuffer, d.v.cfg.SpoolDir), created: d.v.now()}
	d.pending[name] = f
	d.mu.Unlock()
	f.fillAttr(&out.Attr)
	ch := d.NewInode(ctx, f, fs.StableAttr{Mode: syscall.S_IFREG})
	return ch, &writeHandle{}, 0, 0
}

// Rename moves a file still being written (the temp-file-then-rename of
// rsync and editors: the rename is then the commit point). A stored
// message cannot be renamed in place: EXDEV, so mv falls back to copy
// and unlink (the copy gets a new id when the old one is still in use).
// Directories: EPERM.
func (d *dirNode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	to, ok := newParent.(*dirNode)
	if !ok {
		return syscall.EXDEV
	}
	if len(newName) > maxName {
		return syscall.ENAMETOOLONG
	}
	f := d.pendingFile(name)
	if f == nil {
		if d.level == levelRoot || d.level == levelDay {
			return syscall.EPERM
		}
		return syscall.EXDEV
	}
	switch {
	case to.level == levelKind:
	case to.level == levelIDDir && newName == messageName:
	default:
		return syscall.EPERM
	}
	if flags&^uint32(1) != 0 { // RENAME_NOREPLACE is fine: nothing is replaced
		return syscall.EINVAL
	}
	if _, errno := to.Lookup(ctx, newName, &gofuse.EntryOut{}); errno == 0 {
		return syscall.EEXIST
	}
	d.mu.Lock()
	delete(d.pending, name)
	d.mu.Unlock()
	to.mu.Lock()
	to.pending[newName] = f
	to.mu.Unlock()
	return f.moved(ctx, to, newName)
}

// Mknod, Symlink and Link have no meaning in a quarantine: EPERM.
func (d *dirNode) Mknod(ctx context.Context, name string, mode, dev uint32, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

// Symlink is refused: EPERM.
func (d *dirNode) Symlink(ctx context.Context, target, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

// Link is refused: EPERM.
func (d *dirNode) Link(ctx context.Context, target fs.InodeEmbedder, name string, out *gofuse.EntryOut) (*fs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

package replicator

import (
	"bytes"
	"fmt"
	"io"
	"os"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// spoolMemory is how much of a body a bodySpool keeps in memory; the rest
// goes to its temporary file.
const spoolMemory = 1 << 20

// bodySpool keeps a copy of a body while it is put, so that the put can
// still store it whole on this node if the write quorum is missed after the
// body was streamed. The first spoolMemory bytes stay in memory, the rest
// go to a temporary file that is unlinked as soon as it is created (nothing
// is left behind by a crash) and never fsync'd: the kernel drops its dirty
// pages when it is closed, normally before they are written back, so the
// copy costs a memory copy, not disk writes. Only a put that falls back
// writes the body to the store (fsync'd, as a 1+0 shard).
//
// A spool that fails (no space for the temporary file) records the error
// and takes no more bytes; the put goes on without a fallback.
type bodySpool struct {
	dir  string
	mem  []byte
	f    *os.File
	name string // set if the file could not be unlinked at once
	size int64  // bytes in f
	err  error
}

// newBodySpool returns a spool with its temporary file (when needed) in dir,
// or os.TempDir() if dir is "".
func newBodySpool(dir string) *bodySpool {
	if dir == "" {
		dir = os.TempDir()
	}
	return &bodySpool{dir: dir}
}

// Write keeps p. It never fails, so that a spool problem does not fail the
// put it serves: see err.
func (s *bodySpool) Write(p []byte) (int, error) {
	if s.err != nil {
		return len(p), nil
	}
	if room := spoolMemory - len(s.mem); room > 0 {
		k := min(room, len(p))
		s.mem = append(s.mem, p[:k]...)
		p = p[k:]
	}
	if len(p) == 0 {
		return len(p), nil
	}
	if s.f == nil {
		f, err := os.CreateTemp(s.dir, "lazaret-put-*")
		if err != nil {
			s.fail(err)
			return len(p), nil
		}
		s.f = f
		if err := os.Remove(f.Name()); err != nil {
			s.name = f.Name()
		}
	}
	k, err := s.f.Write(p)
	s.size += int64(k)
	if err != nil {
		s.fail(err)
	}
	return len(p), nil
}

func (s *bodySpool) fail(err error) {
	s.err = fmt.Errorf("spooling the body for a whole copy: %w", err)
	s.mem = nil
}

// body returns a reader of the spooled body.
func (s *bodySpool) body() io.Reader {
	if s.f == nil {
		return bytes.NewReader(s.mem)
	}
	return io.MultiReader(bytes.NewReader(s.mem), io.NewSectionReader(s.f, 0, s.size))
}

// close releases the spool. It is idempotent.
func (s *bodySpool) close() {
	if s.f != nil {
		s.f.Close()
		if s.name != "" {
			os.Remove(s.name)
		}
		s.f = nil
	}
	s.mem = nil
	if s.err == nil {
		s.err = fmt.Errorf("spool closed")
	}
}

// storeWhole writes the spooled body of m (size and SHA-256 already set)
// to this node's store as a whole copy, shard 0 of a 1+0 code, and
// finishes it: the caller commits it with m or aborts it. The copy must
// match m's size and SHA-256.
func (n *Node) storeWhole(m *lazaret.Metadata, s *bodySpool) (*objstore.ShardWriter, lazaret.ShardLoc, error) {
	var none lazaret.ShardLoc
	if s == nil {
		return nil, none, fmt.Errorf("no copy of the body kept (strict mode, or this node's shard is one)")
	}
	if s.err != nil {
		return nil, none, s.err
	}
	w, err := n.store.NewShardWriter(m.ID, objstore.ShardSpec{K: 1, M: 0, Index: 0, BodySize: -1})
	if err != nil {
		return nil, none, err
	}
	if _, err := io.Copy(w, s.body()); err != nil {
		w.Abort()
		return nil, none, fmt.Errorf("writing the whole copy: %w", err)
	}
	info, err := w.Finish()
	if err != nil {
		w.Abort()
		return nil, none, fmt.Errorf("writing the whole copy: %w", err)
	}
	if info.Size != m.Size || info.SHA256 != m.SHA256 {
		w.Abort()
		return nil, none, fmt.Errorf("%w: whole copy of %d bytes SHA-256 %x, the body had %d bytes %x", lazaret.ErrCorrupt, info.Size, info.SHA256[:8], m.Size, m.SHA256[:8])
	}
	return w, lazaret.ShardLoc{Index: 0, Node: n.cfg.NodeNumber, Size: info.Size, SHA256: info.SHA256}, nil
}

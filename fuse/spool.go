package fuse

import (
	"io"
	"os"
)

// spool holds one body being written or read: in memory up to a limit,
// beyond that in an unlinked temporary file, so that a large message costs
// disk rather than memory and leaves nothing behind when the process dies.
type spool struct {
	mem    []byte
	f      *os.File
	size   int64
	memMax int64
	dir    string
}

func newSpool(memMax int64, dir string) *spool { return &spool{memMax: memMax, dir: dir} }

// expect reserves memory for a body of n bytes when it fits the memory
// limit, so that spooling it copies once.
func (s *spool) expect(n int64) {
	if s.f == nil && n <= s.memMax && int64(cap(s.mem)) < n {
		s.mem = append(make([]byte, 0, n), s.mem...)
	}
}

// WriteAt writes p at off, growing the spool as needed.
func (s *spool) WriteAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if s.f == nil && end > s.memMax {
		if err := s.spill(); err != nil {
			return 0, err
		}
	}
	if s.f != nil {
		n, err := s.f.WriteAt(p, off)
		if e := off + int64(n); e > s.size {
			s.size = e
		}
		return n, err
	}
	if end > int64(len(s.mem)) {
		if end <= int64(cap(s.mem)) {
			s.mem = s.mem[:end]
		} else {
			s.mem = append(s.mem, make([]byte, end-int64(len(s.mem)))...)
		}
	}
	copy(s.mem[off:], p)
	if end > s.size {
		s.size = end
	}
	return len(p), nil
}

// Write appends p.
func (s *spool) Write(p []byte) (int, error) { return s.WriteAt(p, s.size) }

func (s *spool) spill() error {
	f, err := os.CreateTemp(s.dir, "lazaret-fuse-*")
	if err != nil {
		return err
	}
	os.Remove(f.Name()) // unlinked: gone with the process, whatever happens
	if _, err := f.Write(s.mem[:s.size]); err != nil {
		f.Close()
		return err
	}
	s.f, s.mem = f, nil
	return nil
}

// ReadAt reads from the spooled bytes.
func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if off >= s.size {
		return 0, io.EOF
	}
	if int64(len(p)) > s.size-off {
		p = p[:s.size-off]
	}
	if s.f != nil {
		return s.f.ReadAt(p, off)
	}
	return copy(p, s.mem[off:s.size]), nil
}

// Truncate sets the size to n.
func (s *spool) Truncate(n int64) error {
	if s.f != nil {
		if err := s.f.Truncate(n); err != nil {
			return err
		}
	} else if n > int64(len(s.mem)) {
		s.mem = append(s.mem, make([]byte, n-int64(len(s.mem)))...)
	} else {
		clear(s.mem[n:])
		s.mem = s.mem[:n]
	}
	s.size = n
	return nil
}

// Size is the spooled size.
func (s *spool) Size() int64 { return s.size }

// Reader reads the whole spool from the start.
func (s *spool) Reader() io.Reader { return io.NewSectionReader(s, 0, s.size) }

// Close frees the memory and the file.
func (s *spool) Close() {
	if s.f != nil {
		s.f.Close()
		s.f = nil
	}
	s.mem, s.size = nil, 0
}

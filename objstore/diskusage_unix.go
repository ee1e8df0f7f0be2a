//go:build unix

package objstore

import (
	"io/fs"
	"syscall"
)

// diskUsage returns the bytes allocated to a file.
func diskUsage(fi fs.FileInfo) int64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int64(st.Blocks) * 512
	}
	return fi.Size()
}

// statFree returns the bytes an unprivileged user may still write on the
// file system of the store, or -1 if it cannot tell.
func (s *Store) statFree() int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.cfg.Dir, &st); err != nil {
		return -1
	}
	return int64(st.Bavail) * int64(st.Bsize) //nolint:unconvert // field types differ between platforms
}

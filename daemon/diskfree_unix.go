//go:build unix

package daemon

import "golang.org/x/sys/unix"

// diskSpace returns the bytes an unprivileged user may still write on the
// file system holding dir, and the file system's size, or -1, -1 if it
// cannot tell.
func diskSpace(dir string) (free, size int64) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1, -1
	}
	bs := uint64(st.Bsize) //nolint:unconvert // field types differ between platforms
	return int64(uint64(st.Bavail) * bs), int64(uint64(st.Blocks) * bs)
}

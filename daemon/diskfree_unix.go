//go:build unix

package daemon

import "golang.org/x/sys/unix"

// diskFree returns the bytes an unprivileged user may still write on the
// file system holding dir, or -1 if it cannot tell.
func diskFree(dir string) int64 {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return -1
	}
	return int64(uint64(st.Bavail) * uint64(st.Bsize)) //nolint:unconvert // field types differ between platforms
}

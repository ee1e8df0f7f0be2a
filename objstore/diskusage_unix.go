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

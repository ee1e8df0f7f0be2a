//go:build !unix

package objstore

import "io/fs"

// diskUsage returns the size of a file.
func diskUsage(fi fs.FileInfo) int64 { return fi.Size() }

//go:build !unix

package objstore

import "io/fs"

// diskUsage returns the size of a file.
func diskUsage(fi fs.FileInfo) int64 { return fi.Size() }

// statFree cannot tell on this platform.
func (s *Store) statFree() int64 { return -1 }

//go:build !unix

package daemon

// diskSpace cannot tell free space and size on this platform.
func diskSpace(dir string) (free, size int64) { return -1, -1 }

//go:build !unix

package daemon

// diskFree cannot tell the free space on this platform.
func diskFree(dir string) int64 { return -1 }

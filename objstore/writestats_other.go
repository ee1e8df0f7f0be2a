//go:build !linux

package objstore

// deviceWriteBytes is unknown off Linux.
func deviceWriteBytes() int64 { return -1 }

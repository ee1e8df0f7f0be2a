package fuse

import (
	"context"
	"errors"
	"syscall"

	"github.com/lazaret/lazaret"
)

// errno maps a store error to the errno a tool sees.
func errno(err error) syscall.Errno {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, lazaret.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, lazaret.ErrTooLarge):
		return syscall.EFBIG
	case errors.Is(err, lazaret.ErrInvalidID), errors.Is(err, lazaret.ErrInvalidArgument):
		return syscall.EINVAL
	case errors.Is(err, lazaret.ErrConflict):
		return syscall.EEXIST
	case errors.Is(err, context.Canceled):
		return syscall.EINTR
	}
	// Corrupt, unavailable, timed out, the node gone: never wrong bytes,
	// never a hang.
	return syscall.EIO
}

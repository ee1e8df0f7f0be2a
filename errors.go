package lazaret

import (
	"errors"
	"fmt"
)

// Sentinel errors. Operations wrap them in an *[Error] that names the operation
// and the message, so callers test with errors.Is and people read the context.
var (
	// ErrNotFound: no such message (never stored, expired, or deleted).
	ErrNotFound = errors.New("message not found")
	// ErrInvalidID: the string is not a Lazaret/Exim message id.
	ErrInvalidID = errors.New("invalid message id")
	// ErrInvalidArgument: the request is malformed (empty body, bad filter, ...).
	ErrInvalidArgument = errors.New("invalid argument")
	// ErrTooLarge: the body exceeds the configured maximum size.
	ErrTooLarge = errors.New("message too large")
	// ErrCorrupt: stored bytes failed their checksum.
	ErrCorrupt = errors.New("checksum mismatch: stored data is corrupt")
	// ErrUnavailable: the node cannot accept or serve the request right now
	// (disk full, shutting down, too few peers in strict mode). Retry later.
	ErrUnavailable = errors.New("temporarily unavailable")
	// ErrIDSpaceExhausted: the allocator cannot issue an id without risking a
	// duplicate (clock beyond the id format's range, or node number out of range).
	ErrIDSpaceExhausted = errors.New("message id space exhausted")
	// ErrConflict: the operation does not apply in the message's current state
	// (for example learning a deleted message).
	ErrConflict = errors.New("conflicting message state")
)

// Error records a failed operation on a message, in the manner of *fs.PathError.
type Error struct {
	Op  string // operation, e.g. "get", "put", "objstore.read"
	ID  ID     // message id, if known
	Err error  // underlying error; often one of the sentinels above
}

func (e *Error) Error() string {
	if e.ID == "" {
		return e.Op + ": " + e.Err.Error()
	}
	return fmt.Sprintf("%s %s: %v", e.Op, e.ID, e.Err)
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an *Error for op and id whose underlying error is formatted
// from format and args (use %w to keep a sentinel visible to errors.Is).
func Errorf(op string, id ID, format string, args ...any) error {
	return &Error{Op: op, ID: id, Err: fmt.Errorf(format, args...)}
}

// ErrDiskFull: the node's data file system has too little free space to
// write safely. It is a temporary error: errors.Is(ErrDiskFull,
// ErrUnavailable) holds, so every frontend answers "try again later"
// (gRPC Unavailable, SMTP 452), and writes resume by themselves once space
// is freed.
var ErrDiskFull error = diskFullError{}

type diskFullError struct{}

func (diskFullError) Error() string { return "disk full (temporarily unavailable)" }

// Is makes ErrDiskFull match ErrUnavailable.
func (diskFullError) Is(target error) bool { return target == ErrUnavailable }

// Temporary returns err as a temporary error: unchanged when it already is
// one (so that ErrDiskFull and the like stay visible to errors.Is),
// otherwise wrapped so that errors.Is finds ErrUnavailable and no other
// sentinel err may carry.
func Temporary(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

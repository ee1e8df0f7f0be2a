package wire

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
)

// codeMap pairs each domain sentinel with the gRPC code it travels as. The
// client maps codes back, so errors.Is works on both sides of the socket.
var codeMap = []struct {
	err  error
	code codes.Code
}{
	{lazaret.ErrNotFound, codes.NotFound},
	{lazaret.ErrInvalidID, codes.InvalidArgument},
	{lazaret.ErrInvalidArgument, codes.InvalidArgument},
	{lazaret.ErrTooLarge, codes.ResourceExhausted},
	{lazaret.ErrIDSpaceExhausted, codes.ResourceExhausted},
	{lazaret.ErrCorrupt, codes.DataLoss},
	{lazaret.ErrUnavailable, codes.Unavailable},
	{lazaret.ErrConflict, codes.FailedPrecondition},
	{lazaret.ErrDeliveryFailed, codes.Aborted},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// Status turns a domain error into a gRPC status error whose message is the
// error's full text: the one mapping used by every gRPC server of a node
// (the local API and the peer API). A gRPC status passes through unchanged.
func Status(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok && !isDomain(err) {
		return err
	}
	for _, c := range codeMap {
		if errors.Is(err, c.err) {
			return status.Error(c.code, err.Error())
		}
	}
	return status.Error(codes.Internal, err.Error())
}

func isDomain(err error) bool {
	for _, c := range codeMap {
		if errors.Is(err, c.err) {
			return true
		}
	}
	return false
}

// RemoteError is an error reported by a node over gRPC. It unwraps to the
// domain sentinel matching its code, when there is one.
type RemoteError struct {
	Code    codes.Code
	Message string
	err     error
}

func (e *RemoteError) Error() string { return e.Message }

// Unwrap returns the matching domain sentinel, or nil.
func (e *RemoteError) Unwrap() error { return e.err }

// FromStatus turns a gRPC status error into a *RemoteError.
func FromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	re := &RemoteError{Code: st.Code(), Message: st.Message(), err: Sentinel(st.Code())}
	if st.Code() == codes.Unavailable && re.Message == "" {
		re.Message = "node unavailable"
	}
	return re
}

// Sentinel returns the domain error a gRPC code stands for, or nil for codes
// that have none (Internal, Unknown, ...). Where several sentinels share a
// code, the general one is returned (InvalidArgument: ErrInvalidArgument).
func Sentinel(code codes.Code) error {
	switch code {
	case codes.NotFound:
		return lazaret.ErrNotFound
	case codes.InvalidArgument:
		return lazaret.ErrInvalidArgument
	case codes.ResourceExhausted:
		return lazaret.ErrTooLarge
	case codes.DataLoss:
		return lazaret.ErrCorrupt
	case codes.Unavailable:
		return lazaret.ErrUnavailable
	case codes.FailedPrecondition:
		return lazaret.ErrConflict
	case codes.Aborted:
		return lazaret.ErrDeliveryFailed
	case codes.Canceled:
		return context.Canceled
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	}
	return nil
}

package rpc

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

// toStatus turns a domain error into a gRPC status error whose message is the
// error's full text.
func toStatus(err error) error {
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

// fromStatus turns a gRPC status error into a *RemoteError.
func fromStatus(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	re := &RemoteError{Code: st.Code(), Message: st.Message()}
	switch st.Code() {
	case codes.NotFound:
		re.err = lazaret.ErrNotFound
	case codes.InvalidArgument:
		re.err = lazaret.ErrInvalidArgument
	case codes.ResourceExhausted:
		re.err = lazaret.ErrTooLarge
	case codes.DataLoss:
		re.err = lazaret.ErrCorrupt
	case codes.Unavailable:
		re.err = lazaret.ErrUnavailable
		if re.Message == "" {
			re.Message = "node unavailable"
		}
	case codes.FailedPrecondition:
		re.err = lazaret.ErrConflict
	case codes.Aborted:
		re.err = lazaret.ErrDeliveryFailed
	case codes.Canceled:
		re.err = context.Canceled
	case codes.DeadlineExceeded:
		re.err = context.DeadlineExceeded
	}
	return re
}

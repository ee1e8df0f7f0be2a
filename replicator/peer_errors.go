package replicator

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
)

// peerCodes maps domain errors to gRPC codes on the peer API, in order of
// precedence.
var peerCodes = []struct {
	err  error
	code codes.Code
}{
	{lazaret.ErrNotFound, codes.NotFound},
	{lazaret.ErrInvalidID, codes.InvalidArgument},
	{lazaret.ErrInvalidArgument, codes.InvalidArgument},
	{lazaret.ErrTooLarge, codes.ResourceExhausted},
	{lazaret.ErrCorrupt, codes.DataLoss},
	{lazaret.ErrUnavailable, codes.Unavailable},
	{lazaret.ErrConflict, codes.FailedPrecondition},
	{context.Canceled, codes.Canceled},
	{context.DeadlineExceeded, codes.DeadlineExceeded},
}

// peerStatus turns an error of a peer handler into a gRPC status error.
func peerStatus(err error) error {
	if err == nil {
		return nil
	}
	for _, c := range peerCodes {
		if errors.Is(err, c.err) {
			return status.Error(c.code, err.Error())
		}
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

// peerError turns an error from a peer call into one that wraps the domain
// sentinel of its code; anything unexpected from a peer counts as the peer
// being unavailable.
func peerError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return fmt.Errorf("%w: %v", lazaret.ErrUnavailable, err)
	}
	for _, c := range peerCodes {
		if c.code == st.Code() {
			return fmt.Errorf("%w: %s", c.err, st.Message())
		}
	}
	return fmt.Errorf("%w: peer: %s: %s", lazaret.ErrUnavailable, st.Code(), st.Message())
}

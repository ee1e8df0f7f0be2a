package wire

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
)

// PeerError turns an error from a call to another node's peer API into one
// that wraps the domain sentinel of its code; anything unexpected from a
// peer counts as the peer being unavailable. (The peer API's handlers map
// their errors with Status, like the local API.)
func PeerError(err error) error {
	if err == nil {
		return nil
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		return lazaret.Temporary(err)
	}
	if s := Sentinel(st.Code()); s != nil {
		return fmt.Errorf("%w: %s", s, st.Message())
	}
	return fmt.Errorf("%w: peer: %s: %s", lazaret.ErrUnavailable, st.Code(), st.Message())
}

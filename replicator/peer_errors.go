package replicator

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// peerStatus turns an error of a peer handler into a gRPC status error, with
// the same mapping as the local API (rpc.Status).
func peerStatus(err error) error { return rpc.Status(err) }

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
		return lazaret.Temporary(err)
	}
	if s := rpc.Sentinel(st.Code()); s != nil {
		return fmt.Errorf("%w: %s", s, st.Message())
	}
	return fmt.Errorf("%w: peer: %s: %s", lazaret.ErrUnavailable, st.Code(), st.Message())
}

// Package clustertest helps tests probe the peer port (TCP 1027): it calls
// every method of the peer API, whatever its request type, to check what a
// given client certificate is allowed to do.
package clustertest

import (
	"context"
	"errors"
	"io"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/lazaret/lazaret/proto/lazaretpb"
)

// PeerMethods lists every method of the peer service from its descriptor,
// so a method added to peer.proto is covered without touching the tests.
func PeerMethods() []string {
	var out []string
	for _, m := range lazaretpb.Peer_ServiceDesc.Methods {
		out = append(out, m.MethodName)
	}
	for _, s := range lazaretpb.Peer_ServiceDesc.Streams {
		out = append(out, s.StreamName)
	}
	return out
}

// CallEveryMethod calls each peer method once over cc with an empty request
// (an empty message decodes as any request type, so every call reaches
// authorisation) and returns each method's status code. Each call is
// bounded by timeout.
func CallEveryMethod(cc grpc.ClientConnInterface, timeout time.Duration) map[string]codes.Code {
	out := map[string]codes.Code{}
	for _, name := range PeerMethods() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		full := "/" + lazaretpb.Peer_ServiceDesc.ServiceName + "/" + name
		var err error
		if sd := streamDesc(name); sd != nil {
			var cs grpc.ClientStream
			if cs, err = cc.NewStream(ctx, sd, full); err == nil {
				// A refused stream may already be closed: io.EOF from Send
				// means the status waits in RecvMsg.
				if err = cs.SendMsg(&emptypb.Empty{}); err == nil || errors.Is(err, io.EOF) {
					cs.CloseSend()
					err = cs.RecvMsg(&emptypb.Empty{})
				}
			}
		} else {
			err = cc.Invoke(ctx, full, &emptypb.Empty{}, &emptypb.Empty{})
		}
		cancel()
		out[name] = status.Code(err)
	}
	return out
}

func streamDesc(name string) *grpc.StreamDesc {
	for i, s := range lazaretpb.Peer_ServiceDesc.Streams {
		if s.StreamName == name {
			return &lazaretpb.Peer_ServiceDesc.Streams[i]
		}
	}
	return nil
}

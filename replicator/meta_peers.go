package replicator

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/lazaret/lazaret"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
)

// Asking peers for a record
//
// A node can lack the record of a message that exists: it was down or cut
// off while the message was put and pushed, or came back with a wiped
// disk, and anti-entropy has not reached it yet. It can also hold a
// placement older than the shards (a spread or fill published since).
// Answering "not found", or failing a read, would then be wrong; a client
// would give up on a message that exists. So such a node asks every alive
// peer for its record (GetMeta), merges the answers into its store, and
// goes on. Not found is answered only when every alive peer answered
// without a record; if some could not be asked, the answer is temporary.

// errNoRecord marks a lookup every alive peer answered without a record.
var errNoRecord = errors.New("no node holds a record")

// fetchFromPeers asks every alive peer for id's record and merges what
// they hold into the local store (see lazaret.Merge). It returns nil once
// some peer held a record; errNoRecord (wrapping lazaret.ErrNotFound) when
// every alive peer answered without one; a temporary error when some could
// not be asked and none held one.
func (n *Node) fetchFromPeers(ctx context.Context, op string, id lazaret.ID) error {
	cl := n.cl
	_, alive, self := cl.liveMembers()
	req := &pb.GetMetaRequest{Ids: []string{string(id)}}
	var (
		mu     sync.Mutex
		merged *lazaret.Metadata
		errs   []error
		wg     sync.WaitGroup
	)
	for _, mb := range alive {
		if mb.Number == self.Number {
			continue
		}
		wg.Go(func() {
			client, err := cl.peer(mb.Number)
			var resp *pb.GetMetaResponse
			if err == nil {
				cctx, cancel := context.WithTimeout(ctx, cl.cfg.PeerTimeout)
				resp, err = client.GetMeta(cctx, req)
				cancel()
				err = wire.PeerError(err)
			}
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %d: %w", mb.Number, err))
				return
			}
			for _, p := range resp.GetMessages() {
				if m := wire.MessageFromPB(p); m.ID == id {
					merged = lazaret.Merge(merged, m)
				}
			}
		})
	}
	wg.Wait()
	if merged != nil {
		if _, err := n.mergeOne(ctx, merged); err != nil { // push.go
			return &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: storing the record a peer holds: %v", lazaret.ErrUnavailable, err)}
		}
		return nil
	}
	if len(errs) > 0 {
		return &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: no record here, and not every node could be asked: %w", lazaret.ErrUnavailable, errors.Join(errs...))}
	}
	return &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: %w", lazaret.ErrNotFound, errNoRecord)}
}

// liveHere returns id's live record like live, asking the peers first when
// this node holds no record of it at all (see fetchFromPeers). It must not
// be called under id's lock.
func (n *Node) liveHere(ctx context.Context, op string, id lazaret.ID) (*lazaret.Metadata, error) {
	if err := n.recordHere(ctx, op, id); err != nil {
		return nil, err
	}
	return n.live(op, id)
}

// recordHere makes sure this node stores a record of id if any alive peer
// does: a no-op when it has one (or on a single node). It must not be
// called under id's lock.
func (n *Node) recordHere(ctx context.Context, op string, id lazaret.ID) error {
	_, err := n.store.Meta(id)
	if n.cl == nil || !errors.Is(err, lazaret.ErrNotFound) {
		return nil // found, or an error live reports itself
	}
	return n.fetchFromPeers(ctx, op, id)
}

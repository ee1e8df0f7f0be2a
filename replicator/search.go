package replicator

import (
	"context"
	"errors"

	"github.com/lazaret/lazaret"
)

// Searcher answers List queries from a shared index (PostgreSQL, package
// index/postgres) with the same results and cursors as the local store.
type Searcher interface {
	Search(ctx context.Context, q lazaret.ListQuery) (*lazaret.ListPage, error)
}

// IndexFeed reports on the feed into the shared index (index.Feeder).
type IndexFeed interface {
	// Reachable reports whether the last attempt to reach the index
	// succeeded; List does not wait on an index known to be down.
	Reachable() bool
	// Status describes the backlog, for Node.Status.
	Status() lazaret.IndexStatus
}

type indexHooks struct {
	searcher Searcher
	feed     IndexFeed
}

// SetIndex makes List answer from searcher while feed reports it reachable,
// and Status report feed. Either may be nil. Call it before serving.
func (n *Node) SetIndex(searcher Searcher, feed IndexFeed) {
	n.index.Store(&indexHooks{searcher: searcher, feed: feed})
}

// search answers a normalized query from the shared index when one is set
// and reachable, else (or if it fails) from the local store. The page's
// Source says which answered.
func (n *Node) search(ctx context.Context, q lazaret.ListQuery) (*lazaret.ListPage, error) {
	if h := n.index.Load(); h != nil && h.searcher != nil && (h.feed == nil || h.feed.Reachable()) {
		page, err := h.searcher.Search(ctx, q)
		if err == nil {
			return page, nil
		}
		if ctx.Err() != nil || errors.Is(err, lazaret.ErrInvalidArgument) {
			return nil, err
		}
		n.log.Warn("list: shared index failed; answering from the local store", "err", err)
	}
	return n.store.List(ctx, q)
}

func (n *Node) indexStatus() *lazaret.IndexStatus {
	h := n.index.Load()
	if h == nil || h.feed == nil {
		return nil
	}
	st := h.feed.Status()
	return &st
}

package replicator

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/member"
)

// Write guarantees
//
// When Put returns a message on a member of a cluster (it is acknowledged):
//
//   - Its metadata is fsync'd on this node (the origin), in the same
//     transaction as this node's shard or whole copy, if any.
//   - Normally, at least the write quorum of shards (default k+1) is
//     fsync'd on distinct nodes, and every node of the placement was asked
//     to take the metadata: at least quorum-1 of the other shard holders
//     answered that they stored it, unless that did not happen within
//     StragglerGrace (logged, and counted in Status as a health problem).
//     So losing the origin right after the acknowledgement loses neither
//     the body (k of the quorum's shards remain) nor the message (its
//     holders know it and its placement, and serve Stat, Get, List, Learn,
//     Release and Delete).
//   - Otherwise — too few nodes alive before the put, or nodes failing
//     during it so that the quorum is missed — the body is stored whole on
//     this node and fsync'd, and the message is marked under-protected (a
//     1+0 copy; for a replicated body whose copy this node holds, the
//     copies that were stored, 1+m). Strict mode refuses instead with
//     lazaret.ErrUnavailable, a temporary error, and nothing is kept.
//   - A slow or hung node does not hold it up for PeerTimeout: a shard
//     stream that takes no data for StragglerGrace while the others keep up
//     is given up (while the body is sent), the put waits at most
//     StragglerGrace for the other shards once the write quorum is stored,
//     and at most StragglerGrace for the metadata pushes. Only a put whose
//     quorum needs the hung node's shard (other nodes having failed) waits
//     for it, up to PeerTimeout, before it falls back to the whole copy.
//
// Shard writes that did not answer within the grace period go on in the
// background, under the node's lifetime rather than the request's: one
// that succeeds is added to the placement (a new metadata version, pushed
// to every member), one that fails leaves the message under-protected for
// repair. Every other member gets the metadata from
// the asynchronous push (push.go), and anti-entropy catches up what that
// misses.
//
// A put that fails or misses its quorum leaves nothing visible: shards are
// only readable through a placement in committed metadata; this node's
// writers are aborted, and peers that may have stored a shard are asked
// to delete it (best effort; a shard whose message never got metadata
// expires as an orphan at the retention cut-off, objstore.Store.Expire).
//
// To be able to fall back to a whole copy after the body has been
// streamed, the put keeps a copy of the body while it streams it (unless
// this node's own shard is already a whole copy, or in strict mode): in
// memory up to 1 MiB, beyond that in an unlinked temporary file that is
// never fsync'd (bodySpool). Only a put that falls back writes the body to
// the store, fsync'd. Measured with BenchmarkClusterPut, teeing every body
// into an fsync'd ShardWriter instead cost about a fifth of the put
// throughput (large bodies paid a second full write on the origin).
// Rebuilding the body from the shards already stored would work only with
// at least k of them, and would read them back over the network at the
// worst moment.

// putCluster is Put on a member of a cluster:
//
//  1. Pick the code: the cluster's k+m, or 1+m replication for a body
//     smaller than SmallMessageThreshold (read ahead to decide).
//  2. Place shard i on the i-th alive member by rendezvous weight; with
//     fewer alive members than the write quorum, keep the body whole on
//     this node (a 1+0 code, under-protected), or refuse in strict mode.
//  3. Stream the body in stripes; each shard goes to its node through its
//     own shardRunner (the local one into an objstore ShardWriter, the
//     others over PutShard, where the receiver fsyncs before answering),
//     and the body to a spool (see Write guarantees).
//  4. Wait for the shard acknowledgements: once the write quorum is
//     stored, at most StragglerGrace more (but always for this node's own
//     shard).
//  5. With the write quorum stored, commit the metadata with the placement
//     (and the local shard, in the same fsync); fewer than k+m shards
//     stored marks the message under-protected. Without it, store the
//     spooled body whole and commit it, under-protected (or refuse in
//     strict mode).
//  6. Push the metadata to the shard holders and wait for them (at most
//     StragglerGrace), queue it for every member; the put is acknowledged.
func (n *Node) putCluster(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	const op = "put"
	cl := n.cl
	id := req.ID // validated by Put
	var err error
	if id != "" {
		if old, err := n.store.Meta(id); err == nil {
			return n.retriedPut(ctx, old, req, body)
		} else if !errors.Is(err, lazaret.ErrNotFound) {
			return nil, &lazaret.Error{Op: op, ID: id, Err: err}
		}
	} else if id, err = n.alloc.Next(); err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}

	var hdr lazaret.HeaderCapture
	bodySHA, bodyMD5 := sha256.New(), md5.New()
	limited := &io.LimitedReader{R: ctxReader{ctx, body}, N: n.cfg.MaxMessageSize + 1}
	in := io.TeeReader(limited, io.MultiWriter(&hdr, bodySHA, bodyMD5))

	all, alive, self := cl.liveMembers()
	code := clusterCode(cl.policy, all)
	src := in
	if t := cl.cfg.SmallMessageThreshold; t > 0 && code.K > 1 {
		var head bytes.Buffer
		_, err := io.CopyN(&head, in, t)
		switch {
		case err == io.EOF:
			code = erasure.Code{K: 1, M: code.M}
			src = &head
		case err != nil:
			return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("reading body: %w", err)}
		default:
			src = io.MultiReader(&head, in)
		}
	}
	targets := placeShards(id, alive, code.Shards())
	quorum := erasure.WriteQuorum(cl.cfg.WriteQuorum, code)
	under := false
	if len(targets) < quorum {
		if cl.cfg.Strict {
			return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: %d of %d nodes alive, %v needs %d (strict mode)", lazaret.ErrUnavailable, len(alive), len(all), code, quorum)}
		}
		n.log.Warn("put: too few nodes alive for the write quorum; keeping the body whole here (under-protected)",
			"id", id, "alive", len(alive), "code", code.String(), "quorum", quorum)
		code, quorum, under = erasure.Code{K: 1, M: 0}, 1, true
		targets = []member.Member{self}
	}
	selfTarget := slices.ContainsFunc(targets, func(m member.Member) bool { return m.Number == self.Number })
	var spool *bodySpool
	if !cl.cfg.Strict && !(code.K == 1 && selfTarget) {
		spool = newBodySpool(cl.cfg.SpoolDir)
		defer spool.close()
		src = io.TeeReader(src, spool)
	}

	chunk := cl.cfg.StripeChunkSize
	grace := cl.cfg.StragglerGrace
	enc, err := cl.codecs.Get(code)
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	p, err := n.startShards(id, code, chunk, targets)
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	// A runner lags when at least quorum-1 others wait for data: the put
	// can go on without it.
	behind := func(r *shardRunner) bool { return p.caughtUp(r) >= max(quorum-1, 1) }
	size, err := erasure.EncodeStripes(enc, code, chunk, src, func(pieces [][]byte) error {
		for i, r := range p.runners {
			if err := r.feed(ctx, grace, behind, pieces[i]); err != nil {
				return err
			}
		}
		return nil
	})
	switch {
	case err == nil && size > n.cfg.MaxMessageSize:
		err = fmt.Errorf("%w: over the %d-byte limit", lazaret.ErrTooLarge, n.cfg.MaxMessageSize)
	case err == nil && size == 0:
		err = fmt.Errorf("%w: empty body", lazaret.ErrInvalidArgument)
	case err != nil:
		err = fmt.Errorf("reading body: %w", err)
	}
	if err != nil {
		p.end(false, 0)
		p.discardAll(nil)
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	p.end(true, size)
	stored, err := p.collect(ctx, quorum, grace)
	if err != nil {
		p.discardAll(nil)
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}

	var sum [32]byte
	bodySHA.Sum(sum[:0])
	if err := checkRestoredBody(req, size, sum); err != nil { // restore.go
		p.discardAll(nil)
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	m := n.newMetadata(id, req, hdr.Header(), size, sum)
	bodyMD5.Sum(m.MD5[:0])

	// Decide what to commit: the placement of the shards stored, or a
	// whole copy on this node.
	m.Placement = lazaret.Placement{K: code.K, M: code.M, ChunkSize: chunk, Shards: p.storedLocs(), UnderProtected: under || stored < code.Shards()}
	local := p.localWriter()
	var late, drop []*shardRunner   // runners to adopt or discard after the commit
	var whole *objstore.ShardWriter // the whole copy, if the put falls back to it
	for _, r := range p.runners {
		switch {
		case !r.collected:
			late = append(late, r)
		case r.err != nil:
			n.log.Warn("put: shard not stored; message under-protected", "id", id, "shard", r.index, "node", r.node, "err", r.err)
			drop = append(drop, r)
		}
	}
	switch {
	case stored >= quorum:
	case cl.cfg.Strict:
		p.discardAll(nil)
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: %d of %d shards stored, the write quorum is %d (strict mode): %v", lazaret.ErrUnavailable, stored, len(targets), quorum, p.failures())}
	case code.K == 1 && local != nil:
		n.log.Warn("put: write quorum not reached; keeping the copies stored, this node's included (under-protected)",
			"id", id, "stored", stored, "quorum", quorum, "err", p.failures())
		m.Placement.UnderProtected = true
	default:
		w, loc, err := n.storeWhole(m, spool) // cluster_put_spool.go
		if err != nil {
			err = errors.Join(p.failures(), fmt.Errorf("whole copy on this node: %w", err))
			p.discardAll(nil)
			n.log.Warn("put: write quorum not reached", "id", id, "stored", stored, "quorum", quorum, "err", err)
			return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: %d of %d shards stored, the write quorum is %d: %v", lazaret.ErrUnavailable, stored, len(targets), quorum, err)}
		}
		n.log.Warn("put: write quorum not reached; keeping the body whole here (under-protected)",
			"id", id, "stored", stored, "quorum", quorum, "err", p.failures())
		m.Placement = lazaret.Placement{K: 1, M: 0, ChunkSize: chunk, Shards: []lazaret.ShardLoc{loc}, UnderProtected: true}
		local, whole = w, w
		late, drop = nil, p.runners
	}
	abortWhole := func() {
		if whole != nil {
			whole.Abort()
		}
	}

	unlock := n.lock(id)
	if old, err := n.store.Meta(id); err == nil {
		unlock()
		// A concurrent put of the same id won: its shards may be on the
		// same nodes as ours, so leave those nodes alone.
		p.discardAll(placementNodes(old))
		abortWhole()
		if old.SHA256 == m.SHA256 && old.State != lazaret.StateDeleted {
			if req.Restore != nil {
				return n.restoreOnto(ctx, req.Restore, req.Sender, req.Recipients, m.MD5)
			}
			return old, nil // a concurrent retry of the same put
		}
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: id already holds another message", lazaret.ErrConflict)}
	} else if !errors.Is(err, lazaret.ErrNotFound) {
		unlock()
		p.discardAll(nil)
		abortWhole()
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	var ws []*objstore.ShardWriter
	if local != nil {
		ws = append(ws, local)
	}
	if err := n.store.Commit(ctx, m, ws...); err != nil {
		unlock()
		p.discardAll(nil)
		abortWhole()
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.Temporary(err)}
	}
	n.trackUnder(m)
	unlock()

	for _, r := range drop {
		p.discard(r, nil)
	}
	for _, r := range late {
		p.adopt(r)
	}
	n.pushToHolders(m, quorum) // push.go
	cl.push.enqueue(m.Clone())
	return m, nil
}

// retriedPut answers a put of an id that is already stored: the same body
// gets the stored metadata back (a writer retrying after a lost
// acknowledgement), or for a restore the restored metadata; anything else
// is a conflict.
func (n *Node) retriedPut(ctx context.Context, old *lazaret.Metadata, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	h, h5 := sha256.New(), md5.New()
	size, err := io.Copy(io.MultiWriter(h, h5), &io.LimitedReader{R: ctxReader{ctx, body}, N: n.cfg.MaxMessageSize + 1})
	if err != nil {
		return nil, &lazaret.Error{Op: "put", ID: old.ID, Err: fmt.Errorf("reading body: %w", err)}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if err := checkRestoredBody(req, size, sum); err != nil {
		return nil, &lazaret.Error{Op: "put", ID: old.ID, Err: err}
	}
	if sum == old.SHA256 && old.State != lazaret.StateDeleted {
		if req.Restore != nil {
			var sum5 [16]byte
			h5.Sum(sum5[:0])
			return n.restoreOnto(ctx, req.Restore, req.Sender, req.Recipients, sum5)
		}
		return old, nil
	}
	return nil, &lazaret.Error{Op: "put", ID: old.ID, Err: fmt.Errorf("%w: id already holds another message", lazaret.ErrConflict)}
}

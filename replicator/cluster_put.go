package replicator

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
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
	cp := &clusterPut{n: n, cl: n.cl, ctx: ctx, req: req, id: id, bodySHA: sha256.New(), bodyMD5: md5.New()}
	defer cp.close()
	limited := &io.LimitedReader{R: ctxReader{ctx, body}, N: n.cfg.MaxMessageSize + 1}
	in := io.TeeReader(limited, io.MultiWriter(&cp.hdr, cp.bodySHA, cp.bodyMD5))
	if err := cp.chooseCode(in); err != nil { // step 1
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	if err := cp.place(); err != nil { // step 2
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	if err := cp.stream(); err != nil { // steps 3 and 4
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	var sum [32]byte
	cp.bodySHA.Sum(sum[:0])
	if err := checkRestoredBody(req, cp.size, sum); err != nil { // restore.go
		cp.p.discardAll(nil)
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	m := n.newMetadata(id, req, cp.hdr.Header(), cp.size, sum)
	cp.bodyMD5.Sum(m.MD5[:0])
	if err := cp.decide(m); err != nil { // step 5
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	if old, err := cp.commit(m); old != nil || err != nil {
		return old, err
	}
	for _, r := range cp.drop { // step 6
		cp.p.discard(r, nil)
	}
	for _, r := range cp.late {
		cp.p.adopt(r)
	}
	n.pushToHolders(m, cp.quorum) // push.go
	cp.cl.push.enqueue(m.Clone())
	return m, nil
}

// clusterPut is one putCluster in progress: what each step decided.
type clusterPut struct {
	n   *Node
	cl  *clusterNode
	ctx context.Context
	req lazaret.PutRequest
	id  lazaret.ID

	hdr     lazaret.HeaderCapture // the parsed header, filled while streaming
	bodySHA hash.Hash             // the body's SHA-256, likewise
	bodyMD5 hash.Hash             // and its MD5 (S3's ETag)

	all, alive []member.Member
	self       member.Member
	code       erasure.Code
	src        io.Reader       // the body, with any read-ahead put back
	targets    []member.Member // shard i goes to targets[i]
	quorum     int
	under      bool       // too few members alive: a whole copy here
	spool      *bodySpool // a copy of the body for the fallback; nil if none is needed

	p      *shardPut
	size   int64
	stored int // shards stored when collect returned

	local      *objstore.ShardWriter // committed with the metadata, if any
	whole      *objstore.ShardWriter // the whole copy, if the put falls back to it
	late, drop []*shardRunner        // runners to adopt or discard after the commit
}

func (cp *clusterPut) close() {
	if cp.spool != nil {
		cp.spool.close()
	}
}

// chooseCode picks the code: the cluster's, or 1+m replication for a body
// smaller than SmallMessageThreshold (read ahead from in to decide).
func (cp *clusterPut) chooseCode(in io.Reader) error {
	cp.all, cp.alive, cp.self = cp.cl.liveMembers()
	cp.code = clusterCode(cp.cl.policy, cp.all)
	cp.src = in
	t := cp.cl.cfg.SmallMessageThreshold
	if t <= 0 || cp.code.K <= 1 {
		return nil
	}
	var head bytes.Buffer
	_, err := io.CopyN(&head, in, t)
	switch {
	case err == io.EOF:
		cp.code = erasure.Code{K: 1, M: cp.code.M}
		cp.src = &head
	case err != nil:
		return fmt.Errorf("reading body: %w", err)
	default:
		cp.src = io.MultiReader(&head, in)
	}
	return nil
}

// place puts shard i on the i-th alive member by rendezvous weight; with
// fewer alive members than the write quorum, the body stays whole on this
// node (under-protected), or the put is refused in strict mode. It starts
// the spool when a fallback to a whole copy may need the body again.
func (cp *clusterPut) place() error {
	cl := cp.cl
	cp.targets = placeShards(cp.id, cp.alive, cp.code.Shards())
	cp.quorum = erasure.WriteQuorum(cl.cfg.WriteQuorum, cp.code)
	if len(cp.targets) < cp.quorum {
		if cl.cfg.Strict {
			return fmt.Errorf("%w: %d of %d nodes alive, %v needs %d (strict mode)", lazaret.ErrUnavailable, len(cp.alive), len(cp.all), cp.code, cp.quorum)
		}
		cp.n.log.Warn("put: too few nodes alive for the write quorum; keeping the body whole here (under-protected)",
			"id", cp.id, "alive", len(cp.alive), "code", cp.code.String(), "quorum", cp.quorum)
		cp.code, cp.quorum, cp.under = erasure.Code{K: 1, M: 0}, 1, true
		cp.targets = []member.Member{cp.self}
	}
	selfTarget := slices.ContainsFunc(cp.targets, func(m member.Member) bool { return m.Number == cp.self.Number })
	if !cl.cfg.Strict && !(cp.code.K == 1 && selfTarget) {
		cp.spool = newBodySpool(cl.cfg.SpoolDir)
		cp.src = io.TeeReader(cp.src, cp.spool)
	}
	return nil
}

// stream encodes the body in stripes and feeds each shard's runner, then
// waits for the acknowledgements: once the write quorum is stored, at most
// StragglerGrace more (but always for this node's own shard).
func (cp *clusterPut) stream() error {
	n, cl := cp.n, cp.cl
	chunk, grace := cl.cfg.StripeChunkSize, cl.cfg.StragglerGrace
	enc, err := cl.codecs.Get(cp.code)
	if err != nil {
		return err
	}
	p, err := n.startShards(cp.id, cp.code, chunk, cp.targets)
	if err != nil {
		return err
	}
	cp.p = p
	// A runner lags when at least quorum-1 others wait for data: the put
	// can go on without it.
	behind := func(r *shardRunner) bool { return p.caughtUp(r) >= max(cp.quorum-1, 1) }
	size, err := erasure.EncodeStripes(enc, cp.code, chunk, cp.src, func(pieces [][]byte) error {
		for i, r := range p.runners {
			if err := r.feed(cp.ctx, grace, behind, pieces[i]); err != nil {
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
		return err
	}
	p.end(true, size)
	cp.size = size
	if cp.stored, err = p.collect(cp.ctx, cp.quorum, grace); err != nil {
		p.discardAll(nil)
		return err
	}
	return nil
}

// decide sets what to commit with m: the placement of the shards stored
// (under-protected if fewer than k+m), or, without the write quorum, the
// spooled body whole on this node (refused in strict mode).
func (cp *clusterPut) decide(m *lazaret.Metadata) error {
	n, p, id, code := cp.n, cp.p, cp.id, cp.code
	chunk := cp.cl.cfg.StripeChunkSize
	m.Placement = lazaret.Placement{K: code.K, M: code.M, ChunkSize: chunk, Shards: p.storedLocs(), UnderProtected: cp.under || cp.stored < code.Shards()}
	cp.local = p.localWriter()
	for _, r := range p.runners {
		switch {
		case !r.collected:
			cp.late = append(cp.late, r)
		case r.err != nil:
			n.log.Warn("put: shard not stored; message under-protected", "id", id, "shard", r.index, "node", r.node, "err", r.err)
			cp.drop = append(cp.drop, r)
		}
	}
	switch {
	case cp.stored >= cp.quorum:
	case cp.cl.cfg.Strict:
		p.discardAll(nil)
		return fmt.Errorf("%w: %d of %d shards stored, the write quorum is %d (strict mode): %v", lazaret.ErrUnavailable, cp.stored, len(cp.targets), cp.quorum, p.failures())
	case code.K == 1 && cp.local != nil:
		n.log.Warn("put: write quorum not reached; keeping the copies stored, this node's included (under-protected)",
			"id", id, "stored", cp.stored, "quorum", cp.quorum, "err", p.failures())
		m.Placement.UnderProtected = true
	default:
		w, loc, err := n.storeWhole(m, cp.spool) // cluster_put_spool.go
		if err != nil {
			err = errors.Join(p.failures(), fmt.Errorf("whole copy on this node: %w", err))
			p.discardAll(nil)
			n.log.Warn("put: write quorum not reached", "id", id, "stored", cp.stored, "quorum", cp.quorum, "err", err)
			return fmt.Errorf("%w: %d of %d shards stored, the write quorum is %d: %v", lazaret.ErrUnavailable, cp.stored, len(cp.targets), cp.quorum, err)
		}
		n.log.Warn("put: write quorum not reached; keeping the body whole here (under-protected)",
			"id", id, "stored", cp.stored, "quorum", cp.quorum, "err", p.failures())
		m.Placement = lazaret.Placement{K: 1, M: 0, ChunkSize: chunk, Shards: []lazaret.ShardLoc{loc}, UnderProtected: true}
		cp.local, cp.whole = w, w
		cp.late, cp.drop = nil, p.runners
	}
	return nil
}

// commit stores m with the local shard or whole copy in one fsync, under
// the message's lock, unless a concurrent put of the id won: then it
// returns that put's message (the same body) or a conflict. What is
// discarded on failure is discarded after the lock is released.
func (cp *clusterPut) commit(m *lazaret.Metadata) (*lazaret.Metadata, error) {
	const op = "put"
	n, id := cp.n, cp.id
	cleanup := func(keep map[int]bool) {
		cp.p.discardAll(keep)
		if cp.whole != nil {
			cp.whole.Abort()
		}
	}
	unlock := n.lock(id)
	if old, err := n.store.Meta(id); err == nil {
		unlock()
		// A concurrent put of the same id won: its shards may be on the
		// same nodes as ours, so leave those nodes alone.
		cleanup(placementNodes(old))
		if old.SHA256 == m.SHA256 && old.State != lazaret.StateDeleted {
			if cp.req.Restore != nil {
				return n.restoreOnto(cp.ctx, cp.req.Restore, cp.req.Sender, cp.req.Recipients, m.MD5)
			}
			return old, nil // a concurrent retry of the same put
		}
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: id already holds another message", lazaret.ErrConflict)}
	} else if !errors.Is(err, lazaret.ErrNotFound) {
		unlock()
		cleanup(nil)
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	var ws []*objstore.ShardWriter
	if cp.local != nil {
		ws = append(ws, cp.local)
	}
	if err := n.store.Commit(cp.ctx, m, ws...); err != nil {
		unlock()
		cleanup(nil)
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.Temporary(err)}
	}
	n.trackUnder(m)
	unlock()
	return nil, nil
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

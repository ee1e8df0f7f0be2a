package replicator

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
)

// maxWireChunk caps the data in one PutShard/GetShard message, well below
// gRPC's default 4 MiB message limit.
const maxWireChunk = 1 << 20

// putCluster is Put on a member of a cluster:
//
//  1. Pick the code: the cluster's k+m, or 1+m replication for a body
//     smaller than SmallMessageThreshold (read ahead to decide).
//  2. Place shard i on the i-th alive member by rendezvous weight.
//  3. Stream the body in stripes; every shard goes to its node at once (the
//     local one into an objstore ShardWriter, the others over PutShard,
//     where the receiver fsyncs before answering).
//  4. With at least the write quorum of shards stored on distinct nodes,
//     commit the metadata with the placement (and the local shard, in the
//     same fsync) and queue it for every member; the put is acknowledged.
//     Fewer than k+m shards stored marks the message under-protected.
//  5. With fewer alive members than the quorum, keep the body whole on this
//     node (a 1+0 code) and mark it under-protected, or refuse with
//     ErrUnavailable in strict mode. If nodes fail during the transfer so
//     that the quorum is missed, the put fails with ErrUnavailable (a
//     temporary error: the sender retries, and the retry sees the failed
//     members as such).
//
// Shards already stored for a put that fails are removed: the local one is
// aborted, remote ones are deleted on a best-effort basis (or expire as
// orphans, having no metadata).
func (n *Node) putCluster(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	const op = "put"
	cl := n.cl
	sender, rcpts, err := cleanEnvelope(req.Sender, req.Recipients)
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: req.ID, Err: err}
	}
	id := req.ID
	if id != "" {
		if id, err = lazaret.ParseID(string(id)); err != nil {
			return nil, &lazaret.Error{Op: op, Err: err}
		}
		if old, err := n.store.Meta(id); err == nil {
			return n.retriedPut(ctx, old, body)
		} else if !errors.Is(err, lazaret.ErrNotFound) {
			return nil, &lazaret.Error{Op: op, ID: id, Err: err}
		}
	} else if id, err = n.alloc.Next(); err != nil {
		return nil, &lazaret.Error{Op: op, Err: err}
	}

	var hdr lazaret.HeaderCapture
	bodySHA := sha256.New()
	limited := &io.LimitedReader{R: ctxReader{ctx, body}, N: n.cfg.MaxMessageSize + 1}
	in := io.TeeReader(limited, io.MultiWriter(&hdr, bodySHA))

	all, alive, self := cl.liveMembers()
	code := clusterCode(cl.policy, all)
	src := in
	if t := cl.cfg.SmallMessageThreshold; t > 0 && code.K > 1 {
		var head bytes.Buffer
		_, err := io.CopyN(&head, in, t)
		switch {
		case err == io.EOF:
			code = Code{K: 1, M: code.M}
			src = &head
		case err != nil:
			return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("reading body: %w", err)}
		default:
			src = io.MultiReader(&head, in)
		}
	}
	targets := placeShards(id, alive, code.Shards())
	quorum := writeQuorum(cl.cfg.WriteQuorum, code)
	under := false
	if len(targets) < quorum {
		if cl.cfg.Strict {
			return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: %d of %d nodes alive, %v needs %d (strict mode)", lazaret.ErrUnavailable, len(alive), len(all), code, quorum)}
		}
		n.log.Warn("put: too few nodes alive for the write quorum; keeping the body whole here (under-protected)",
			"id", id, "alive", len(alive), "code", code.String(), "quorum", quorum)
		code, quorum, under = Code{K: 1, M: 0}, 1, true
		targets = []Member{self}
	}

	chunk := cl.cfg.StripeChunkSize
	enc, err := cl.codecs.get(code)
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	sinks := make([]shardSink, len(targets))
	for i, t := range targets {
		if t.Number == self.Number {
			sinks[i], err = n.newLocalSink(id, code, i)
		} else {
			sinks[i], err = n.newRemoteSink(ctx, id, code, i, chunk, t.Number)
		}
		if err != nil {
			sinks[i] = &failedSink{err: err}
		}
	}
	committed := false
	defer func() {
		if !committed {
			abortSinks(sinks)
		}
	}()

	size, err := encodeStripes(enc, code, chunk, src, func(pieces [][]byte) error {
		writeSinks(sinks, pieces)
		return nil
	})
	switch {
	case err != nil:
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("reading body: %w", err)}
	case size > n.cfg.MaxMessageSize:
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: over the %d-byte limit", lazaret.ErrTooLarge, n.cfg.MaxMessageSize)}
	case size == 0:
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: empty body", lazaret.ErrInvalidArgument)}
	}

	locs, local := finishSinks(sinks, size)
	if len(locs) < quorum {
		var errs []error
		for i, s := range sinks {
			if e := s.failure(); e != nil {
				errs = append(errs, fmt.Errorf("shard %d on node %d: %w", i, targets[i].Number, e))
			}
		}
		n.log.Warn("put: write quorum not reached", "id", id, "stored", len(locs), "quorum", quorum, "err", errors.Join(errs...))
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: %d of %d shards stored, the write quorum is %d: %v", lazaret.ErrUnavailable, len(locs), len(targets), quorum, errors.Join(errs...))}
	}
	for i, s := range sinks {
		if e := s.failure(); e != nil {
			n.log.Warn("put: shard not stored; message under-protected", "id", id, "shard", i, "node", targets[i].Number, "err", e)
		}
	}

	now := n.clock.Now()
	received := req.Received
	if received.IsZero() {
		received = now
	}
	h := hdr.Header()
	m := &lazaret.Metadata{
		ID: id, Node: n.cfg.NodeNumber, Received: received.UTC(),
		Sender: sender, Recipients: rcpts, ClientIP: req.ClientIP, Helo: req.Helo,
		From: or(req.From, h.From), To: or(req.To, h.To), Subject: or(req.Subject, h.Subject),
		Date: req.Date, MessageID: or(req.MessageID, h.MessageID),
		Size: size, Verdict: req.Verdict,
		Placement: lazaret.Placement{
			K: code.K, M: code.M, ChunkSize: chunk, Shards: locs,
			UnderProtected: under || len(locs) < code.Shards(),
		},
		State:   lazaret.StateQuarantined,
		History: []lazaret.Event{{Time: now.UTC(), Actor: actor(req.Actor), Action: "quarantine", Node: n.cfg.NodeNumber}},
		Version: n.hlc.Now(),
	}
	bodySHA.Sum(m.SHA256[:0])
	if m.Date.IsZero() {
		m.Date = h.Date
	}

	unlock := n.lock(id)
	defer unlock()
	if old, err := n.store.Meta(id); err == nil {
		if old.SHA256 == m.SHA256 && old.State != lazaret.StateDeleted {
			return old, nil // a concurrent retry of the same put won
		}
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: id already holds another message", lazaret.ErrConflict)}
	} else if !errors.Is(err, lazaret.ErrNotFound) {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	var ws []*objstore.ShardWriter
	if local != nil {
		ws = append(ws, local)
	}
	if err := n.store.Commit(ctx, m, ws...); err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: %v", lazaret.ErrUnavailable, err)}
	}
	committed = true
	n.trackUnder(m)
	n.cl.push.enqueue(m)
	return m, nil
}

// retriedPut answers a put of an id that is already stored: the same body
// gets the stored metadata back (a writer retrying after a lost
// acknowledgement), anything else is a conflict.
func (n *Node) retriedPut(ctx context.Context, old *lazaret.Metadata, body io.Reader) (*lazaret.Metadata, error) {
	h := sha256.New()
	if _, err := io.Copy(h, &io.LimitedReader{R: ctxReader{ctx, body}, N: n.cfg.MaxMessageSize + 1}); err != nil {
		return nil, &lazaret.Error{Op: "put", ID: old.ID, Err: fmt.Errorf("reading body: %w", err)}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	if sum == old.SHA256 && old.State != lazaret.StateDeleted {
		return old, nil
	}
	return nil, &lazaret.Error{Op: "put", ID: old.ID, Err: fmt.Errorf("%w: id already holds another message", lazaret.ErrConflict)}
}

// shardSink receives one shard of a put.
type shardSink interface {
	// write appends a piece; the slice is reused once write returns.
	write(p []byte) error
	// finish ends the shard and returns where it is stored. A remote
	// shard is fsync'd when finish returns; the local one is committed
	// with the metadata.
	finish(bodySize int64) (lazaret.ShardLoc, error)
	// abort discards the shard (best effort).
	abort()
	// failure returns the error that stopped the sink, or nil.
	failure() error
}

// writeSinks writes piece i to sink i, concurrently; a sink that fails
// remembers its error and ignores later pieces.
func writeSinks(sinks []shardSink, pieces [][]byte) {
	var wg sync.WaitGroup
	for i, s := range sinks {
		if s.failure() != nil {
			continue
		}
		wg.Go(func() { _ = s.write(pieces[i]) })
	}
	wg.Wait()
}

// finishSinks finishes every healthy sink concurrently and returns the
// locations of the stored shards, by index, and the local writer if the
// local shard was stored.
func finishSinks(sinks []shardSink, size int64) ([]lazaret.ShardLoc, *objstore.ShardWriter) {
	locs := make([]lazaret.ShardLoc, len(sinks))
	ok := make([]bool, len(sinks))
	var wg sync.WaitGroup
	for i, s := range sinks {
		if s.failure() != nil {
			continue
		}
		wg.Go(func() {
			loc, err := s.finish(size)
			locs[i], ok[i] = loc, err == nil
		})
	}
	wg.Wait()
	var out []lazaret.ShardLoc
	var local *objstore.ShardWriter
	for i, s := range sinks {
		if !ok[i] {
			continue
		}
		out = append(out, locs[i])
		if l, isLocal := s.(*localSink); isLocal {
			local = l.w
		}
	}
	slices.SortFunc(out, func(a, b lazaret.ShardLoc) int { return a.Index - b.Index })
	return out, local
}

// abortSinks discards what a failed put stored.
func abortSinks(sinks []shardSink) {
	for _, s := range sinks {
		s.abort()
	}
}

// failedSink stands for a shard whose node could not even be reached.
type failedSink struct{ err error }

func (f *failedSink) write([]byte) error                     { return f.err }
func (f *failedSink) finish(int64) (lazaret.ShardLoc, error) { return lazaret.ShardLoc{}, f.err }
func (f *failedSink) abort()                                 {}
func (f *failedSink) failure() error                         { return f.err }

// localSink writes a shard into this node's store.
type localSink struct {
	w    *objstore.ShardWriter
	node int
	err  error
}

func (n *Node) newLocalSink(id lazaret.ID, c Code, index int) (shardSink, error) {
	w, err := n.store.NewShardWriter(id, objstore.ShardSpec{K: c.K, M: c.M, Index: index, BodySize: -1})
	if err != nil {
		return nil, err
	}
	return &localSink{w: w, node: n.cfg.NodeNumber}, nil
}

func (s *localSink) write(p []byte) error {
	if _, err := s.w.Write(p); err != nil {
		s.err = err
	}
	return s.err
}

func (s *localSink) finish(bodySize int64) (lazaret.ShardLoc, error) {
	if s.w.Spec().K > 1 {
		if err := s.w.SetBodySize(bodySize); err != nil {
			s.err = err
			return lazaret.ShardLoc{}, err
		}
	}
	info, err := s.w.Finish()
	if err != nil {
		s.err = err
		return lazaret.ShardLoc{}, err
	}
	return lazaret.ShardLoc{Index: info.Index, Node: s.node, Size: info.Size, SHA256: info.SHA256}, nil
}

func (s *localSink) abort() { _ = s.w.Abort() }

func (s *localSink) failure() error { return s.err }

// remoteSink streams a shard to a peer over PutShard.
type remoteSink struct {
	n      *Node
	id     lazaret.ID
	index  int
	node   int
	stream pb.Peer_PutShardClient
	cancel context.CancelFunc
	sha    hash.Hash
	size   int64
	stored bool // the peer acknowledged (fsync'd) the shard
	err    error
}

func (n *Node) newRemoteSink(ctx context.Context, id lazaret.ID, c Code, index, chunk, node int) (shardSink, error) {
	client, err := n.cl.peer(node)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, n.cl.cfg.PeerTimeout)
	stream, err := client.PutShard(ctx)
	if err != nil {
		cancel()
		return nil, peerError(err)
	}
	hdr := &pb.ShardHeader{Id: string(id), Index: int32(index), K: int32(c.K), M: int32(c.M), BodySize: -1, ChunkSize: int32(chunk)}
	if err := stream.Send(&pb.PutShardRequest{Part: &pb.PutShardRequest_Header{Header: hdr}}); err != nil {
		cancel()
		return nil, peerError(err)
	}
	return &remoteSink{n: n, id: id, index: index, node: node, stream: stream, cancel: cancel, sha: sha256.New()}, nil
}

func (s *remoteSink) write(p []byte) error {
	s.sha.Write(p)
	s.size += int64(len(p))
	for len(p) > 0 {
		c := p[:min(len(p), maxWireChunk)]
		p = p[len(c):]
		if err := s.stream.Send(&pb.PutShardRequest{Part: &pb.PutShardRequest_Chunk{Chunk: c}}); err != nil {
			return s.fail(s.recvErr(err))
		}
	}
	return nil
}

// recvErr turns a failed Send into the peer's reason: gRPC reports a
// stream the server ended as io.EOF on Send, and the status on Recv.
func (s *remoteSink) recvErr(err error) error {
	if err == io.EOF {
		if _, rerr := s.stream.CloseAndRecv(); rerr != nil {
			return peerError(rerr)
		}
	}
	return peerError(err)
}

func (s *remoteSink) finish(bodySize int64) (lazaret.ShardLoc, error) {
	var sum [32]byte
	s.sha.Sum(sum[:0])
	tr := &pb.ShardTrailer{Size: s.size, BodySize: bodySize, Sha256: sum[:]}
	if err := s.stream.Send(&pb.PutShardRequest{Part: &pb.PutShardRequest_Trailer{Trailer: tr}}); err != nil {
		return lazaret.ShardLoc{}, s.fail(s.recvErr(err))
	}
	resp, err := s.stream.CloseAndRecv()
	if err != nil {
		return lazaret.ShardLoc{}, s.fail(peerError(err))
	}
	s.stored = true
	s.cancel()
	if resp.GetSize() != s.size || !bytes.Equal(resp.GetSha256(), sum[:]) {
		return lazaret.ShardLoc{}, s.fail(fmt.Errorf("%w: node %d stored shard %d as %d bytes SHA-256 %x, sent %d bytes %x", lazaret.ErrCorrupt, s.node, s.index, resp.GetSize(), resp.GetSha256(), s.size, sum))
	}
	return lazaret.ShardLoc{Index: s.index, Node: s.node, Size: s.size, SHA256: sum}, nil
}

// abort cancels the stream (the peer aborts its writer) or, if the peer
// already stored the shard, asks it to delete the message's shards.
func (s *remoteSink) abort() {
	s.cancel()
	if !s.stored {
		return
	}
	client, err := s.n.cl.peer(s.node)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.n.cl.cfg.PeerTimeout)
	defer cancel()
	if _, err := client.DeleteShards(ctx, &pb.DeleteShardsRequest{Id: string(s.id)}); err != nil {
		s.n.log.Info("put: removing a shard of a failed put failed; it expires as an orphan", "id", s.id, "node", s.node, "err", err)
	}
}

func (s *remoteSink) failure() error { return s.err }

// fail records err as the sink's failure and ends its stream.
func (s *remoteSink) fail(err error) error {
	s.err = err
	s.cancel()
	return err
}

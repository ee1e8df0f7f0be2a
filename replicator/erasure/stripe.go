package erasure

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"sync"

	"github.com/klauspost/reedsolomon"

	"github.com/lazaret/lazaret"
)

// Stripe layout
//
// A body is erasure-coded in stripes so memory stays bounded whatever its
// size: each stripe takes up to K×chunk bytes of the body, cuts them into K
// equal pieces (zero-padding the last stripe's) and computes M parity pieces.
// Shard i is piece i of every stripe, one after the other. Every stripe but
// the last is full (pieces of chunk bytes); the last stripe holding r bytes
// has pieces of ceil(r/K) bytes, so a small body is not padded to a whole
// chunk. The layout follows from (K, chunk, body size), which the placement
// and the message's metadata record, so a reader trims the padding.
//
// K=1 is replication: the "parity" pieces are copies of the data piece, so
// every shard is the whole body and any one of them is enough.

// stripeLayout is the stripe geometry of one body.
type stripeLayout struct {
	k, chunk int
	size     int64 // body bytes
}

// stripes returns the number of stripes (0 for an empty body).
func (l stripeLayout) stripes() int64 {
	if l.size <= 0 {
		return 0
	}
	return (l.size-1)/(int64(l.k)*int64(l.chunk)) + 1
}

// stripeBytes returns the body bytes in stripe s.
func (l stripeLayout) stripeBytes(s int64) int {
	full := int64(l.k) * int64(l.chunk)
	return int(min(full, l.size-s*full))
}

// piece returns the size of each shard's piece of stripe s.
func (l stripeLayout) piece(s int64) int {
	return (l.stripeBytes(s) + l.k - 1) / l.k
}

// shardSize returns the size of every shard of the body.
func (l stripeLayout) shardSize() int64 {
	n := l.stripes()
	if n == 0 {
		return 0
	}
	return (n-1)*int64(l.chunk) + int64(l.piece(n-1))
}

// Codecs caches one Reed-Solomon encoder per code; encoders are safe for
// concurrent use.
type Codecs struct {
	mu  sync.Mutex
	enc map[Code]reedsolomon.Encoder
}

// get returns the encoder of c, or nil for replication (K=1) and whole
// copies, which need none.
func (cs *Codecs) Get(c Code) (reedsolomon.Encoder, error) {
	if c.K == 1 || c.M == 0 {
		return nil, nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if e := cs.enc[c]; e != nil {
		return e, nil
	}
	e, err := reedsolomon.New(c.K, c.M)
	if err != nil {
		return nil, fmt.Errorf("erasure code %v: %w", c, err)
	}
	if cs.enc == nil {
		cs.enc = make(map[Code]reedsolomon.Encoder)
	}
	cs.enc[c] = e
	return e, nil
}

// EncodeStripes reads the body from r stripe by stripe and hands the K+M
// pieces of each stripe to write (piece i belongs to shard i; the slices
// are reused after write returns). enc is nil for K=1 or M=0. It returns
// the body size.
func EncodeStripes(enc reedsolomon.Encoder, c Code, chunk int, r io.Reader, write func(pieces [][]byte) error) (int64, error) {
	buf := make([]byte, c.K*chunk+c.M*chunk)
	pieces := make([][]byte, c.Shards())
	var size int64
	for {
		n, err := io.ReadFull(r, buf[:c.K*chunk])
		if n == 0 {
			if err == io.EOF {
				return size, nil
			}
			return size, err
		}
		if err != nil && err != io.ErrUnexpectedEOF {
			return size, err
		}
		size += int64(n)
		p := (n + c.K - 1) / c.K
		clear(buf[n : c.K*p])
		for i := range c.K {
			pieces[i] = buf[i*p : (i+1)*p]
		}
		for j := range c.M {
			if c.K == 1 {
				pieces[1+j] = pieces[0]
				continue
			}
			off := c.K*chunk + j*p
			pieces[c.K+j] = buf[off : off+p]
		}
		if enc != nil {
			if err := enc.Encode(pieces); err != nil {
				return size, fmt.Errorf("erasure coding: %w", err)
			}
		}
		if err := write(pieces); err != nil {
			return size, err
		}
		if n < c.K*chunk {
			return size, nil // short read: that was the last stripe
		}
	}
}

// ShardOpener opens one stored shard for reading from its start.
type ShardOpener func(ctx context.Context, loc lazaret.ShardLoc) (io.ReadCloser, error)

// ShardFailure reports a shard a StripeReader gave up on; corrupt says it
// failed a checksum rather than being unreachable.
type ShardFailure func(loc lazaret.ShardLoc, err error, corrupt bool)

// shardSrc is one shard being read by a StripeReader.
type shardSrc struct {
	loc  lazaret.ShardLoc
	r    io.ReadCloser
	sha  hash.Hash
	read int64
	done int64 // stripes whose piece has been read
}

// StripeReader rebuilds a body from any K healthy shards of its placement,
// stripe by stripe, with memory bounded by one stripe. It verifies every
// shard's size and SHA-256 against the placement and the body's SHA-256
// against the metadata. A shard that cannot be opened, fails mid-way or
// fails a checksum is reported and replaced by the next candidate, which is
// read from its start (the bytes before the current stripe are hashed and
// skipped). A shard failing its SHA-256 at the end of a multi-stripe body is
// found only after earlier stripes were handed out; the body's own SHA-256
// then fails the read with lazaret.ErrCorrupt rather than ending it cleanly.
type StripeReader struct {
	ctx    context.Context
	id     lazaret.ID
	code   Code
	layout stripeLayout
	enc    reedsolomon.Encoder
	cands  []lazaret.ShardLoc // not yet tried, in preference order
	open   ShardOpener
	fail   ShardFailure

	active   []*shardSrc
	stripe   int64 // next stripe to decode
	pos      int64 // shard offset where stripe starts
	buf      []byte
	shards   [][]byte
	out      []byte // decoded bytes not yet read
	outBuf   []byte
	body     hash.Hash
	wantBody [32]byte
	failures int
	corrupt  int
	err      error
}

// NewStripeReader returns a reader of the body described by pl (a K+M code
// with its shard locations, sizes and hashes), of size bytes and SHA-256
// sum. cands are the shards to try, in order of preference.
func NewStripeReader(ctx context.Context, id lazaret.ID, pl lazaret.Placement, size int64, sum [32]byte, enc reedsolomon.Encoder, cands []lazaret.ShardLoc, open ShardOpener, fail ShardFailure) *StripeReader {
	c := Code{pl.K, pl.M}
	chunk := pl.ChunkSize
	if chunk <= 0 {
		chunk = int(min(size, 1<<20)) // whole copies stored by a single node
		chunk = max(chunk, 1)
	}
	return &StripeReader{
		ctx: ctx, id: id, code: c, layout: stripeLayout{k: c.K, chunk: chunk, size: size},
		enc: enc, cands: cands, open: open, fail: fail,
		buf: make([]byte, c.Shards()*chunk), shards: make([][]byte, c.Shards()),
		outBuf: make([]byte, c.K*chunk), body: sha256.New(), wantBody: sum,
	}
}

// drop gives up on active source i.
func (r *StripeReader) drop(i int, err error) {
	s := r.active[i]
	s.r.Close()
	corrupt := errors.Is(err, lazaret.ErrCorrupt)
	r.failures++
	if corrupt {
		r.corrupt++
	}
	if r.fail != nil {
		r.fail(s.loc, err, corrupt)
	}
	r.active = append(r.active[:i], r.active[i+1:]...)
}

// fill opens candidates until K sources are active, each positioned at the
// start of the current stripe.
func (r *StripeReader) Fill() error {
	for len(r.active) < r.code.K {
		if len(r.cands) == 0 {
			sentinel := lazaret.ErrUnavailable
			if r.corrupt > 0 {
				sentinel = lazaret.ErrCorrupt
			}
			return &lazaret.Error{Op: "get", ID: r.id, Err: fmt.Errorf("%w: only %d of the %d shards needed are readable (%d failed)", sentinel, len(r.active), r.code.K, r.failures)}
		}
		loc := r.cands[0]
		r.cands = r.cands[1:]
		rc, err := r.open(r.ctx, loc)
		if err != nil {
			r.failures++
			corrupt := errors.Is(err, lazaret.ErrCorrupt)
			if corrupt {
				r.corrupt++
			}
			if r.fail != nil {
				r.fail(loc, err, corrupt)
			}
			continue
		}
		s := &shardSrc{loc: loc, r: rc, sha: sha256.New(), done: r.stripe}
		r.active = append(r.active, s)
		if r.pos > 0 {
			n, err := io.CopyN(s.sha, rc, r.pos)
			s.read = n
			if err != nil {
				r.drop(len(r.active)-1, fmt.Errorf("skipping to stripe %d: %w", r.stripe, err))
			}
		}
	}
	return nil
}

// readPiece reads source s's piece of the current stripe into its slot,
// and at the last stripe checks that the shard ends there with the size and
// SHA-256 the placement recorded.
func (r *StripeReader) readPiece(s *shardSrc, p int, last bool) error {
	idx := s.loc.Index
	slot := r.buf[idx*r.layout.chunk : idx*r.layout.chunk+p]
	n, err := io.ReadFull(s.r, slot)
	s.read += int64(n)
	s.sha.Write(slot[:n])
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return fmt.Errorf("shard %d: %w: ends at %d bytes, placement says %d", idx, lazaret.ErrCorrupt, s.read, s.loc.Size)
		}
		return err
	}
	if !last {
		return nil
	}
	var one [1]byte
	if n, err := s.r.Read(one[:]); n > 0 || err != io.EOF {
		if err != nil && err != io.EOF {
			return err
		}
		return fmt.Errorf("shard %d: %w: longer than the %d bytes the placement says", idx, lazaret.ErrCorrupt, s.loc.Size)
	}
	var sum [32]byte
	s.sha.Sum(sum[:0])
	if s.read != s.loc.Size || sum != s.loc.SHA256 {
		return fmt.Errorf("shard %d: %w: %d bytes with SHA-256 %x, placement says %d bytes %x", idx, lazaret.ErrCorrupt, s.read, sum[:8], s.loc.Size, s.loc.SHA256[:8])
	}
	return nil
}

// next decodes the current stripe into r.out.
func (r *StripeReader) next() error {
	p := r.layout.piece(r.stripe)
	last := r.stripe == r.layout.stripes()-1
	for {
		if err := r.ctx.Err(); err != nil {
			return err
		}
		if err := r.Fill(); err != nil {
			return err
		}
		ok := true
		for i := 0; i < len(r.active); i++ {
			s := r.active[i]
			if s.done > r.stripe {
				continue
			}
			if err := r.readPiece(s, p, last); err != nil {
				r.drop(i, err)
				i--
				ok = false
				continue
			}
			s.done = r.stripe + 1
		}
		if ok {
			break
		}
	}
	clear(r.shards)
	for _, s := range r.active {
		idx := s.loc.Index
		r.shards[idx] = r.buf[idx*r.layout.chunk : idx*r.layout.chunk+p]
	}
	data, err := r.reconstruct(p)
	if err != nil {
		return err
	}
	n := r.layout.stripeBytes(r.stripe)
	out := r.outBuf[:0]
	for _, d := range data {
		out = append(out, d...)
	}
	r.out = out[:n]
	r.body.Write(r.out)
	r.pos += int64(p)
	r.stripe++
	return nil
}

// reconstruct returns the K data pieces of the current stripe.
func (r *StripeReader) reconstruct(p int) ([][]byte, error) {
	k := r.code.K
	if k == 1 {
		for _, s := range r.shards {
			if s != nil {
				return [][]byte{s}, nil
			}
		}
		return nil, fmt.Errorf("no shard read") // fill guarantees one
	}
	missing := false
	for i := range k {
		if r.shards[i] == nil {
			off := i * r.layout.chunk
			r.shards[i] = r.buf[off : off : off+r.layout.chunk]
			missing = true
		}
	}
	if missing {
		for i := k; i < len(r.shards); i++ {
			if r.shards[i] != nil && len(r.shards[i]) != p {
				return nil, fmt.Errorf("shard %d piece of %d bytes, want %d", i, len(r.shards[i]), p)
			}
		}
		if err := r.enc.ReconstructData(r.shards); err != nil {
			return nil, &lazaret.Error{Op: "get", ID: r.id, Err: fmt.Errorf("%w: reconstructing stripe %d: %v", lazaret.ErrCorrupt, r.stripe, err)}
		}
	}
	return r.shards[:k], nil
}

// Read implements io.Reader.
func (r *StripeReader) Read(p []byte) (int, error) {
	for len(r.out) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.stripe == r.layout.stripes() {
			r.err = io.EOF
			var sum [32]byte
			r.body.Sum(sum[:0])
			if sum != r.wantBody {
				r.err = &lazaret.Error{Op: "get", ID: r.id, Err: fmt.Errorf("%w: rebuilt body has SHA-256 %x, metadata says %x", lazaret.ErrCorrupt, sum[:8], r.wantBody[:8])}
			}
			continue
		}
		if err := r.next(); err != nil {
			r.err = err
		}
	}
	n := copy(p, r.out)
	r.out = r.out[n:]
	return n, nil
}

// Close closes the shards being read. It never fails.
func (r *StripeReader) Close() error {
	for _, s := range r.active {
		s.r.Close()
	}
	r.active = nil
	if r.err == nil {
		r.err = errors.New("read after close")
	}
	return nil
}

package replicator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/internal/durable"
	pb "github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/proto/wire"
	"github.com/lazaret/lazaret/replicator/member"
	"github.com/lazaret/lazaret/replicator/reconcile"
)

// Anti-entropy (docs/antientropy.md, "Scheduling")
//
// Each member keeps a reconcile.MemSet of its metadata: built from the
// store when the node starts and kept current by noteMeta, which trackUnder
// calls for every record the node stores (a put, a local change, a merged
// push or reconciled record). Every Interval at most (jittered), and at once
// after a membership change, the node runs one Reconcile session with an
// alive peer over the peer API: the reconcile messages find the symmetric
// difference, each side streams its Have records to the other, and the
// receiver merges them with mergeOne (lazaret.Merge; a tombstone drops the
// local shards). Merged records go through noteMeta like any other, which
// updates the set and queues repair checks (repair.go).

// AntiEntropyConfig tunes anti-entropy and repair. Zero fields take the
// defaults of DefaultAntiEntropyConfig.
type AntiEntropyConfig struct {
	// Disabled turns off the background rounds and repair (the Reconcile
	// and RemoveNode peer calls are still answered).
	Disabled bool
	// Interval is the longest wait between two rounds; each wait is drawn
	// uniformly from [Interval/2, Interval], so nodes do not synchronise.
	Interval time.Duration
	// SessionTimeout bounds one session, records included.
	SessionTimeout time.Duration
	// MaxSessions is how many sessions this node answers at once; more are
	// refused (codes.ResourceExhausted) and the caller tries again later.
	MaxSessions int
	// MembershipPoll is how often membership is compared with its last
	// state to start sessions right after a change.
	MembershipPoll time.Duration
	// RepairRate limits repair to this many bytes per second (shard bytes
	// read plus written); -1 means unlimited.
	RepairRate int64
	// RepairBurst is the token bucket's size in bytes.
	RepairBurst int64
	// RepairWorkers is how many messages are repaired at once.
	RepairWorkers int
	// RepairQueue bounds the queue of messages waiting for a repair check;
	// changes that find it full trigger a full rescan instead.
	RepairQueue int
	// RepairRetry is the wait before a failed repair is tried again.
	RepairRetry time.Duration
	// RescanInterval is how often every record is checked for repair work
	// besides the checks that changes trigger (and the one at start).
	RescanInterval time.Duration
	// CleanupDelay is how long a whole copy that a spread moved elsewhere
	// is kept before it is dropped (a grace for late metadata).
	CleanupDelay time.Duration
	// RemovedNodesFile persists the retired nodes; "" means
	// removed-nodes.json in the store's directory.
	RemovedNodesFile string
}

// DefaultAntiEntropyConfig returns the defaults: a round every 5-10 s,
// repair at up to 50 MB/s with 2 workers.
func DefaultAntiEntropyConfig() AntiEntropyConfig {
	return AntiEntropyConfig{
		Interval:       10 * time.Second,
		SessionTimeout: 60 * time.Second,
		MaxSessions:    4,
		MembershipPoll: time.Second,
		RepairRate:     50_000_000,
		RepairBurst:    4 << 20,
		RepairWorkers:  2,
		RepairQueue:    100_000,
		RepairRetry:    10 * time.Second,
		RescanInterval: time.Hour,
		CleanupDelay:   time.Minute,
	}
}

// Validate reports the first invalid field, by name.
func (c *AntiEntropyConfig) Validate() error {
	switch {
	case c.Interval < 0:
		return fmt.Errorf("anti-entropy interval %v: must not be negative", c.Interval)
	case c.SessionTimeout < 0:
		return fmt.Errorf("anti-entropy session timeout %v: must not be negative", c.SessionTimeout)
	case c.MaxSessions < 0:
		return fmt.Errorf("anti-entropy max sessions %d: must not be negative", c.MaxSessions)
	case c.MembershipPoll < 0:
		return fmt.Errorf("anti-entropy membership poll %v: must not be negative", c.MembershipPoll)
	case c.RepairRate < -1:
		return fmt.Errorf("repair rate %d: want -1 (unlimited), 0 (default) or bytes per second", c.RepairRate)
	case c.RepairBurst < 0:
		return fmt.Errorf("repair burst %d: must not be negative", c.RepairBurst)
	case c.RepairWorkers < 0 || c.RepairWorkers > 64:
		return fmt.Errorf("repair workers %d: want 0 to 64", c.RepairWorkers)
	case c.RepairQueue < 0:
		return fmt.Errorf("repair queue %d: must not be negative", c.RepairQueue)
	case c.RepairRetry < 0 || c.RescanInterval < 0 || c.CleanupDelay < 0:
		return fmt.Errorf("repair retry, rescan interval and cleanup delay must not be negative")
	}
	return nil
}

// withDefaults fills zero fields.
func (c AntiEntropyConfig) withDefaults() AntiEntropyConfig {
	d := DefaultAntiEntropyConfig()
	if c.Interval == 0 {
		c.Interval = d.Interval
	}
	if c.SessionTimeout == 0 {
		c.SessionTimeout = d.SessionTimeout
	}
	if c.MaxSessions == 0 {
		c.MaxSessions = d.MaxSessions
	}
	if c.MembershipPoll == 0 {
		c.MembershipPoll = d.MembershipPoll
	}
	if c.RepairRate == 0 {
		c.RepairRate = d.RepairRate
	}
	if c.RepairBurst == 0 {
		c.RepairBurst = d.RepairBurst
	}
	if c.RepairWorkers == 0 {
		c.RepairWorkers = d.RepairWorkers
	}
	if c.RepairQueue == 0 {
		c.RepairQueue = d.RepairQueue
	}
	if c.RepairRetry == 0 {
		c.RepairRetry = d.RepairRetry
	}
	if c.RescanInterval == 0 {
		c.RescanInterval = d.RescanInterval
	}
	if c.CleanupDelay == 0 {
		c.CleanupDelay = d.CleanupDelay
	}
	return c
}

// recordBatch is the most records sent in one ReconcileFrame.
const recordBatch = 256

// RemovedNode is a node retired by `lazaret node remove`: it is left out
// of placement, and the shards it held are rebuilt elsewhere.
type RemovedNode struct {
	Number  int       `json:"number"`
	Name    string    `json:"name,omitempty"`
	Removed time.Time `json:"removed"`
}

// PeerSync is this node's record of reconciliation with one peer.
type PeerSync struct {
	Node int
	// LastSuccess is when the last successful session ended (zero: never).
	LastSuccess time.Time
	// Differences is how many keys differed in the last successful
	// session (Have and Need, a key in both counted once).
	Differences int
	// Bytes is what the last successful session exchanged, both ways:
	// reconcile messages and the records themselves.
	Bytes int64
	// Rounds counts successful sessions since start.
	Rounds int64
	// LastAttempt and LastError describe the last session, successful or
	// not (LastError is empty after a success).
	LastAttempt time.Time
	LastError   string
}

// antiEntropy is a member's reconciliation state.
type antiEntropy struct {
	n    *Node
	cfg  AntiEntropyConfig
	rcfg reconcile.Config

	setMu    sync.Mutex
	set      *reconcile.MemSet
	ready    bool
	building bool
	dirty    map[lazaret.ID]bool

	sessions chan struct{} // answering sessions (semaphore)
	kick     chan int      // peer to reconcile with now; 0 = every alive peer

	mu       sync.Mutex
	peers    map[int]*PeerSync
	inflight map[int]bool
	removed  map[int]RemovedNode

	rep *repairer
}

func newAntiEntropy(n *Node, cfg AntiEntropyConfig) (*antiEntropy, error) {
	ae := &antiEntropy{
		n: n, cfg: cfg.withDefaults(), rcfg: reconcile.DefaultConfig(),
		set: reconcile.NewMemSet(nil), dirty: map[lazaret.ID]bool{},
		kick: make(chan int, 64), peers: map[int]*PeerSync{}, inflight: map[int]bool{},
		removed: map[int]RemovedNode{},
	}
	ae.sessions = make(chan struct{}, ae.cfg.MaxSessions)
	if err := ae.loadRemoved(); err != nil {
		return nil, err
	}
	ae.rep = newRepairer(n, ae.cfg)
	return ae, nil
}

// startAntiEntropy sets up anti-entropy and repair for a member and starts
// their background work (unless disabled).
func (n *Node) startAntiEntropy(ctx context.Context) error {
	cl := n.cl
	ae, err := newAntiEntropy(n, cl.cfg.AntiEntropy)
	if err != nil {
		return err
	}
	cl.ae = ae
	cl.wg.Add(1)
	go func() {
		defer cl.wg.Done()
		if err := ae.build(ctx); err != nil {
			if ctx.Err() == nil {
				n.log.Error("anti-entropy: loading metadata failed; reconciliation is off", "err", err)
			}
			return
		}
		if !ae.cfg.Disabled {
			ae.run(ctx)
		}
	}()
	if !ae.cfg.Disabled {
		cl.wg.Add(1)
		go func() {
			defer cl.wg.Done()
			ae.rep.run(ctx)
		}()
	}
	return nil
}

// noteMeta keeps the reconciliation set and the repair queue current with
// a record this node just stored. trackUnder calls it, under the message's
// lock, for every metadata change: it is the single choke point.
func (n *Node) noteMeta(m *lazaret.Metadata) {
	if n.cl == nil || n.cl.ae == nil {
		return
	}
	ae := n.cl.ae
	it, err := reconcile.MetadataItem(m)
	if err != nil {
		n.log.Error("anti-entropy: hashing metadata failed", "id", m.ID, "err", err)
		return
	}
	ae.setMu.Lock()
	ae.set.Put(it)
	if ae.building {
		ae.dirty[m.ID] = true
	}
	ae.setMu.Unlock()
	ae.rep.note(m)
}

// build loads the set from the store. Changes made meanwhile (noteMeta)
// win over the records the walk read.
func (ae *antiEntropy) build(ctx context.Context) error {
	ae.setMu.Lock()
	ae.building = true
	ae.setMu.Unlock()
	defer func() {
		ae.setMu.Lock()
		ae.building = false
		ae.dirty = map[lazaret.ID]bool{}
		ae.setMu.Unlock()
	}()
	var after lazaret.ID
	for {
		page, err := ae.n.store.MetaPage(ctx, after, 1000)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		items := make([]reconcile.Item, 0, len(page))
		for _, m := range page {
			it, err := reconcile.MetadataItem(m)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		ae.setMu.Lock()
		for _, it := range items {
			if !ae.dirty[lazaret.ID(it.Key)] {
				ae.set.Put(it)
			}
		}
		ae.setMu.Unlock()
		after = page[len(page)-1].ID
	}
	ae.setMu.Lock()
	ae.ready = true
	ae.setMu.Unlock()
	return nil
}

// isReady reports whether the set has been loaded.
func (ae *antiEntropy) isReady() bool {
	ae.setMu.Lock()
	defer ae.setMu.Unlock()
	return ae.ready
}

// Fingerprint returns the reconciliation fingerprint of this node's whole
// metadata set and its size: two members with equal fingerprints hold the
// same records. Zero values on a single node or before the set is loaded.
func (n *Node) Fingerprint() (reconcile.Fingerprint, int) {
	if n.cl == nil || n.cl.ae == nil {
		return reconcile.Fingerprint{}, 0
	}
	ae := n.cl.ae
	ae.setMu.Lock()
	defer ae.setMu.Unlock()
	return ae.set.Fingerprint(0, ae.set.Len()), ae.set.Len()
}

// run schedules rounds until ctx is cancelled.
func (ae *antiEntropy) run(ctx context.Context) {
	wait := func() time.Duration {
		iv := ae.cfg.Interval
		return iv/2 + time.Duration(rand.Int64N(int64(iv/2)+1))
	}
	timer := time.NewTimer(wait())
	defer timer.Stop()
	poll := time.NewTicker(ae.cfg.MembershipPoll)
	defer poll.Stop()
	prune := time.NewTicker(max(ae.n.cfg.RetentionInterval, time.Minute))
	defer prune.Stop()
	prev := ae.aliveSet()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			if p, ok := ae.randomPeer(); ok {
				ae.round(ctx, p)
			}
			timer.Reset(wait())
		case <-poll.C:
			cur := ae.aliveSet()
			var back []int
			for num := range cur {
				if !prev[num] {
					back = append(back, num)
				}
			}
			changed := len(back) > 0 || len(cur) != len(prev)
			prev = cur
			if !changed {
				continue
			}
			ae.rep.membershipChanged()
			slices.Sort(back)
			for _, p := range back {
				ae.round(ctx, p)
			}
			ae.roundAll(ctx, back)
		case p := <-ae.kick:
			if p == 0 {
				ae.roundAll(ctx, nil)
			} else {
				ae.round(ctx, p)
			}
		case <-prune.C:
			if err := ae.prune(ctx); err != nil && ctx.Err() == nil {
				ae.n.log.Warn("anti-entropy: pruning expired records from the set failed", "err", err)
			}
		}
	}
}

// roundAll runs a session with every alive peer but those in skip, one at
// a time.
func (ae *antiEntropy) roundAll(ctx context.Context, skip []int) {
	for _, p := range ae.alivePeers() {
		if !slices.Contains(skip, p) && ctx.Err() == nil {
			ae.round(ctx, p)
		}
	}
}

// aliveSet returns the numbers of the alive members (self included).
func (ae *antiEntropy) aliveSet() map[int]bool {
	_, alive, _ := ae.n.cl.liveMembers()
	out := make(map[int]bool, len(alive))
	for _, m := range alive {
		out[m.Number] = true
	}
	return out
}

// alivePeers returns the alive members but this node, by number.
func (ae *antiEntropy) alivePeers() []int {
	_, alive, self := ae.n.cl.liveMembers()
	var out []int
	for _, m := range alive {
		if m.Number != self.Number {
			out = append(out, m.Number)
		}
	}
	slices.Sort(out)
	return out
}

// randomPeer picks an alive peer at random.
func (ae *antiEntropy) randomPeer() (int, bool) {
	ps := ae.alivePeers()
	if len(ps) == 0 {
		return 0, false
	}
	return ps[rand.IntN(len(ps))], true
}

// Reconcile runs one anti-entropy session with peer now and returns what
// it found. Rounds run by themselves; this is for tests and tools.
func (n *Node) Reconcile(ctx context.Context, peer int) (PeerSync, error) {
	if n.cl == nil || n.cl.ae == nil {
		return PeerSync{}, &lazaret.Error{Op: "reconcile", Err: fmt.Errorf("%w: not a cluster member", lazaret.ErrInvalidArgument)}
	}
	err := n.cl.ae.round(ctx, peer)
	return n.cl.ae.peerSync(peer), err
}

// round runs one session with peer as the initiator and records it.
func (ae *antiEntropy) round(ctx context.Context, peer int) error {
	ae.mu.Lock()
	if ae.inflight[peer] {
		ae.mu.Unlock()
		return &lazaret.Error{Op: "reconcile", Err: fmt.Errorf("%w: a session with node %d is in progress", lazaret.ErrConflict, peer)}
	}
	ae.inflight[peer] = true
	ae.mu.Unlock()
	defer func() {
		ae.mu.Lock()
		delete(ae.inflight, peer)
		ae.mu.Unlock()
	}()
	start := ae.n.clock.Now()
	res, err := ae.initiate(ctx, peer)
	ae.record(peer, start, res, err)
	if err != nil && ctx.Err() == nil {
		ae.n.log.Info("anti-entropy: session failed", "peer", peer, "err", err)
	}
	return err
}

// initiate runs a session with peer as the initiator.
func (ae *antiEntropy) initiate(ctx context.Context, peer int) (sessionResult, error) {
	if !ae.isReady() {
		return sessionResult{}, fmt.Errorf("%w: metadata set still loading", lazaret.ErrUnavailable)
	}
	client, err := ae.n.cl.peer(peer)
	if err != nil {
		return sessionResult{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, ae.cfg.SessionTimeout)
	defer cancel()
	stream, err := client.Reconcile(ctx)
	if err != nil {
		return sessionResult{}, wire.PeerError(err)
	}
	rd := readFrames(stream)
	res, err := ae.session(ctx, stream, rd, nil)
	if err != nil {
		return res, err
	}
	if err := stream.CloseSend(); err != nil {
		return res, wire.PeerError(err)
	}
	if _, err := rd.next(ctx); err != io.EOF {
		if err == nil {
			return res, fmt.Errorf("%w: node %d sent frames after its session ended", lazaret.ErrUnavailable, peer)
		}
		return res, wire.PeerError(err)
	}
	return res, nil
}

// Reconcile answers an anti-entropy session started by a peer.
func (h *PeerHandler) Reconcile(stream grpc.BidiStreamingServer[pb.ReconcileFrame, pb.ReconcileFrame]) error {
	cl := h.n.cl
	if cl == nil || cl.ae == nil {
		return status.Error(codes.FailedPrecondition, "not a cluster member")
	}
	ae := cl.ae
	select {
	case ae.sessions <- struct{}{}:
		defer func() { <-ae.sessions }()
	default:
		return status.Errorf(codes.ResourceExhausted, "node %d already answers %d sessions", h.n.cfg.NodeNumber, ae.cfg.MaxSessions)
	}
	if !ae.isReady() {
		return status.Error(codes.Unavailable, "metadata set still loading")
	}
	first, err := stream.Recv()
	if err != nil {
		return err
	}
	peer := int(first.GetNode())
	start := h.n.clock.Now()
	res, err := ae.session(stream.Context(), stream, readFrames(stream), first)
	ae.record(peer, start, res, err)
	return wire.Status(err)
}

// frameStream is either end of a Reconcile stream.
type frameStream interface {
	Send(*pb.ReconcileFrame) error
	Recv() (*pb.ReconcileFrame, error)
}

// frameReader receives the frames of a stream in its own goroutine and
// queues them without bound, so that both sides of a session may send
// records at once without each waiting for the other to read (gRPC flow
// control would otherwise stall both). The goroutine ends with the stream.
type frameReader struct {
	mu     sync.Mutex
	q      []*pb.ReconcileFrame
	err    error
	signal chan struct{}
}

func readFrames(st frameStream) *frameReader {
	r := &frameReader{signal: make(chan struct{}, 1)}
	go func() {
		for {
			f, err := st.Recv()
			r.mu.Lock()
			if err != nil {
				r.err = err
			} else {
				r.q = append(r.q, f)
			}
			r.mu.Unlock()
			select {
			case r.signal <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return r
}

// next returns the next frame, or the error that ended the stream.
func (r *frameReader) next(ctx context.Context) (*pb.ReconcileFrame, error) {
	for {
		r.mu.Lock()
		if len(r.q) > 0 {
			f := r.q[0]
			r.q[0] = nil
			r.q = r.q[1:]
			r.mu.Unlock()
			return f, nil
		}
		err := r.err
		r.mu.Unlock()
		if err != nil {
			return nil, err
		}
		select {
		case <-r.signal:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// sessionResult is what one session did.
type sessionResult struct {
	diff       map[string]bool
	sent, recv int64 // bytes
	merged     int   // records that changed this node's store
}

// session runs one session over st: as the initiator when first is nil,
// else as the responder whose first received frame is first.
func (ae *antiEntropy) session(ctx context.Context, st frameStream, rd *frameReader, first *pb.ReconcileFrame) (sessionResult, error) {
	sess, err := reconcile.NewSession(ae.set, ae.rcfg)
	if err != nil {
		return sessionResult{diff: map[string]bool{}}, err
	}
	r := &sessionRun{ae: ae, st: st, sess: sess, res: sessionResult{diff: map[string]bool{}}}
	if first == nil {
		if err := r.initiate(); err != nil {
			return r.res, err
		}
	}
	for !r.myDone || !r.peerDone {
		f := first
		first = nil
		if f == nil {
			if f, err = rd.next(ctx); err != nil {
				if err == io.EOF {
					return r.res, fmt.Errorf("%w: peer ended the session early", lazaret.ErrUnavailable)
				}
				return r.res, wire.PeerError(err)
			}
		}
		if err := r.handle(ctx, f); err != nil {
			return r.res, err
		}
	}
	return r.res, nil
}

// sessionRun is one session in progress.
type sessionRun struct {
	ae       *antiEntropy
	st       frameStream
	sess     *reconcile.Session
	res      sessionResult
	myDone   bool // this side sent its last frame
	peerDone bool // the peer sent its last frame
}

// send sends f, counting its bytes.
func (r *sessionRun) send(f *pb.ReconcileFrame) error {
	r.res.sent += int64(proto.Size(f))
	if err := r.st.Send(f); err != nil {
		return wire.PeerError(err)
	}
	return nil
}

// initiate sends the initiator's first message, with the retired set.
func (r *sessionRun) initiate() error {
	r.ae.setMu.Lock()
	step, err := r.sess.Initiate()
	r.ae.setMu.Unlock()
	if err != nil {
		return err
	}
	b, err := step.Reply.MarshalBinary()
	if err != nil {
		return err
	}
	return r.send(&pb.ReconcileFrame{Node: int32(r.ae.n.cfg.NodeNumber), Removed: r.ae.removedPB(), Message: b})
}

// handle takes one frame from the peer: its retired nodes and records are
// merged, its reconcile message (if any) answered.
func (r *sessionRun) handle(ctx context.Context, f *pb.ReconcileFrame) error {
	r.res.recv += int64(proto.Size(f))
	if rs := f.GetRemoved(); len(rs) > 0 {
		r.ae.mergeRemoved(removedFromPB(rs))
	}
	if err := r.ae.mergeRecords(ctx, f.GetRecords(), &r.res); err != nil {
		return err
	}
	if r.peerDone && len(f.GetMessage()) > 0 {
		return fmt.Errorf("%w: reconcile message after the peer said done", reconcile.ErrBadMessage)
	}
	if f.GetDone() {
		r.peerDone = true
	}
	if len(f.GetMessage()) == 0 {
		if r.peerDone && !r.myDone && !r.sess.Done() {
			return fmt.Errorf("%w: peer ended the session without answering", reconcile.ErrBadMessage)
		}
		return nil
	}
	if r.myDone {
		return fmt.Errorf("%w: reconcile message after this side's session ended", reconcile.ErrBadMessage)
	}
	var m reconcile.Message
	if err := m.UnmarshalBinary(f.GetMessage()); err != nil {
		return err
	}
	return r.answer(&m)
}

// answer handles the peer's message m: the differing keys are noted, and
// the reply goes back with the records the peer lacks, in as many frames
// as they take; the last says done when this side's session is.
func (r *sessionRun) answer(m *reconcile.Message) error {
	r.ae.setMu.Lock()
	step, err := r.sess.Handle(m)
	r.ae.setMu.Unlock()
	if err != nil {
		return err
	}
	for _, k := range step.Have {
		r.res.diff[k] = true
	}
	for _, k := range step.Need {
		r.res.diff[k] = true
	}
	out := &pb.ReconcileFrame{}
	if step.Reply != nil {
		if out.Message, err = step.Reply.MarshalBinary(); err != nil {
			return err
		}
	}
	frames, err := r.ae.recordFrames(step.Have)
	if err != nil {
		return err
	}
	if len(frames) > 0 {
		out.Records = frames[0]
		frames = frames[1:]
	}
	if step.Done && len(frames) == 0 {
		out.Done, r.myDone = true, true
	}
	if out.Message != nil || len(out.Records) > 0 || out.Done {
		if err := r.send(out); err != nil {
			return err
		}
	}
	for i, recs := range frames {
		last := i == len(frames)-1
		if err := r.send(&pb.ReconcileFrame{Records: recs, Done: step.Done && last}); err != nil {
			return err
		}
		if step.Done && last {
			r.myDone = true
		}
	}
	return nil
}

// recordFrames reads the records of keys and groups them in batches. A
// key whose record is gone (retention purged it) leaves the set.
func (ae *antiEntropy) recordFrames(keys []string) ([][]*pb.Message, error) {
	var out [][]*pb.Message
	for len(keys) > 0 {
		batch := keys[:min(len(keys), recordBatch)]
		keys = keys[len(batch):]
		ids := make([]lazaret.ID, len(batch))
		for i, k := range batch {
			ids[i] = lazaret.ID(k)
		}
		ms, err := ae.n.store.Metas(ids)
		if err != nil {
			return nil, err
		}
		var recs []*pb.Message
		for i, m := range ms {
			if m == nil {
				ae.forget(ids[i])
				continue
			}
			recs = append(recs, wire.MessageToPB(m))
		}
		if len(recs) > 0 {
			out = append(out, recs)
		}
	}
	return out, nil
}

// forget removes id from the set if the store no longer holds it.
func (ae *antiEntropy) forget(id lazaret.ID) {
	unlock := ae.n.lock(id)
	defer unlock()
	if _, err := ae.n.store.Meta(id); errors.Is(err, lazaret.ErrNotFound) {
		ae.setMu.Lock()
		ae.set.Delete(string(id))
		ae.setMu.Unlock()
	}
}

// mergeRecords merges received records into the store, a few at a time so
// that their fsyncs group. Records past retention are not taken.
func (ae *antiEntropy) mergeRecords(ctx context.Context, recs []*pb.Message, res *sessionResult) error {
	if len(recs) == 0 {
		return nil
	}
	horizon := ae.n.clock.Now().Add(-ae.n.cfg.Retention)
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, 8)
	)
	for _, p := range recs {
		m := wire.MessageFromPB(p)
		if m.Received.Before(horizon) {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			changed, err := ae.n.mergeOne(ctx, m)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs = append(errs, err)
			} else if changed {
				res.merged++
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// record stores the outcome of a session with peer.
func (ae *antiEntropy) record(peer int, start time.Time, res sessionResult, err error) {
	if peer <= 0 {
		return
	}
	now := ae.n.clock.Now()
	ae.mu.Lock()
	defer ae.mu.Unlock()
	ps := ae.peers[peer]
	if ps == nil {
		ps = &PeerSync{Node: peer}
		ae.peers[peer] = ps
	}
	ps.LastAttempt = start
	if err != nil {
		ps.LastError = err.Error()
		return
	}
	ps.LastError = ""
	ps.LastSuccess = now
	ps.Differences = len(res.diff)
	ps.Bytes = res.sent + res.recv
	ps.Rounds++
}

// peerSync returns the record of peer.
func (ae *antiEntropy) peerSync(peer int) PeerSync {
	ae.mu.Lock()
	defer ae.mu.Unlock()
	if ps := ae.peers[peer]; ps != nil {
		return *ps
	}
	return PeerSync{Node: peer}
}

// prune drops from the set the records retention purged (or is about to):
// the ids issued up to an hour past the retention horizon are checked
// against the store. Ids sort by issue time, so they are a prefix.
func (ae *antiEntropy) prune(ctx context.Context) error {
	horizon := ae.n.clock.Now().Add(-ae.n.cfg.Retention)
	cut := idTimePrefix(horizon.Add(time.Hour))
	ae.setMu.Lock()
	items := ae.set.Items(0, ae.set.Seek(cut), nil)
	ae.setMu.Unlock()
	for len(items) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		batch := items[:min(len(items), 1000)]
		items = items[len(batch):]
		ids := make([]lazaret.ID, len(batch))
		for i, it := range batch {
			ids[i] = lazaret.ID(it.Key)
		}
		ms, err := ae.n.store.Metas(ids)
		if err != nil {
			return err
		}
		for i, m := range ms {
			if m == nil || m.Received.Before(horizon) {
				ae.forget(ids[i])
			}
		}
	}
	return nil
}

// idTimePrefix returns the 6-digit base-62 second field of ids issued at
// t: every id issued before t's second sorts below it.
func idTimePrefix(t time.Time) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	v := max(t.Unix(), 0)
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = digits[v%62]
		v /= 62
	}
	return string(b[:])
}

// Retired nodes

// isRemoved reports whether node number was retired.
func (cl *clusterNode) isRemoved(number int) bool {
	if cl == nil || cl.ae == nil {
		return false
	}
	cl.ae.mu.Lock()
	defer cl.ae.mu.Unlock()
	_, ok := cl.ae.removed[number]
	return ok
}

// IsRetired reports whether node number was retired with `lazaret node
// remove` (learnt here or from any peer). The cluster transport refuses
// such a node's certificate (cluster.Retired).
func (n *Node) IsRetired(number int) bool { return n.cl.isRemoved(number) }

// removedPath returns where the retired set is kept.
func (ae *antiEntropy) removedPath() string {
	if ae.cfg.RemovedNodesFile != "" {
		return ae.cfg.RemovedNodesFile
	}
	return filepath.Join(ae.n.store.Dir(), "removed-nodes.json")
}

func (ae *antiEntropy) loadRemoved() error {
	b, err := os.ReadFile(ae.removedPath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("retired nodes: %w", err)
	}
	var list []RemovedNode
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("retired nodes %s: %w", ae.removedPath(), err)
	}
	for _, r := range list {
		ae.removed[r.Number] = r
	}
	return nil
}

// saveRemoved writes the retired set durably. Call with ae.mu held.
func (ae *antiEntropy) saveRemoved() error {
	list := ae.removedListLocked()
	b, err := json.MarshalIndent(list, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(ae.removedPath(), append(b, '\n'), 0o640)
}

func (ae *antiEntropy) removedListLocked() []RemovedNode {
	list := make([]RemovedNode, 0, len(ae.removed))
	for _, r := range ae.removed {
		list = append(list, r)
	}
	slices.SortFunc(list, func(a, b RemovedNode) int { return a.Number - b.Number })
	return list
}

// mergeRemoved adds retired nodes learnt from a peer or an operator (a
// grow-only set: union, keeping the earliest record of a number) and
// reports whether anything was new. New entries are persisted, start a
// repair rescan and are passed on to every alive peer.
func (ae *antiEntropy) mergeRemoved(list []RemovedNode) bool {
	ae.mu.Lock()
	changed := false
	for _, r := range list {
		if r.Number <= 0 || r.Number == ae.n.cfg.NodeNumber {
			continue // a node never retires itself from a peer's word
		}
		old, ok := ae.removed[r.Number]
		if ok && !r.Removed.Before(old.Removed) {
			continue
		}
		ae.removed[r.Number] = r
		changed = true
	}
	var err error
	if changed {
		err = ae.saveRemoved()
	}
	ae.mu.Unlock()
	if !changed {
		return false
	}
	if err != nil {
		ae.n.log.Error("retired nodes: saving failed; kept in memory and re-learnt from peers", "err", err)
	}
	ae.n.log.Warn("retired nodes changed; re-placing their shards", "removed", ae.removedNumbers())
	ae.rep.rescanNow()
	select {
	case ae.kick <- 0:
	default:
	}
	return true
}

// removedNumbers returns the retired node numbers, ascending.
func (ae *antiEntropy) removedNumbers() []int {
	ae.mu.Lock()
	defer ae.mu.Unlock()
	var out []int
	for num := range ae.removed {
		out = append(out, num)
	}
	slices.Sort(out)
	return out
}

func (ae *antiEntropy) removedPB() []*pb.RemovedNode {
	ae.mu.Lock()
	defer ae.mu.Unlock()
	var out []*pb.RemovedNode
	for _, r := range ae.removedListLocked() {
		out = append(out, &pb.RemovedNode{Number: int32(r.Number), Name: r.Name, Removed: timestamppb.New(r.Removed)})
	}
	return out
}

func removedFromPB(rs []*pb.RemovedNode) []RemovedNode {
	out := make([]RemovedNode, 0, len(rs))
	for _, r := range rs {
		out = append(out, RemovedNode{Number: int(r.GetNumber()), Name: r.GetName(), Removed: r.GetRemoved().AsTime()})
	}
	return out
}

// RemoveNode retires node number for good: it is left out of placement
// from now on, the shards it held are rebuilt on the others, and the
// retirement reaches every member through anti-entropy. The node must not
// be alive (stop it first), nor be this node. Retiring a node twice is a
// no-op. It returns the retired set.
func (n *Node) RemoveNode(ctx context.Context, number int) ([]RemovedNode, error) {
	const op = "node remove"
	if n.cl == nil || n.cl.ae == nil {
		return nil, &lazaret.Error{Op: op, Err: fmt.Errorf("%w: not a cluster member", lazaret.ErrInvalidArgument)}
	}
	if number <= 0 || number == n.cfg.NodeNumber {
		return nil, &lazaret.Error{Op: op, Err: fmt.Errorf("%w: node %d: a node cannot retire itself (run the command on another member)", lazaret.ErrInvalidArgument, number)}
	}
	name := ""
	for _, m := range n.cl.members.Members() {
		if m.Number == number {
			name = m.Name
			if m.State == member.Alive {
				return nil, &lazaret.Error{Op: op, Err: fmt.Errorf("%w: node %d (%s) is alive: stop it before retiring it", lazaret.ErrConflict, number, m.Name)}
			}
		}
	}
	ae := n.cl.ae
	ae.mergeRemoved([]RemovedNode{{Number: number, Name: name, Removed: n.clock.Now().UTC()}})
	ae.mu.Lock()
	defer ae.mu.Unlock()
	return ae.removedListLocked(), nil
}

// RemovedNodes returns the retired nodes (nil on a single node).
func (n *Node) RemovedNodes() []RemovedNode {
	if n.cl == nil || n.cl.ae == nil {
		return nil
	}
	n.cl.ae.mu.Lock()
	defer n.cl.ae.mu.Unlock()
	return n.cl.ae.removedListLocked()
}

// RemoveNode answers `lazaret node remove` (see Node.RemoveNode).
func (h *PeerHandler) RemoveNode(ctx context.Context, req *pb.RemoveNodeRequest) (*pb.RemoveNodeResponse, error) {
	list, err := h.n.RemoveNode(ctx, int(req.GetNumber()))
	if err != nil {
		return nil, wire.Status(err)
	}
	resp := &pb.RemoveNodeResponse{}
	for _, r := range list {
		resp.Removed = append(resp.Removed, &pb.RemovedNode{Number: int32(r.Number), Name: r.Name, Removed: timestamppb.New(r.Removed)})
	}
	return resp, nil
}

package replicator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/member"
)

// Repair (docs/antientropy.md, "Repair")
//
// A repair check of one message, on one node, does at most one of:
//
//  1. own shards: every shard the placement puts on this node must be
//     stored here with the placed size and SHA-256 (and, after a read
//     found it corrupt, must read back clean); a missing or bad one is
//     rebuilt from K other shards (GetShard from peers), re-encoded and
//     committed (CommitShards). A node that returns with an empty disk is
//     rebuilt this way once anti-entropy has brought its metadata back.
//  2. spread: a message this node took in as an under-protected whole copy
//     (1+0) is erasure-coded with the cluster's code and sent to distinct
//     alive nodes as soon as a write quorum of them is alive; the new
//     placement is committed (with the local shard, which replaces the
//     whole copy, in the same transaction) and pushed; a whole copy left on
//     a node outside the new placement is dropped after CleanupDelay.
//  3. fill: an index of the message's code that has no shard on a
//     not retired node (a shard the put could not store, or one on a node
//     retired by `lazaret node remove`) gets a target by rendezvous
//     ranking: the alive members not holding a shard of the message yet,
//     in rank order, one per unplaced index in ascending order. The target
//     of the lowest unplaced index fills them all: it rebuilds its own
//     shard locally, streams the others to their targets, and records
//     those stored in one placement update, which it pushes. Since
//     lazaret.Merge keeps the newer placement whole (rule 4), fills of one
//     message by several nodes would drop each other's shards, to be
//     filled again and dropped again for as long as the nodes' updates
//     cross (a flapping, lossy cluster); one writer per message does not.
//     Nodes whose membership views differ may still both fill; each
//     writes a complete placement, so whichever wins leaves nothing to
//     redo (the loser's shards are orphans). A shard left here by a lost
//     update is reused rather than rebuilt.
//
// Deleted and expired messages are never repaired. Work is derived from
// the metadata and the local shards (a scan at start and every
// RescanInterval, and a check of every record that changes), never only
// from memory, so repair resumes after a crash. All shard bytes read and
// written pass through a token bucket (RepairRate).

// repairer queues and runs repair checks.
type repairer struct {
	n      *Node
	cfg    AntiEntropyConfig
	bucket *tokenBucket

	mu       sync.Mutex
	queue    []lazaret.ID
	queued   map[lazaret.ID]bool // value: verify local shard contents
	later    map[lazaret.ID]time.Time
	cleanup  map[lazaret.ID]time.Time
	degraded map[lazaret.ID]bool // placement with unfilled indices, or under-protected
	// active holds the messages being checked. A message is checked by one
	// worker at a time: two spreads (or fills) of one message race to
	// publish a placement, and the loser then takes back shards the
	// winner's placement may name. A message queued while its check runs
	// waits in the queue (pop passes over it).
	active   map[lazaret.ID]bool
	overflow bool
	running  int // checks in progress

	wake   chan struct{}
	rescan chan struct{}

	repairedBytes atomic.Int64
	repaired      atomic.Int64
	failures      atomic.Int64
}

func newRepairer(n *Node, cfg AntiEntropyConfig) *repairer {
	return &repairer{
		n: n, cfg: cfg, bucket: newTokenBucket(cfg.RepairRate, cfg.RepairBurst, n.clock, nil),
		queued: map[lazaret.ID]bool{}, later: map[lazaret.ID]time.Time{}, cleanup: map[lazaret.ID]time.Time{},
		degraded: map[lazaret.ID]bool{}, active: map[lazaret.ID]bool{},
		wake: make(chan struct{}, 1), rescan: make(chan struct{}, 1),
	}
}

// note is called (from noteMeta) with every record this node stores: it
// queues a check when the record may need repair work here.
func (r *repairer) note(m *lazaret.Metadata) {
	if m.State == lazaret.StateDeleted {
		r.mu.Lock()
		delete(r.degraded, m.ID)
		delete(r.later, m.ID)
		r.mu.Unlock()
		return
	}
	self := r.n.cfg.NodeNumber
	pl := bodyPlacement(m)
	mine := false
	for _, s := range pl.Shards {
		if s.Node == self {
			mine = true
		}
	}
	deg := r.degradedPlacement(m)
	r.mu.Lock()
	if deg {
		r.degraded[m.ID] = true
	} else {
		delete(r.degraded, m.ID)
	}
	r.mu.Unlock()
	if mine || deg {
		r.enqueue(m.ID, false)
	}
}

// degradedPlacement reports whether m's placement lacks shards on live,
// not retired nodes: an under-protected message, or one with a shard on a
// retired node.
func (r *repairer) degradedPlacement(m *lazaret.Metadata) bool {
	if m.Placement.UnderProtected {
		return true
	}
	for _, s := range m.Placement.Shards {
		if r.n.cl.isRemoved(s.Node) {
			return true
		}
	}
	return false
}

// hint queues a check of id after a shard of it failed a checksum here.
func (n *Node) repairHint(id lazaret.ID) {
	if n.cl != nil && n.cl.ae != nil {
		n.cl.ae.rep.enqueue(id, true)
	}
}

// enqueue adds id to the queue without blocking; verify asks for the local
// shards' contents to be read back. A full queue sets off a rescan.
func (r *repairer) enqueue(id lazaret.ID, verify bool) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v, ok := r.queued[id]; ok {
		r.queued[id] = v || verify
		return true
	}
	if len(r.queue) >= r.cfg.RepairQueue {
		r.overflow = true
		return false
	}
	r.queued[id] = verify
	r.queue = append(r.queue, id)
	r.wakeOne()
	return true
}

// membershipChanged queues every degraded message: a node came back or
// left, so a spread or a fill may now be possible.
func (r *repairer) membershipChanged() {
	r.mu.Lock()
	ids := make([]lazaret.ID, 0, len(r.degraded))
	for id := range r.degraded {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	slices.Sort(ids)
	for _, id := range ids {
		r.enqueue(id, false)
	}
}

// rescanNow asks for a full scan.
func (r *repairer) rescanNow() {
	select {
	case r.rescan <- struct{}{}:
	default:
	}
}

// pop takes the first queued id whose check is not running already.
func (r *repairer) pop() (lazaret.ID, bool, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	i := slices.IndexFunc(r.queue, func(id lazaret.ID) bool { return !r.active[id] })
	if i < 0 {
		return "", false, false
	}
	id := r.queue[i]
	r.queue = slices.Delete(r.queue, i, i+1)
	verify := r.queued[id]
	delete(r.queued, id)
	r.active[id] = true
	r.running++
	if len(r.queue) > 0 {
		r.wakeOne() // more work: another idle worker may take it
	}
	return id, verify, true
}

// doneOne ends the check of id; a check of it queued meanwhile may run.
func (r *repairer) doneOne(id lazaret.ID) {
	r.mu.Lock()
	r.running--
	delete(r.active, id)
	_, again := r.queued[id]
	r.mu.Unlock()
	if again {
		r.wakeOne()
	}
}

// wakeOne wakes an idle worker, if one waits.
func (r *repairer) wakeOne() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// queueLen returns the checks waiting or running, and those waiting for
// a retry.
func (r *repairer) queueLen() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.queue) + r.running + len(r.later)
}

// run scans once, then runs the workers until ctx is cancelled.
func (r *repairer) run(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.cfg.RepairWorkers {
		wg.Go(func() { r.worker(ctx) })
	}
	defer wg.Wait()
	scan := func() {
		if err := r.scan(ctx); err != nil && ctx.Err() == nil {
			r.n.log.Error("repair: scanning metadata failed", "err", err)
		}
	}
	scan()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	rescan := time.NewTicker(r.cfg.RescanInterval)
	defer rescan.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-r.rescan:
			scan()
		case <-rescan.C:
			scan()
		case <-tick.C:
			r.due(ctx)
			r.mu.Lock()
			over := r.overflow
			r.overflow = false
			r.mu.Unlock()
			if over {
				scan()
			}
		}
	}
}

// due moves retries and cleanups whose time has come.
func (r *repairer) due(ctx context.Context) {
	now := r.n.clock.Now()
	var retry, clean []lazaret.ID
	r.mu.Lock()
	for id, t := range r.later {
		if !now.Before(t) {
			retry = append(retry, id)
			delete(r.later, id)
		}
	}
	for id, t := range r.cleanup {
		if !now.Before(t) {
			clean = append(clean, id)
			delete(r.cleanup, id)
		}
	}
	r.mu.Unlock()
	for _, id := range retry {
		r.enqueue(id, false)
	}
	for _, id := range clean {
		r.dropUnplaced(ctx, id)
	}
}

// worker runs checks until ctx is cancelled.
func (r *repairer) worker(ctx context.Context) {
	for {
		id, verify, ok := r.pop()
		if !ok {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
			case <-time.After(500 * time.Millisecond):
			}
			continue
		}
		err := r.check(ctx, id, verify)
		r.doneOne(id)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			r.failures.Add(1)
			r.n.log.Warn("repair failed; retrying later", "id", id, "err", err)
			r.mu.Lock()
			r.later[id] = r.n.clock.Now().Add(r.cfg.RepairRetry)
			r.mu.Unlock()
		}
	}
}

// scan walks every record and queues those with repair work for this node,
// waiting for room in the queue as it goes.
func (r *repairer) scan(ctx context.Context) error {
	var after lazaret.ID
	for {
		page, err := r.n.store.MetaPage(ctx, after, 500)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			return nil
		}
		for _, m := range page {
			if m.State == lazaret.StateDeleted || r.n.expired(m) {
				continue
			}
			work, err := r.needsWork(m)
			if err != nil {
				return err
			}
			if !work {
				continue
			}
			for !r.enqueue(m.ID, false) {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(50 * time.Millisecond):
				}
				r.mu.Lock()
				r.overflow = false
				r.mu.Unlock()
			}
		}
		after = page[len(page)-1].ID
	}
}

// needsWork tells the scan whether m may need a check here: a placed shard
// missing or not the placed one, or a degraded placement.
func (r *repairer) needsWork(m *lazaret.Metadata) (bool, error) {
	deg := r.degradedPlacement(m)
	r.mu.Lock()
	if deg {
		r.degraded[m.ID] = true
	} else {
		delete(r.degraded, m.ID)
	}
	r.mu.Unlock()
	if deg {
		return true, nil
	}
	self := r.n.cfg.NodeNumber
	var mine []lazaret.ShardLoc
	for _, s := range bodyPlacement(m).Shards {
		if s.Node == self {
			mine = append(mine, s)
		}
	}
	if len(mine) == 0 {
		return false, nil
	}
	infos, err := r.n.store.ShardInfos(m.ID)
	if err != nil {
		return false, err
	}
	for _, s := range mine {
		if !hasShard(infos, s) {
			return true, nil
		}
	}
	return false, nil
}

// hasShard reports whether infos hold the shard loc places.
func hasShard(infos []objstore.ShardInfo, loc lazaret.ShardLoc) bool {
	for _, in := range infos {
		if in.Index == loc.Index && in.Size == loc.Size && in.SHA256 == loc.SHA256 {
			return true
		}
	}
	return false
}

// check runs the repair check of one message (see the comment at the top).
func (r *repairer) check(ctx context.Context, id lazaret.ID, verify bool) error {
	n := r.n
	m, err := n.store.Meta(id)
	if errors.Is(err, lazaret.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if m.State == lazaret.StateDeleted || n.expired(m) {
		return nil
	}
	self := n.cfg.NodeNumber
	pl := bodyPlacement(m)
	if m.Node == self && m.Placement.UnderProtected && pl.K == 1 && pl.M == 0 {
		return r.spread(ctx, m)
	}
	infos, err := n.store.ShardInfos(id)
	if err != nil {
		return err
	}
	for _, loc := range pl.Shards {
		if loc.Node != self {
			continue
		}
		ok := hasShard(infos, loc)
		if ok && verify {
			if err := n.verifyLocalShard(id, loc); err != nil {
				n.log.Error("repair: local shard failed its checksum; rebuilding it", "id", id, "shard", loc.Index, "err", err)
				ok = false
			}
		}
		if ok {
			continue
		}
		if err := r.rebuildOwn(ctx, m, pl, loc); err != nil {
			return err
		}
	}
	if pl.K == 1 && pl.M == 0 {
		return nil
	}
	_, alive, _ := n.cl.liveMembers()
	targets := fillTargets(id, pl, alive, n.cl.isRemoved)
	if first, ok := firstTarget(targets); ok && first.Number == self {
		return r.fill(ctx, m, pl, targets, infos)
	}
	return nil
}

// firstTarget returns the target of the lowest index in targets: the one
// node that fills all of them (see fill).
func firstTarget(targets map[int]member.Member) (member.Member, bool) {
	lowest := -1
	for idx := range targets {
		if lowest < 0 || idx < lowest {
			lowest = idx
		}
	}
	if lowest < 0 {
		return member.Member{}, false
	}
	return targets[lowest], true
}

// verifyLocalShard reads a local shard through, checking every chunk's
// CRC32C and the shard's SHA-256.
func (n *Node) verifyLocalShard(id lazaret.ID, loc lazaret.ShardLoc) error {
	info, rc, err := n.store.OpenShard(id, loc.Index)
	if err != nil {
		return err
	}
	defer rc.Close()
	if info.Size != loc.Size || info.SHA256 != loc.SHA256 {
		return fmt.Errorf("%w: stored shard is not the placed one", lazaret.ErrCorrupt)
	}
	_, err = io.Copy(io.Discard, rc)
	if errors.Is(err, lazaret.ErrCorrupt) {
		n.countCorrupt()
	}
	return err
}

// fillTargets returns, for every index of pl's code without a shard on a
// node that is not retired, the node that should hold it: the alive
// members (not retired) in rendezvous order for id, skipping those that
// hold a shard of the message already; indices in ascending order take
// them in turn. Indices left without a target (too few nodes) are absent.
func fillTargets(id lazaret.ID, pl lazaret.Placement, alive []member.Member, removed func(int) bool) map[int]member.Member {
	code := erasure.Code{K: pl.K, M: pl.M}
	used := map[int]bool{}
	placed := map[int]bool{}
	for _, s := range pl.Shards {
		if !removed(s.Node) {
			used[s.Node] = true
			placed[s.Index] = true
		}
	}
	var eligible []member.Member
	for _, m := range alive {
		if !removed(m.Number) {
			eligible = append(eligible, m)
		}
	}
	ranked := rankMembers(id, eligible)
	out := map[int]member.Member{}
	next := 0
	for idx := range code.Shards() {
		if placed[idx] {
			continue
		}
		for next < len(ranked) && used[ranked[next].Number] {
			next++
		}
		if next == len(ranked) {
			break
		}
		out[idx] = ranked[next]
		used[ranked[next].Number] = true
	}
	return out
}

// rebuildOwn rebuilds the shard loc places on this node and commits it.
func (r *repairer) rebuildOwn(ctx context.Context, m *lazaret.Metadata, pl lazaret.Placement, loc lazaret.ShardLoc) error {
	w, got, err := r.rebuildShard(ctx, m, pl, loc.Index)
	if err != nil {
		return err
	}
	if got.Size != loc.Size || got.SHA256 != loc.SHA256 {
		_ = w.Abort()
		return &lazaret.Error{Op: "repair", ID: m.ID, Err: fmt.Errorf("%w: rebuilt shard %d is %d bytes SHA-256 %x, placement says %d bytes %x", lazaret.ErrCorrupt, loc.Index, got.Size, got.SHA256[:8], loc.Size, loc.SHA256[:8])}
	}
	if err := r.n.store.CommitShards(ctx, w); err != nil {
		_ = w.Abort()
		return err
	}
	r.done(m.ID, got.Size)
	r.n.log.Info("repair: rebuilt a missing shard", "id", m.ID, "shard", loc.Index, "bytes", got.Size)
	return nil
}

// done counts a repaired shard and drops it if the message was deleted
// meanwhile.
func (r *repairer) done(id lazaret.ID, bytes int64) {
	r.repaired.Add(1)
	r.repairedBytes.Add(bytes)
	if cur, err := r.n.store.Meta(id); err == nil && cur.State == lazaret.StateDeleted {
		_ = r.n.store.DeleteShards(id)
	}
}

// rebuildShard reads m's body from K shards of pl (not index itself on
// this node, nor shards on retired nodes), re-encodes it and writes shard
// index into a finished, uncommitted local writer.
func (r *repairer) rebuildShard(ctx context.Context, m *lazaret.Metadata, pl lazaret.Placement, index int) (*objstore.ShardWriter, lazaret.ShardLoc, error) {
	n := r.n
	code := erasure.Code{K: pl.K, M: pl.M}
	sink, err := n.newLocalSink(m.ID, code, index)
	if err != nil {
		return nil, lazaret.ShardLoc{}, err
	}
	t := &repairTarget{sink: sink, index: index, node: n.cfg.NodeNumber}
	size, err := r.transcode(ctx, m, pl, index, code, pl.ChunkSize, []*repairTarget{t})
	if err == nil && t.err != nil {
		err = &lazaret.Error{Op: "repair", ID: m.ID, Err: fmt.Errorf("writing shard %d: %w", index, t.err)}
	}
	if err != nil {
		sink.abort()
		return nil, lazaret.ShardLoc{}, err
	}
	loc, err := sink.finish(size)
	if err != nil {
		sink.abort()
		return nil, lazaret.ShardLoc{}, err
	}
	return sink.(*localSink).w, loc, nil
}

// repairTarget is one shard repair writes, to this node or a peer.
type repairTarget struct {
	sink        shardSink
	index, node int
	err         error // the first failure; the target is skipped after it
	loc         lazaret.ShardLoc
}

// writeTargets writes piece i to target i, concurrently.
func writeTargets(ts []*repairTarget, pieces [][]byte) {
	var wg sync.WaitGroup
	for i, t := range ts {
		if t.err != nil {
			continue
		}
		wg.Go(func() { t.err = t.sink.write(pieces[i]) })
	}
	wg.Wait()
}

// finishTargets finishes the healthy targets concurrently and returns the
// locations of the stored shards, by index, and the local writer if one of
// them is this node's.
func finishTargets(ts []*repairTarget, size int64) ([]lazaret.ShardLoc, *objstore.ShardWriter) {
	var wg sync.WaitGroup
	for _, t := range ts {
		if t.err != nil {
			continue
		}
		wg.Go(func() { t.loc, t.err = t.sink.finish(size) })
	}
	wg.Wait()
	var out []lazaret.ShardLoc
	var local *objstore.ShardWriter
	for _, t := range ts {
		if t.err != nil {
			continue
		}
		out = append(out, t.loc)
		if l, ok := t.sink.(*localSink); ok {
			local = l.w
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Index < out[j].Index })
	return out, local
}

// transcode reads m's body from the shards of src (skipping shard skip on
// this node, -1 for none) and encodes it with code and chunk, writing shard
// each target's shard to it (a failing target keeps its error and is
// skipped; callers check). Every byte read and written is charged to the token
// bucket. It returns the body size.
func (r *repairer) transcode(ctx context.Context, m *lazaret.Metadata, src lazaret.Placement, skip int, code erasure.Code, chunk int, ts []*repairTarget) (int64, error) {
	n := r.n
	id := m.ID
	srcEnc, err := n.cl.codecs.Get(erasure.Code{K: src.K, M: src.M})
	if err != nil {
		return 0, err
	}
	enc, err := n.cl.codecs.Get(code)
	if err != nil {
		return 0, err
	}
	self := n.cfg.NodeNumber
	var cands []lazaret.ShardLoc
	for _, c := range n.shardCandidates(id, src) {
		if (c.Node == self && c.Index == skip) || n.cl.isRemoved(c.Node) {
			continue
		}
		cands = append(cands, c)
	}
	rd := erasure.NewStripeReader(ctx, id, src, m.Size, m.SHA256, srcEnc, cands, n.openPlacedShard(id, erasure.Code{K: src.K, M: src.M}, m.Size), n.shardFailed(id))
	defer rd.Close()
	if chunk <= 0 {
		chunk = int(min(max(m.Size, 1), 1<<20))
	}
	body := &bucketReader{ctx: ctx, r: rd, b: r.bucket}
	pieces := make([][]byte, len(ts))
	size, err := erasure.EncodeStripes(enc, code, chunk, body, func(all [][]byte) error {
		out := 0
		for i, t := range ts {
			pieces[i] = all[t.index]
			out += len(all[t.index])
		}
		if err := r.bucket.wait(ctx, out); err != nil {
			return err
		}
		writeTargets(ts, pieces)
		return nil
	})
	if err != nil {
		return 0, &lazaret.Error{Op: "repair", ID: id, Err: err}
	}
	// encodeStripes stops at a short stripe without reading EOF; the body's
	// SHA-256 is checked when the reader reaches its end.
	var one [1]byte
	if k, err := rd.Read(one[:]); k > 0 || err != io.EOF {
		if err == nil || err == io.EOF {
			err = fmt.Errorf("%w: body longer than its metadata says", lazaret.ErrCorrupt)
		}
		return 0, &lazaret.Error{Op: "repair", ID: id, Err: err}
	}
	if size != m.Size {
		return 0, &lazaret.Error{Op: "repair", ID: id, Err: fmt.Errorf("%w: rebuilt %d bytes, metadata says %d", lazaret.ErrCorrupt, size, m.Size)}
	}
	return size, nil
}

// abortUnplaced aborts the targets' shards, except remote ones the
// message's current placement names: should another spread or fill have
// published the same shard (same node, index, size and SHA-256), taking it
// back would leave that placement naming a shard its holder lost. (A local
// writer not committed is always aborted: that removes only its own data.)
func (r *repairer) abortUnplaced(id lazaret.ID, ts []*repairTarget) {
	var placed []lazaret.ShardLoc
	if cur, err := r.n.store.Meta(id); err == nil && cur.State != lazaret.StateDeleted {
		placed = bodyPlacement(cur).Shards
	}
	for _, t := range ts {
		if t.sink == nil {
			continue
		}
		if _, local := t.sink.(*localSink); !local && t.err == nil && slices.Contains(placed, t.loc) {
			continue
		}
		t.sink.abort()
	}
}

// fill rebuilds every unplaced index of m that targets names (this node
// is the target of the lowest one): its own shard locally (or reuses it if
// a lost placement update left it here), the others streamed to their
// targets, and records those stored in one placement update. One node
// writing the whole fill keeps concurrent fills of one message from
// dropping each other's shards through lazaret.Merge rule 4 (the newer
// placement wins whole). A target that failed is left unplaced and the
// check is retried.
func (r *repairer) fill(ctx context.Context, m *lazaret.Metadata, pl lazaret.Placement, targets map[int]member.Member, infos []objstore.ShardInfo) error {
	n := r.n
	self := n.cfg.NodeNumber
	code := erasure.Code{K: pl.K, M: pl.M}
	var locs []lazaret.ShardLoc
	reused := map[int]bool{}
	var ts []*repairTarget
	skip := -1
	for idx, t := range targets {
		if t.Number == self {
			skip = idx
			for _, in := range infos {
				if in.Index == idx && in.K == pl.K && in.M == pl.M && in.BodySize == m.Size {
					locs = append(locs, lazaret.ShardLoc{Index: idx, Node: self, Size: in.Size, SHA256: in.SHA256})
					reused[idx] = true
				}
			}
		}
	}
	// Bound the transfer, and end every shard stream when fill returns.
	ctx, cancel := context.WithTimeout(ctx, n.cl.cfg.PeerTimeout+time.Duration(m.Size/100_000)*time.Second)
	defer cancel()
	for idx, t := range targets {
		if reused[idx] {
			continue
		}
		rt := &repairTarget{index: idx, node: t.Number}
		if t.Number == self {
			rt.sink, rt.err = n.newLocalSink(m.ID, code, idx)
		} else {
			rt.sink, rt.err = n.newRemoteSink(ctx, m.ID, code, idx, pl.ChunkSize, t.Number)
		}
		ts = append(ts, rt)
	}
	sort.Slice(ts, func(i, j int) bool { return ts[i].index < ts[j].index })
	committed := false
	defer func() {
		if !committed {
			r.abortUnplaced(m.ID, ts)
		}
	}()
	var failed []error
	for _, t := range ts {
		if t.err != nil {
			failed = append(failed, fmt.Errorf("shard %d on node %d: %w", t.index, t.node, t.err))
		}
	}
	if len(failed) < len(ts) {
		size, err := r.transcode(ctx, m, pl, skip, code, pl.ChunkSize, ts)
		if err != nil {
			return err
		}
		stored, local := finishTargets(ts, size)
		if local != nil {
			if err := n.store.CommitShards(ctx, local); err != nil {
				return err
			}
		}
		committed = true
		for _, t := range ts {
			if t.err != nil && t.sink != nil {
				t.sink.abort()
				failed = append(failed, fmt.Errorf("shard %d on node %d: %w", t.index, t.node, t.err))
			}
		}
		for _, l := range stored {
			r.done(m.ID, l.Size)
		}
		locs = append(locs, stored...)
	}
	errFailed := func() error {
		if len(failed) == 0 {
			return nil
		}
		return &lazaret.Error{Op: "repair", ID: m.ID, Err: fmt.Errorf("%w: filling: %w", lazaret.ErrUnavailable, errors.Join(failed...))}
	}
	if len(locs) == 0 {
		return errFailed()
	}
	unlock := n.lock(m.ID)
	defer unlock()
	cur, err := n.store.Meta(m.ID)
	if err != nil {
		return err
	}
	if cur.State == lazaret.StateDeleted || cur.Placement.K != pl.K || cur.Placement.M != pl.M || cur.Placement.ChunkSize != pl.ChunkSize {
		return nil // changed meanwhile; the change queued another check
	}
	shards := slices.Clone(cur.Placement.Shards)
	var details, froms []string
	var placed []lazaret.ShardLoc
	for _, loc := range locs {
		from := "unplaced"
		taken := false
		for _, s := range shards {
			if s.Index != loc.Index {
				continue
			}
			if !n.cl.isRemoved(s.Node) {
				taken = true // filled by another node meanwhile
			}
			from = fmt.Sprintf("node %d (retired)", s.Node)
		}
		if taken {
			continue
		}
		shards = slices.DeleteFunc(shards, func(s lazaret.ShardLoc) bool { return s.Index == loc.Index })
		shards = append(shards, loc)
		placed = append(placed, loc)
		froms = append(froms, from)
		details = append(details, fmt.Sprintf("shard %d from %s to node %d", loc.Index, from, loc.Node))
	}
	if len(placed) == 0 {
		return errFailed()
	}
	sort.Slice(shards, func(i, j int) bool { return shards[i].Index < shards[j].Index })
	up := cur.Clone()
	up.Placement.Shards = shards
	up.Placement.UnderProtected = !fullyPlaced(up.Placement, n.cl.isRemoved)
	for _, d := range details {
		up.History = append(up.History, n.event("repair", "repair", d))
	}
	up.Version = n.versionAfter(cur)
	up.Placement.Version = up.Version // see lazaret.Merge rule 4
	if err := n.store.PutMeta(ctx, up); err != nil {
		return &lazaret.Error{Op: "repair", ID: m.ID, Err: lazaret.Temporary(err)}
	}
	n.changed(up)
	for i, loc := range placed {
		n.log.Info("repair: placed a shard", "id", m.ID, "shard", loc.Index, "node", loc.Node, "from", froms[i], "reused", reused[loc.Index] && loc.Node == self)
	}
	return errFailed()
}

// fullyPlaced reports whether every index of pl's code has a shard on a
// distinct node that is not retired.
func fullyPlaced(pl lazaret.Placement, removed func(int) bool) bool {
	idx := map[int]bool{}
	nodes := map[int]bool{}
	for _, s := range pl.Shards {
		if removed(s.Node) || nodes[s.Node] {
			continue
		}
		nodes[s.Node] = true
		idx[s.Index] = true
	}
	return len(idx) == pl.K+pl.M
}

// spread erasure-codes an under-protected whole copy this node took in and
// sends its shards to distinct alive nodes, once a write quorum of them is
// alive.
func (r *repairer) spread(ctx context.Context, m *lazaret.Metadata) error {
	n := r.n
	cl := n.cl
	all, alive, self := cl.liveMembers()
	code := clusterCode(cl.policy, all)
	if t := cl.cfg.SmallMessageThreshold; t > 0 && code.K > 1 && m.Size < t {
		code = erasure.Code{K: 1, M: code.M}
	}
	quorum := erasure.WriteQuorum(cl.cfg.WriteQuorum, code)
	targets := placeShards(m.ID, alive, code.Shards())
	if len(targets) < quorum || len(targets) < 2 {
		// Not yet: a membership change queues it again, and so does a
		// retry, in case the change came while this check ran.
		r.mu.Lock()
		r.later[m.ID] = n.clock.Now().Add(r.cfg.RepairRetry)
		r.mu.Unlock()
		return nil
	}
	// This node, if a target, takes shard 0: committing it replaces the
	// whole copy (also shard 0) in the same transaction as the placement.
	if i := slices.IndexFunc(targets, func(t member.Member) bool { return t.Number == self.Number }); i > 0 {
		t := targets[i]
		copy(targets[1:i+1], targets[:i])
		targets[0] = t
	}
	// Bound the transfer, and end every shard stream when spread returns.
	ctx, cancel := context.WithTimeout(ctx, cl.cfg.PeerTimeout+time.Duration(m.Size/100_000)*time.Second)
	defer cancel()
	chunk := cl.cfg.StripeChunkSize
	ts := make([]*repairTarget, len(targets))
	for i, t := range targets {
		rt := &repairTarget{index: i, node: t.Number}
		if t.Number == self.Number {
			rt.sink, rt.err = n.newLocalSink(m.ID, code, i)
		} else {
			rt.sink, rt.err = n.newRemoteSink(ctx, m.ID, code, i, chunk, t.Number)
		}
		ts[i] = rt
	}
	committed := false
	defer func() {
		if !committed {
			r.abortUnplaced(m.ID, ts)
		}
	}()
	size, err := r.transcode(ctx, m, bodyPlacement(m), -1, code, chunk, ts)
	if err != nil {
		return err
	}
	locs, local := finishTargets(ts, size)
	if len(locs) < quorum {
		return &lazaret.Error{Op: "repair", ID: m.ID, Err: fmt.Errorf("%w: spreading: %d of %d shards stored, the write quorum is %d", lazaret.ErrUnavailable, len(locs), len(targets), quorum)}
	}
	unlock := n.lock(m.ID)
	defer unlock()
	cur, err := n.store.Meta(m.ID)
	if err != nil {
		return err
	}
	if cur.State == lazaret.StateDeleted || cur.Placement.K != m.Placement.K || cur.Placement.M != m.Placement.M || !cur.Placement.UnderProtected {
		return nil // changed meanwhile; sinks are aborted
	}
	up := cur.Clone()
	up.Placement = lazaret.Placement{K: code.K, M: code.M, ChunkSize: chunk, Shards: locs, UnderProtected: len(locs) < code.Shards()}
	var nodes []string
	var bytes int64
	for _, l := range locs {
		nodes = append(nodes, fmt.Sprint(l.Node))
		bytes += l.Size
	}
	up.History = append(up.History, n.event("repair", "protect", fmt.Sprintf("%v on nodes %s", code, strings.Join(nodes, ","))))
	up.Version = n.versionAfter(cur)
	up.Placement.Version = up.Version // see lazaret.Merge rule 4
	var ws []*objstore.ShardWriter
	if local != nil {
		ws = append(ws, local)
	}
	// The holders learn the new placement before this node gives up its
	// whole copy (as a put's holders do before the acknowledgement): should
	// this node die right after the commit, they can still find the shards.
	// Should it die before, it comes back with the whole copy, merges the
	// newer placement and rebuilds its own shard from the others.
	// Once pushed, the remote shards stay whatever happens here.
	n.pushToHolders(up, quorum) // push.go
	committed = true
	if err := n.store.Commit(ctx, up, ws...); err != nil {
		if local != nil {
			_ = local.Abort()
		}
		return &lazaret.Error{Op: "repair", ID: m.ID, Err: lazaret.Temporary(err)}
	}
	n.changed(up)
	r.repaired.Add(int64(len(locs)))
	r.repairedBytes.Add(bytes)
	if local == nil {
		r.mu.Lock()
		r.cleanup[m.ID] = n.clock.Now().Add(r.cfg.CleanupDelay)
		r.mu.Unlock()
	}
	n.log.Info("repair: spread an under-protected message", "id", m.ID, "code", code.String(), "shards", len(locs))
	return nil
}

// dropUnplaced removes this node's shards of id if its placement no longer
// names this node (a whole copy a spread moved elsewhere).
func (r *repairer) dropUnplaced(ctx context.Context, id lazaret.ID) {
	n := r.n
	unlock := n.lock(id)
	defer unlock()
	m, err := n.store.Meta(id)
	if err != nil {
		return
	}
	pl := bodyPlacement(m)
	if pl.K == 1 && pl.M == 0 {
		return // still (or again) a whole copy
	}
	for _, s := range pl.Shards {
		if s.Node == n.cfg.NodeNumber {
			return
		}
	}
	if err := n.store.DeleteShards(id); err != nil {
		n.log.Warn("repair: dropping a whole copy that was spread failed; retention will", "id", id, "err", err)
	}
}

// tokenBucket limits repair to rate bytes per second with bursts of burst
// bytes. A waiter takes what it needs at once (the balance may go
// negative) and sleeps until the balance would be back at zero, so
// concurrent waiters share the rate.
type tokenBucket struct {
	rate, burst float64
	clock       lazaret.Clock
	sleep       func(context.Context, time.Duration) error

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

// newTokenBucket returns a bucket; rate <= 0 never waits. sleep nil means
// a timer.
func newTokenBucket(rate, burst int64, clock lazaret.Clock, sleep func(context.Context, time.Duration) error) *tokenBucket {
	if sleep == nil {
		sleep = func(ctx context.Context, d time.Duration) error {
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-t.C:
				return nil
			}
		}
	}
	burst = max(burst, 1)
	return &tokenBucket{rate: float64(rate), burst: float64(burst), clock: clock, sleep: sleep, tokens: float64(burst), last: clock.Now()}
}

// wait takes n bytes' worth of tokens, sleeping as needed.
func (b *tokenBucket) wait(ctx context.Context, n int) error {
	if b.rate <= 0 || n <= 0 {
		return ctx.Err()
	}
	b.mu.Lock()
	now := b.clock.Now()
	if el := now.Sub(b.last).Seconds(); el > 0 {
		b.tokens = min(b.burst, b.tokens+el*b.rate)
	}
	b.last = now
	b.tokens -= float64(n)
	deficit := -b.tokens
	b.mu.Unlock()
	if deficit <= 0 {
		return ctx.Err()
	}
	return b.sleep(ctx, time.Duration(deficit/b.rate*float64(time.Second)))
}

// bucketReader charges what it reads to a token bucket.
type bucketReader struct {
	ctx context.Context
	r   io.Reader
	b   *tokenBucket
}

func (br *bucketReader) Read(p []byte) (int, error) {
	k, err := br.r.Read(p)
	if k > 0 {
		if werr := br.b.wait(br.ctx, k); werr != nil {
			return k, werr
		}
	}
	return k, err
}

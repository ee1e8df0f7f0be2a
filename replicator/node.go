package replicator

import (
	"bytes"
	"context"
	"crypto/md5"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// Node serves every lazaret.Quarantine operation from the local store.
type Node struct {
	cfg     Config
	log     *slog.Logger
	clock   lazaret.Clock
	store   *objstore.Store
	alloc   *lazaret.Allocator
	hlc     *lazaret.HLC
	learner lazaret.Learner
	started time.Time

	// locks serialise read-modify-write of one message's metadata (learn vs
	// delete, a retried put of the same id) without a global lock.
	locks [64]sync.Mutex
	seed  maphash.Seed
	// releasing serialises deliveries of one message (release.go).
	releasing releaseLocks
	// index is the shared search index, if any (search.go).
	index atomic.Pointer[indexHooks]

	// cl is the cluster side (cluster_node.go); nil on a single node.
	cl *clusterNode

	stop context.CancelFunc
}

var _ lazaret.Quarantine = (*Node)(nil)

// New returns a Node over store and starts its background retention. The
// caller keeps ownership of store and closes it after Close. A nil learner
// runs the commands in cfg.
func New(cfg Config, store *objstore.Store, log *slog.Logger, clock lazaret.Clock, learner lazaret.Learner) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("replicator: %w", err)
	}
	alloc, err := lazaret.NewAllocator(lazaret.AllocatorConfig{
		Node: cfg.NodeNumber, Format: cfg.IDFormat, Clock: clock, Lease: store,
	})
	if err != nil {
		return nil, fmt.Errorf("replicator: %w", err)
	}
	if learner == nil {
		learner = &CommandLearner{Spam: cfg.LearnSpam, Ham: cfg.LearnHam, Timeout: cfg.LearnTimeout}
	}
	ctx, cancel := context.WithCancel(context.Background())
	n := &Node{
		cfg: cfg, log: log, clock: clock, store: store, alloc: alloc,
		hlc: lazaret.NewHLC(clock, cfg.NodeNumber), learner: learner,
		started: clock.Now(), seed: maphash.MakeSeed(), stop: cancel,
	}
	store.StartBackground(ctx, cfg.Retention, cfg.RetentionInterval)
	if err := n.startCluster(ctx); err != nil {
		cancel()
		return nil, fmt.Errorf("replicator: %w", err)
	}
	return n, nil
}

// Close stops background work. It does not close the store, which waits for
// its background goroutines when it is closed.
func (n *Node) Close() error {
	n.stop()
	n.stopCluster()
	return nil
}

func (n *Node) lock(id lazaret.ID) func() {
	mu := &n.locks[maphash.String(n.seed, string(id))%uint64(len(n.locks))]
	mu.Lock()
	return mu.Unlock
}

// Put validates req and stores the message: whole on this node, or spread
// over the cluster.
func (n *Node) Put(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	const op = "put"
	if err := prepareRestore(&req); err != nil { // restore.go
		return nil, &lazaret.Error{Op: op, ID: req.ID, Err: err}
	}
	// The one check of what a writer supplies, for every frontend.
	if err := req.Validate(); err != nil {
		return nil, &lazaret.Error{Op: op, ID: req.ID, Err: err}
	}
	var m *lazaret.Metadata
	var err error
	if n.cl != nil {
		m, err = n.putCluster(ctx, req, body) // cluster_put.go
	} else {
		m, err = n.putLocal(ctx, req, body)
	}
	var le *lazaret.Error
	if err != nil && req.ID == "" && errors.As(err, &le) && le.Op == op {
		// The id allocated for a put that failed was never stored; naming
		// it would send the writer looking for it.
		le.ID = ""
	}
	return m, err
}

// putLocal stores a validated message whole on this node (no cluster).
func (n *Node) putLocal(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	const op = "put"
	id := req.ID
	var err error
	if id == "" {
		if id, err = n.alloc.Next(); err != nil {
			return nil, &lazaret.Error{Op: op, Err: err}
		}
	}

	w, err := n.store.NewShardWriter(id, objstore.ShardSpec{K: 1, M: 0, Index: 0, BodySize: -1})
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.Temporary(err)}
	}
	committed := false
	defer func() {
		if !committed {
			if err := w.Abort(); err != nil {
				n.log.Warn("put: abort failed", "id", id, "err", err)
			}
		}
	}()

	var hdr lazaret.HeaderCapture
	bodyMD5 := md5.New()
	limited := &io.LimitedReader{R: ctxReader{ctx, body}, N: n.cfg.MaxMessageSize + 1}
	sw := &writeErr{w: w}
	size, err := io.Copy(io.MultiWriter(sw, &hdr, bodyMD5), limited)
	switch {
	case sw.err != nil:
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("storing body: %w", lazaret.Temporary(sw.err))}
	case err != nil:
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("reading body: %w", err)}
	case size > n.cfg.MaxMessageSize:
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: over the %d-byte limit", lazaret.ErrTooLarge, n.cfg.MaxMessageSize)}
	case size == 0:
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: empty body", lazaret.ErrInvalidArgument)}
	}
	info, err := w.Finish()
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.Temporary(err)}
	}
	if err := checkRestoredBody(req, size, info.SHA256); err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	var sumMD5 [16]byte
	bodyMD5.Sum(sumMD5[:0])

	unlock := n.lock(id)
	defer func() { unlock() }() // the restore below unlocks early
	if old, err := n.store.Meta(id); err == nil {
		// A writer retrying after a lost acknowledgement gets the stored
		// message back; anything else reusing the id is refused.
		if old.SHA256 == info.SHA256 && old.State != lazaret.StateDeleted {
			if req.Restore != nil {
				unlock()
				unlock = func() {}
				return n.restoreOnto(ctx, req.Restore, req.Sender, req.Recipients, sumMD5)
			}
			return old, nil
		}
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: id already holds another message", lazaret.ErrConflict)}
	} else if !errors.Is(err, lazaret.ErrNotFound) {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}

	m := n.newMetadata(id, req, hdr.Header(), size, info.SHA256)
	m.MD5 = sumMD5
	if err := n.store.Commit(ctx, m, w); err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.Temporary(err)}
	}
	committed = true
	return m, nil
}

// newMetadata is the record of a message being taken in: what the writer
// said, header fields it left empty filled from the parsed header, and the
// "quarantine" event. Both put paths (whole copy and cluster) use it.
func (n *Node) newMetadata(id lazaret.ID, req lazaret.PutRequest, h lazaret.HeaderInfo, size int64, sum [32]byte) *lazaret.Metadata {
	if req.Restore != nil {
		m := lazaret.Restored(req.Restore, req.Sender, req.Recipients)
		m.Size, m.SHA256, m.Version = size, sum, n.hlc.Now()
		return m
	}
	now := n.clock.Now()
	received := req.Received
	if received.IsZero() {
		received = now
	}
	date := req.Date
	if date.IsZero() {
		date = h.Date
	}
	return &lazaret.Metadata{
		ID: id, Node: n.cfg.NodeNumber, Received: received.UTC(),
		Sender: req.Sender, Recipients: req.Recipients, ClientIP: req.ClientIP, Helo: req.Helo,
		From: or(req.From, h.From), To: or(req.To, h.To), Subject: or(req.Subject, h.Subject),
		Date: date, MessageID: or(req.MessageID, h.MessageID),
		Size: size, SHA256: sum, Verdict: req.Verdict,
		State:   lazaret.StateQuarantined,
		History: []lazaret.Event{{Time: now.UTC(), Actor: actor(req.Actor), Action: "quarantine", Node: n.cfg.NodeNumber}},
		Version: n.hlc.Now(),
	}
}

// Open returns a message and a reader of its body.
func (n *Node) Open(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, io.ReadCloser, error) {
	const op = "get"
	m, err := n.liveHere(ctx, op, id) // meta_peers.go
	if err != nil {
		return nil, nil, err
	}
	if n.cl != nil {
		return n.openClusterFresh(ctx, m) // cluster_get.go
	}
	info, body, err := n.store.OpenShard(id, 0)
	if err != nil {
		return nil, nil, err
	}
	if info.SHA256 != m.SHA256 || info.BodySize != m.Size {
		body.Close()
		return nil, nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: stored body does not match its metadata", lazaret.ErrCorrupt)}
	}
	return m, body, nil
}

// Stat returns a message's metadata.
func (n *Node) Stat(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, error) {
	return n.liveHere(ctx, "stat", id) // meta_peers.go
}

// live returns the metadata of a message that is neither deleted nor past
// retention; the purge may not have run yet, but expired is gone to readers.
func (n *Node) live(op string, id lazaret.ID) (*lazaret.Metadata, error) {
	m, err := n.store.Meta(id)
	if errors.Is(err, lazaret.ErrNotFound) {
		// The same answer, by the operation asked for, whether the id was
		// never stored, is deleted or has expired.
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.ErrNotFound}
	}
	if err != nil {
		return nil, err
	}
	if m.State == lazaret.StateDeleted || n.expired(m) {
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.ErrNotFound}
	}
	return m, nil
}

func (n *Node) expired(m *lazaret.Metadata) bool {
	return m.Received.Before(n.clock.Now().Add(-n.cfg.Retention))
}

// List lists messages, newest first, never showing expired ones.
func (n *Node) List(ctx context.Context, q lazaret.ListQuery) (*lazaret.ListPage, error) {
	if err := q.Normalize(); err != nil {
		return nil, &lazaret.Error{Op: "list", Err: err}
	}
	if horizon := n.clock.Now().Add(-n.cfg.Retention); q.Since.Before(horizon) {
		q.Since = horizon
	}
	return n.search(ctx, q)
}

// Delete leaves a tombstone and removes the body.
func (n *Node) Delete(ctx context.Context, id lazaret.ID, who string) (*lazaret.Metadata, error) {
	m, err := n.update(ctx, "delete", id, func(m *lazaret.Metadata) error {
		m.State = lazaret.StateDeleted
		m.History = append(m.History, n.event(who, "delete", ""))
		return nil
	})
	if err != nil {
		return nil, err
	}
	// The tombstone is durable first; should this fail or the process die,
	// the retention purge removes the shards of tombstoned messages later.
	if err := n.store.DeleteShards(id); err != nil {
		n.log.Warn("delete: removing shards failed; retention will retry", "id", id, "err", err)
	}
	n.removeShardsEverywhere(ctx, m) // push.go
	return m, nil
}

// Learn runs the configured learner on the message and records the result. A
// failing learner is recorded in the history and returned as an error.
func (n *Node) Learn(ctx context.Context, id lazaret.ID, kind lazaret.LearnKind, who string) (*lazaret.Metadata, error) {
	const op = "learn"
	if kind != lazaret.LearnSpam && kind != lazaret.LearnHam {
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: learn as spam or ham", lazaret.ErrInvalidArgument)}
	}
	_, body, err := n.Open(ctx, id)
	if err != nil {
		return nil, err
	}
	// Buffer the body so a checksum failure stops the learner from being fed
	// wrong bytes; messages are bounded by MaxMessageSize.
	var buf bytes.Buffer
	_, err = io.Copy(&buf, body)
	body.Close()
	if err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	out, lerr := n.learner.Learn(ctx, kind, &buf)
	m, err := n.update(ctx, op, id, func(m *lazaret.Metadata) error {
		if lerr != nil {
			m.History = append(m.History, n.event(who, "learn-failed", kind.String()+": "+lerr.Error()))
			return nil
		}
		m.LearnedAs = kind
		m.History = append(m.History, n.event(who, "learn", strings.TrimSpace(kind.String()+" "+out)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if lerr != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: learner failed: %v", lazaret.ErrUnavailable, lerr)}
	}
	return m, nil
}

// Release delivers a message to its envelope recipients, or to the given
// ones, through cfg.Deliverer, and records the request and its outcome in the
// history; see release.go. The request id set with lazaret.WithRequestID is
// delivered at most once.
func (n *Node) Release(ctx context.Context, id lazaret.ID, recipients []string, who string) (*lazaret.Metadata, error) {
	return n.release(ctx, id, recipients, who)
}

// versionAfter returns a new version for a change derived from cur: newer
// than cur's record and placement versions even when cur came from a node
// whose clock runs ahead and this node's clock has not seen it (a record
// stored before a restart, say). Without it a local change can lose the
// merge to the very record it replaced.
func (n *Node) versionAfter(cur *lazaret.Metadata) lazaret.Version {
	n.hlc.Observe(cur.Version)
	n.hlc.Observe(cur.Placement.Version)
	return n.hlc.Now()
}

// update applies fn to a live message's metadata under its lock, gives it a
// new version and stores it durably.
func (n *Node) update(ctx context.Context, op string, id lazaret.ID, fn func(*lazaret.Metadata) error) (*lazaret.Metadata, error) {
	if err := n.recordHere(ctx, op, id); err != nil { // meta_peers.go
		return nil, err
	}
	unlock := n.lock(id)
	defer unlock()
	m, err := n.live(op, id)
	if err != nil {
		return nil, err
	}
	v := n.versionAfter(m)
	if err := fn(m); err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: err}
	}
	m.Version = v
	if err := n.store.PutMeta(ctx, m); err != nil {
		return nil, &lazaret.Error{Op: op, ID: id, Err: lazaret.Temporary(err)}
	}
	n.changed(m) // push.go: to every member
	return m, nil
}

func (n *Node) event(who, action, detail string) lazaret.Event {
	return lazaret.Event{Time: n.clock.Now().UTC(), Actor: actor(who), Action: action, Detail: detail, Node: n.cfg.NodeNumber}
}

// AllocateID reserves an id.
func (n *Node) AllocateID(ctx context.Context) (lazaret.ID, error) {
	id, err := n.alloc.Next()
	if err != nil {
		return "", &lazaret.Error{Op: "allocate id", Err: err}
	}
	return id, nil
}

// Status describes this node.
func (n *Node) Status(ctx context.Context) (*lazaret.NodeStatus, error) {
	st, err := n.store.Stats()
	if err != nil {
		return nil, &lazaret.Error{Op: "status", Err: err}
	}
	return &lazaret.NodeStatus{
		Node: n.cfg.NodeNumber, Name: n.cfg.Name, Version: n.cfg.Version, Started: n.started,
		DataDir: n.store.Dir(), Messages: st.Messages, Bytes: st.BodyBytes, DiskBytes: st.DiskBytes,
		Retention: n.cfg.Retention, Index: n.indexStatus(),
		Lag: n.ReplicationLag(), // health is judged by the daemon (package daemon, health.go)
	}, nil
}

func actor(s string) string {
	if s == "" {
		return "api"
	}
	return s
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// writeErr remembers the error of its writer, so that a failed copy can
// tell a store that refused (disk full) from a writer that went away.
type writeErr struct {
	w   io.Writer
	err error
}

func (e *writeErr) Write(p []byte) (int, error) {
	n, err := e.w.Write(p)
	if err != nil {
		e.err = err
	}
	return n, err
}

// ctxReader stops a body copy as soon as the request is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

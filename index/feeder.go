package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// Change is one row to write: the current metadata of message ID, or, when
// Meta is nil, the removal of its row (the message expired).
type Change struct {
	ID   lazaret.ID
	Meta *lazaret.Metadata
}

// Sink is where a Feeder writes: the PostgreSQL index (package postgres).
type Sink interface {
	// Register records that node number node, named hostname, feeds the
	// index, preparing the database first if needed. It reports whether
	// the index knew the node before; if not, the feeder resynchronises.
	Register(ctx context.Context, node int, hostname string) (known bool, err error)
	// Apply writes changes in one transaction. Upserts replace a row only
	// with a newer version. Applying the same changes twice is harmless.
	Apply(ctx context.Context, changes []Change) error
	// Prune deletes rows of messages received before before (retention).
	Prune(ctx context.Context, before time.Time) error
}

// Outbox is the part of the store a Feeder reads (objstore.Store).
type Outbox interface {
	OutboxRead(max int) ([]objstore.OutboxRecord, error)
	OutboxAck(recs []objstore.OutboxRecord) error
	OutboxStats() (objstore.OutboxStats, error)
	SetOutboxOverflow() error
	ClearOutboxOverflow() error
	Metas(ids []lazaret.ID) ([]*lazaret.Metadata, error)
	MetaPage(ctx context.Context, after lazaret.ID, max int) ([]*lazaret.Metadata, error)
}

// FeederConfig configures a Feeder. Start from DefaultFeederConfig.
type FeederConfig struct {
	// Node and Hostname identify this node in the index (the hostname
	// column of the messages it took in).
	Node     int
	Hostname string
	// BatchSize is the most changes written in one transaction.
	BatchSize int
	// FlushInterval is how long the feeder waits when the outbox is empty.
	FlushInterval time.Duration
	// RetryMax caps the back-off between attempts while the database is
	// unreachable (it starts at FlushInterval and doubles).
	RetryMax time.Duration
	// Retention, if positive, prunes rows older than it after a
	// resynchronisation (expiries dropped from a full outbox).
	Retention time.Duration
}

// DefaultFeederConfig returns batches of 1,000, a 1 s flush interval and
// retries at most every 10 s.
func DefaultFeederConfig() FeederConfig {
	return FeederConfig{Node: 1, Hostname: "lazaret1", BatchSize: 1000, FlushInterval: time.Second, RetryMax: 10 * time.Second}
}

// Validate reports the first invalid field.
func (c *FeederConfig) Validate() error {
	switch {
	case c.Hostname == "":
		return errors.New("index: feeder hostname is empty")
	case c.BatchSize < 1 || c.BatchSize > 100000:
		return fmt.Errorf("index: batch size %d outside [1, 100000]", c.BatchSize)
	case c.FlushInterval <= 0:
		return fmt.Errorf("index: flush interval %v must be positive", c.FlushInterval)
	case c.RetryMax < c.FlushInterval:
		return fmt.Errorf("index: retry max %v below flush interval %v", c.RetryMax, c.FlushInterval)
	case c.Retention < 0:
		return fmt.Errorf("index: retention %v is negative", c.Retention)
	}
	return nil
}

// Feeder drains a store's outbox into a Sink, batch by batch, retrying with
// back-off while the sink fails. It never blocks writers of the store.
type Feeder struct {
	cfg   FeederConfig
	ob    Outbox
	sink  Sink
	log   *slog.Logger
	clock lazaret.Clock
	kick  chan struct{}

	mu         sync.Mutex
	registered bool
	reachable  bool
	lastErr    string
	lastFlush  time.Time
	applied    int64
	resyncing  bool

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewFeeder returns a Feeder of ob into sink; call Start to run it. If reg
// is not nil the feeder's metrics are registered with it:
// lazaret_index_backlog_records, lazaret_index_backlog_age_seconds,
// lazaret_index_up and lazaret_index_applied_changes_total.
func NewFeeder(cfg FeederConfig, ob Outbox, sink Sink, log *slog.Logger, clock lazaret.Clock, reg prometheus.Registerer) (*Feeder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = lazaret.SystemClock{}
	}
	f := &Feeder{cfg: cfg, ob: ob, sink: sink, log: log.With("component", "index"), clock: clock, kick: make(chan struct{}, 1)}
	if reg != nil {
		stat := func(fn func(lazaret.IndexStatus) float64) func() float64 {
			return func() float64 { return fn(f.Status()) }
		}
		cs := []prometheus.Collector{
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lazaret_index_backlog_records", Help: "Metadata changes waiting in the outbox for the PostgreSQL index."},
				stat(func(s lazaret.IndexStatus) float64 { return float64(s.Backlog) })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lazaret_index_backlog_age_seconds", Help: "Age of the oldest change waiting for the PostgreSQL index."},
				stat(func(s lazaret.IndexStatus) float64 { return s.BacklogAge.Seconds() })),
			prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "lazaret_index_up", Help: "1 if the last attempt to write to the PostgreSQL index succeeded."},
				stat(func(s lazaret.IndexStatus) float64 {
					if s.Reachable {
						return 1
					}
					return 0
				})),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "lazaret_index_applied_changes_total", Help: "Metadata changes written to the PostgreSQL index."},
				stat(func(s lazaret.IndexStatus) float64 { return float64(s.Applied) })),
		}
		for _, c := range cs {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("index: registering metrics: %w", err)
			}
		}
	}
	return f, nil
}

// Start runs the feeder in the background until ctx ends or Close.
func (f *Feeder) Start(ctx context.Context) {
	ctx, f.cancel = context.WithCancel(ctx)
	f.done = make(chan struct{})
	go f.run(ctx)
}

// Close stops the feeder and waits for it; a batch in flight is abandoned
// (its records stay in the outbox).
func (f *Feeder) Close() error {
	f.stopOnce.Do(func() {
		if f.cancel != nil {
			f.cancel()
			<-f.done
		}
	})
	return nil
}

// Kick asks a waiting feeder to look at the outbox now.
func (f *Feeder) Kick() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Reachable reports whether the last attempt to write to the sink succeeded.
func (f *Feeder) Reachable() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reachable
}

// Status returns the backlog and the state of the feed.
func (f *Feeder) Status() lazaret.IndexStatus {
	// The outbox first: Resync sets resyncing before it clears the
	// overflow flag, so one of the two shows a resynchronisation.
	ob, oberr := f.ob.OutboxStats()
	f.mu.Lock()
	st := lazaret.IndexStatus{Backend: "postgres", Reachable: f.reachable, LastError: f.lastErr, LastFlush: f.lastFlush, Applied: f.applied}
	resyncing := f.resyncing
	f.mu.Unlock()
	if oberr != nil {
		st.LastError = oberr.Error()
		return st
	}
	st.Backlog, st.Resync = ob.Records, ob.Overflow || resyncing
	if !ob.Oldest.IsZero() {
		st.BacklogAge = max(0, f.clock.Now().Sub(ob.Oldest))
	}
	return st
}

func (f *Feeder) run(ctx context.Context) {
	defer close(f.done)
	wait := time.Duration(0)
	failures := 0
	for {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-f.kick:
			case <-t.C:
			}
			t.Stop()
		}
		more, err := f.Step(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			failures++
			// Exponential back-off with jitter, so that nodes do not retry
			// in lock-step after an outage.
			wait = min(f.cfg.RetryMax, f.cfg.FlushInterval<<min(failures-1, 10))
			wait = wait/2 + rand.N(wait/2+1)
			if failures == 1 || failures%30 == 0 {
				f.log.Warn("postgres index unreachable; changes wait in the outbox", "err", err, "retry_in", wait)
			}
		case more:
			failures, wait = 0, 0
		default:
			if failures > 0 {
				f.log.Info("postgres index reachable again")
			}
			failures, wait = 0, f.cfg.FlushInterval
		}
	}
}

// Step writes one batch: the oldest outbox records or, when the outbox is
// empty and overflowed, a full resynchronisation. It reports whether more
// work is waiting. Tests and `lazaret index rebuild` call it directly.
func (f *Feeder) Step(ctx context.Context) (more bool, err error) {
	defer func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			f.reachable, f.lastErr = false, err.Error()
		}
	}()
	f.mu.Lock()
	registered := f.registered
	f.mu.Unlock()
	if !registered {
		known, err := f.sink.Register(ctx, f.cfg.Node, f.cfg.Hostname)
		if err != nil {
			return false, err
		}
		if !known {
			f.log.Info("postgres index does not know this node yet; resynchronising")
			if err := f.ob.SetOutboxOverflow(); err != nil {
				return false, err
			}
		}
		f.mu.Lock()
		f.registered = true
		f.mu.Unlock()
	}
	recs, err := f.ob.OutboxRead(f.cfg.BatchSize)
	if err != nil {
		return false, err
	}
	if len(recs) > 0 {
		if err := f.applyRecords(ctx, recs); err != nil {
			return false, err
		}
		return len(recs) == f.cfg.BatchSize, nil
	}
	st, err := f.ob.OutboxStats()
	if err != nil {
		return false, err
	}
	if st.Overflow {
		return false, f.Resync(ctx)
	}
	f.succeeded(0)
	return false, nil
}

// applyRecords writes the current state of the messages recs name and
// deletes the records.
func (f *Feeder) applyRecords(ctx context.Context, recs []objstore.OutboxRecord) error {
	// The last record of a message decides: an expiry removes the row, an
	// upsert writes the current metadata (never older than the record).
	last := make(map[lazaret.ID]objstore.OutboxKind, len(recs))
	var order []lazaret.ID
	for _, r := range recs {
		if _, ok := last[r.ID]; !ok {
			order = append(order, r.ID)
		}
		last[r.ID] = r.Kind
	}
	var upserts []lazaret.ID
	changes := make([]Change, 0, len(order))
	for _, id := range order {
		if last[id] == objstore.OutboxExpire {
			changes = append(changes, Change{ID: id})
		} else {
			upserts = append(upserts, id)
		}
	}
	metas, err := f.ob.Metas(upserts)
	if err != nil {
		return err
	}
	for i, m := range metas {
		// No metadata: the message expired since; its expiry record, later
		// in the outbox, removes the row.
		if m != nil {
			changes = append(changes, Change{ID: upserts[i], Meta: m})
		}
	}
	if err := f.sink.Apply(ctx, changes); err != nil {
		return err
	}
	if err := f.ob.OutboxAck(recs); err != nil {
		return err
	}
	f.succeeded(int64(len(changes)))
	return nil
}

// Resync writes every metadata record of the store, then prunes rows past
// retention. It clears the overflow flag first, so that changes dropped
// while it runs are caught by the next resynchronisation; if it fails the
// flag is set again.
func (f *Feeder) Resync(ctx context.Context) (err error) {
	f.setResyncing(true)
	defer f.setResyncing(false)
	if err := f.ob.ClearOutboxOverflow(); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			if serr := f.ob.SetOutboxOverflow(); serr != nil {
				f.log.Error("cannot set the outbox overflow flag again; run 'lazaret index rebuild'", "err", serr)
			}
		}
	}()
	start := f.clock.Now()
	n := 0
	after := lazaret.ID("")
	for {
		page, err := f.ob.MetaPage(ctx, after, f.cfg.BatchSize)
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		changes := make([]Change, len(page))
		for i, m := range page {
			changes[i] = Change{ID: m.ID, Meta: m}
		}
		if err := f.sink.Apply(ctx, changes); err != nil {
			return err
		}
		f.succeeded(int64(len(changes)))
		n += len(page)
		after = page[len(page)-1].ID
	}
	if f.cfg.Retention > 0 {
		if err := f.sink.Prune(ctx, f.clock.Now().Add(-f.cfg.Retention)); err != nil {
			return err
		}
	}
	f.log.Info("postgres index resynchronised", "messages", n, "took", f.clock.Now().Sub(start).Round(time.Millisecond))
	return nil
}

func (f *Feeder) setResyncing(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resyncing = on
}

func (f *Feeder) succeeded(n int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reachable, f.lastErr = true, ""
	f.lastFlush = f.clock.Now()
	f.applied += n
}

// Drain runs Step until the outbox is empty and no resynchronisation is
// pending, or ctx ends, or a step fails.
func (f *Feeder) Drain(ctx context.Context) error {
	for {
		more, err := f.Step(ctx)
		if err != nil {
			return err
		}
		if !more {
			st, err := f.ob.OutboxStats()
			if err != nil {
				return err
			}
			if st.Records == 0 && !st.Overflow {
				return nil
			}
		}
	}
}

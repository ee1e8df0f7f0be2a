package daemon

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/replicator/member"
)

// newRegistry returns the node's own Prometheus registry with the Go
// runtime and process collectors. serve creates one and passes it on; there
// is no global registry.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// requestMetrics count requests where they enter the node: the API socket
// ("api") and the SMTP filter ("smtp").
type requestMetrics struct {
	requests    *prometheus.CounterVec   // lazaret_requests_total{source,op,result}
	putBytes    *prometheus.CounterVec   // lazaret_put_bytes_total{source}
	putDuration *prometheus.HistogramVec // lazaret_put_duration_seconds{source}
	getBytes    prometheus.Counter       // lazaret_get_bytes_total
}

// putBuckets span a small message fsync'd on one disk (~1 ms) to a large
// one written to a slow cluster (tens of seconds).
var putBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}

func newRequestMetrics(reg prometheus.Registerer) *requestMetrics {
	m := &requestMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazaret_requests_total",
			Help: "Requests by where they came in (api, smtp), operation (put, get, stat, list, delete, learn, release, allocate_id, status) and result (ok, invalid, not_found, too_large, conflict, corrupt, unavailable, canceled, error).",
		}, []string{"source", "op", "result"}),
		putBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "lazaret_put_bytes_total",
			Help: "Body bytes of messages accepted (durably acknowledged).",
		}, []string{"source"}),
		putDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "lazaret_put_duration_seconds",
			Help:    "Time from the start of an accepted put, body transfer included, to its durable acknowledgement.",
			Buckets: putBuckets,
		}, []string{"source"}),
		getBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "lazaret_get_bytes_total",
			Help: "Body bytes read by gets.",
		}),
	}
	reg.MustRegister(m.requests, m.putBytes, m.putDuration, m.getBytes)
	// Export the common series at zero so rates work from the first scrape.
	for _, src := range []string{"api", "smtp"} {
		m.requests.WithLabelValues(src, "put", "ok")
		m.putBytes.WithLabelValues(src)
		m.putDuration.WithLabelValues(src)
	}
	m.requests.WithLabelValues("api", "get", "ok")
	return m
}

// resultOf classifies err for the result label.
func resultOf(err error) string {
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, lazaret.ErrInvalidArgument), errors.Is(err, lazaret.ErrInvalidID):
		return "invalid"
	case errors.Is(err, lazaret.ErrNotFound):
		return "not_found"
	case errors.Is(err, lazaret.ErrTooLarge):
		return "too_large"
	case errors.Is(err, lazaret.ErrConflict):
		return "conflict"
	case errors.Is(err, lazaret.ErrCorrupt):
		return "corrupt"
	case errors.Is(err, lazaret.ErrUnavailable), errors.Is(err, lazaret.ErrIDSpaceExhausted):
		return "unavailable"
	}
	return "error"
}

// instrumented counts the requests made to a Quarantine from one source:
// the metrics decorator, and nothing else.
type instrumented struct {
	lazaret.Quarantine
	source string
	m      *requestMetrics
}

func (q *instrumented) count(op string, err error) {
	q.m.requests.WithLabelValues(q.source, op, resultOf(err)).Inc()
}

// Put counts the put, its bytes and its latency.
func (q *instrumented) Put(ctx context.Context, req lazaret.PutRequest, body io.Reader) (*lazaret.Metadata, error) {
	start := time.Now()
	m, err := q.Quarantine.Put(ctx, req, body)
	q.count("put", err)
	if err == nil {
		q.m.putDuration.WithLabelValues(q.source).Observe(time.Since(start).Seconds())
		q.m.putBytes.WithLabelValues(q.source).Add(float64(m.Size))
	}
	return m, err
}

// Open counts the get and the body bytes read.
func (q *instrumented) Open(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, io.ReadCloser, error) {
	m, body, err := q.Quarantine.Open(ctx, id)
	q.count("get", err)
	if err != nil {
		return m, body, err
	}
	return m, &countingReader{ReadCloser: body, c: q.m.getBytes}, nil
}

// Stat counts the request.
func (q *instrumented) Stat(ctx context.Context, id lazaret.ID) (*lazaret.Metadata, error) {
	m, err := q.Quarantine.Stat(ctx, id)
	q.count("stat", err)
	return m, err
}

// List counts the request.
func (q *instrumented) List(ctx context.Context, lq lazaret.ListQuery) (*lazaret.ListPage, error) {
	p, err := q.Quarantine.List(ctx, lq)
	q.count("list", err)
	return p, err
}

// Delete counts the request.
func (q *instrumented) Delete(ctx context.Context, id lazaret.ID, actor string) (*lazaret.Metadata, error) {
	m, err := q.Quarantine.Delete(ctx, id, actor)
	q.count("delete", err)
	return m, err
}

// Learn counts the request.
func (q *instrumented) Learn(ctx context.Context, id lazaret.ID, kind lazaret.LearnKind, actor string) (*lazaret.Metadata, error) {
	m, err := q.Quarantine.Learn(ctx, id, kind, actor)
	q.count("learn", err)
	return m, err
}

// Release counts the request.
func (q *instrumented) Release(ctx context.Context, id lazaret.ID, rcpts []string, actor string) (*lazaret.Metadata, error) {
	m, err := q.Quarantine.Release(ctx, id, rcpts, actor)
	q.count("release", err)
	return m, err
}

// AllocateID counts the request.
func (q *instrumented) AllocateID(ctx context.Context) (lazaret.ID, error) {
	id, err := q.Quarantine.AllocateID(ctx)
	q.count("allocate_id", err)
	return id, err
}

// Status counts the request.
func (q *instrumented) Status(ctx context.Context) (*lazaret.NodeStatus, error) {
	st, err := q.Quarantine.Status(ctx)
	q.count("status", err)
	return st, err
}

// countingReader adds the bytes read to a counter.
type countingReader struct {
	io.ReadCloser
	c prometheus.Counter
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.ReadCloser.Read(p)
	if n > 0 {
		r.c.Add(float64(n))
	}
	return n, err
}

// storeSource is what the monitor reads from the object store.
type storeSource interface {
	Stats() (objstore.Stats, error)
	// LoadIDLease reads one record: it fails when the store is closed or
	// its database is broken.
	LoadIDLease() (int64, error)
	Dir() string
	// Space is the free-space guard's view (full since when, reserve).
	Space() objstore.SpaceStatus
}

// replicaSource is what the monitor reads from the replicator.
type replicaSource interface {
	UnderProtected() (count, bytes int64, oldest time.Time)
	CorruptShards() int64
	ShortMetadataPuts() int64
	PushBacklog() (queued int, dropped int64)
	RepairQueue() int
	Repaired() (shards, bytes, failures int64)
	PeerSyncs() []replicator.PeerSync
}

// sources are the figures a node's metrics and health are computed from,
// read at scrape (or check) time. A nil func means the part is absent.
type sources struct {
	store   storeSource
	node    replicaSource
	members func() []member.Member      // nil on a node without a cluster
	index   func() *lazaret.IndexStatus // nil without a PostgreSQL index
	self    int                         // this node's number
	started time.Time                   // when the node started
}

// snapshot is one reading of the sources.
type snapshot struct {
	at       time.Time
	storeErr error
	stats    objstore.Stats
	freeDisk int64 // -1 if unknown
	diskSize int64 // of the data directory's file system; -1 if unknown
	space    objstore.SpaceStatus

	under, underBytes int64
	underOldest       time.Time
	corrupt           int64
	metaShort         int64
	pushQueued        int
	pushDropped       int64
	repairQueue       int
	repaired          [3]int64 // shards, bytes, failures
	peerSyncs         []replicator.PeerSync
	started           time.Time // when the node started (reconciliation grace)

	clustered bool
	members   []member.Member
	index     *lazaret.IndexStatus
}

func (s *sources) read(now time.Time) snapshot {
	sn := snapshot{at: now, freeDisk: -1, diskSize: -1}
	var err error
	if sn.stats, err = s.store.Stats(); err != nil {
		sn.storeErr = err
	} else if _, err = s.store.LoadIDLease(); err != nil {
		sn.storeErr = err
	}
	sn.freeDisk, sn.diskSize = diskSpace(s.store.Dir())
	sn.space = s.store.Space()
	sn.under, sn.underBytes, sn.underOldest = s.node.UnderProtected()
	sn.corrupt = s.node.CorruptShards()
	sn.metaShort = s.node.ShortMetadataPuts()
	sn.pushQueued, sn.pushDropped = s.node.PushBacklog()
	sn.repairQueue = s.node.RepairQueue()
	sn.repaired[0], sn.repaired[1], sn.repaired[2] = s.node.Repaired()
	sn.peerSyncs = s.node.PeerSyncs()
	sn.started = s.started
	if s.members != nil {
		sn.clustered, sn.members = true, s.members()
	}
	if s.index != nil {
		sn.index = s.index()
	}
	return sn
}

// nodeCollector exports the figures the node's packages keep, read when
// Prometheus scrapes.
type nodeCollector struct {
	src   func() (*sources, bool)
	clock lazaret.Clock
	info  *prometheus.Desc

	storeUp, messages, bodyBytes, shards, shardBytes, diskBytes, freeDisk *prometheus.Desc
	diskSize, diskReserve, diskFullRefused                                *prometheus.Desc
	under, underBytes, underAge, corrupt, pushQueued, pushDropped         *prometheus.Desc
	members, memberUp                                                     *prometheus.Desc
	repairQueue, repairedShards, repairedBytes, repairFailures            *prometheus.Desc
	syncLast, syncDiffs, syncBytes, syncRounds                            *prometheus.Desc
	problems                                                              *prometheus.Desc
	health                                                                func(snapshot) []string
}

func newNodeCollector(src func() (*sources, bool), clock lazaret.Clock, constLabels prometheus.Labels, health func(snapshot) []string) *nodeCollector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &nodeCollector{
		src: src, clock: clock, health: health,
		info:            prometheus.NewDesc("lazaret_node_info", "Always 1; labels name this node's number, name and software version.", nil, constLabels),
		storeUp:         d("lazaret_store_up", "1 if the local store answers reads, else 0."),
		messages:        d("lazaret_store_messages", "Live (not deleted) messages whose metadata this node holds."),
		bodyBytes:       d("lazaret_store_message_bytes", "Body bytes of the live messages whose metadata this node holds."),
		shards:          d("lazaret_store_shards", "Shards stored on this node."),
		shardBytes:      d("lazaret_store_shard_bytes", "Bytes of the shards stored on this node."),
		diskBytes:       d("lazaret_store_disk_bytes", "Disk space used by the store's files."),
		freeDisk:        d("lazaret_store_disk_free_bytes", "Free space, for an unprivileged user, on the file system of the data directory."),
		diskSize:        d("lazaret_store_disk_size_bytes", "Size of the file system of the data directory (for alerts on the share that is free)."),
		diskReserve:     d("lazaret_store_disk_reserve_bytes", "Free space the store keeps: writes that would leave less are refused as disk full."),
		diskFullRefused: d("lazaret_store_disk_full_refusals_total", "Writes refused because the disk was full, since the store opened."),
		under:           d("lazaret_under_protected_messages", "Messages taken in by this node that are stored with fewer shards than their code wants."),
		underBytes:      d("lazaret_under_protected_bytes", "Body bytes of the under-protected messages."),
		underAge:        d("lazaret_under_protected_oldest_age_seconds", "Age of the oldest under-protected message; 0 if there is none."),
		corrupt:         d("lazaret_corrupt_shards_total", "Shards that failed their checksum when this node read them, since it started."),
		pushQueued:      d("lazaret_metadata_push_queue_length", "Metadata changes waiting to be pushed to the other members."),
		pushDropped:     d("lazaret_metadata_push_dropped_total", "Metadata pushes dropped because the queue was full (left to anti-entropy)."),
		members:         d("lazaret_cluster_members", "Cluster members by state, as this node's gossip sees them.", "state"),
		memberUp:        d("lazaret_cluster_member_up", "1 if the member is alive, as this node's gossip sees it, else 0.", "peer"),
		repairQueue:     d("lazaret_repair_queue_length", "Messages waiting for a repair check, being checked, or waiting for a retry."),
		repairedShards:  d("lazaret_repaired_shards_total", "Shards repair rebuilt and stored on this node since it started."),
		repairedBytes:   d("lazaret_repaired_bytes_total", "Bytes of the shards repair rebuilt since start."),
		repairFailures:  d("lazaret_repair_failures_total", "Repair checks that failed (each is retried) since start."),
		syncLast:        d("lazaret_reconcile_last_success_timestamp_seconds", "When the last successful metadata reconciliation with the peer ended (Unix time).", "peer"),
		syncDiffs:       d("lazaret_reconcile_last_differences", "Records that differed in the last successful reconciliation with the peer.", "peer"),
		syncBytes:       d("lazaret_reconcile_last_bytes", "Bytes the last successful reconciliation with the peer exchanged, records included.", "peer"),
		syncRounds:      d("lazaret_reconcile_sessions_total", "Successful reconciliation sessions with the peer since start.", "peer"),
		problems:        d("lazaret_health_problems", "Problems GET /health reports; 0 means healthy (200)."),
	}
}

// Describe sends every descriptor.
func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.info, c.storeUp, c.messages, c.bodyBytes, c.shards, c.shardBytes, c.diskBytes, c.freeDisk, c.diskSize, c.diskReserve, c.diskFullRefused,
		c.under, c.underBytes, c.underAge, c.corrupt, c.pushQueued, c.pushDropped, c.members, c.memberUp, c.problems,
		c.repairQueue, c.repairedShards, c.repairedBytes, c.repairFailures, c.syncLast, c.syncDiffs, c.syncBytes, c.syncRounds} {
		ch <- d
	}
}

// Collect reads the sources and sends the metrics.
func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(c.info, 1)
	src, ok := c.src()
	if !ok {
		return // still starting
	}
	sn := src.read(c.clock.Now())
	up := 1.0
	if sn.storeErr != nil {
		up = 0
	}
	gauge(c.storeUp, up)
	gauge(c.messages, float64(sn.stats.Messages))
	gauge(c.bodyBytes, float64(sn.stats.BodyBytes))
	gauge(c.shards, float64(sn.stats.Shards))
	gauge(c.shardBytes, float64(sn.stats.ShardBytes))
	gauge(c.diskBytes, float64(sn.stats.DiskBytes))
	if sn.freeDisk >= 0 {
		gauge(c.freeDisk, float64(sn.freeDisk))
		gauge(c.diskSize, float64(sn.diskSize))
	}
	gauge(c.diskReserve, float64(sn.space.Reserve))
	counter(c.diskFullRefused, float64(sn.space.Refused))
	gauge(c.under, float64(sn.under))
	gauge(c.underBytes, float64(sn.underBytes))
	age := 0.0
	if !sn.underOldest.IsZero() {
		age = max(0, sn.at.Sub(sn.underOldest).Seconds())
	}
	gauge(c.underAge, age)
	counter(c.corrupt, float64(sn.corrupt))
	gauge(c.pushQueued, float64(sn.pushQueued))
	counter(c.pushDropped, float64(sn.pushDropped))
	if sn.clustered {
		byState := map[string]int{"alive": 0, "suspect": 0, "failed": 0, "left": 0}
		for _, m := range sn.members {
			byState[m.State.String()]++
			v := 0.0
			if m.State == member.Alive {
				v = 1
			}
			if m.Number != src.self {
				gauge(c.memberUp, v, strconv.Itoa(m.Number))
			}
		}
		for st, n := range byState {
			gauge(c.members, float64(n), st)
		}
		gauge(c.repairQueue, float64(sn.repairQueue))
		counter(c.repairedShards, float64(sn.repaired[0]))
		counter(c.repairedBytes, float64(sn.repaired[1]))
		counter(c.repairFailures, float64(sn.repaired[2]))
		for _, p := range sn.peerSyncs {
			peer := strconv.Itoa(p.Node)
			counter(c.syncRounds, float64(p.Rounds), peer)
			if p.LastSuccess.IsZero() {
				continue
			}
			gauge(c.syncLast, float64(p.LastSuccess.UnixNano())/1e9, peer)
			gauge(c.syncDiffs, float64(p.Differences), peer)
			gauge(c.syncBytes, float64(p.Bytes), peer)
		}
	}
	gauge(c.problems, float64(len(c.health(sn))))
}

// lazySources hands the collector its sources once serve has them all.
type lazySources struct{ p atomic.Pointer[sources] }

func (l *lazySources) get() (*sources, bool) {
	s := l.p.Load()
	return s, s != nil
}

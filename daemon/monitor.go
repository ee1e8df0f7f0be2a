package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
)

// monitor is a node's monitoring: its Prometheus registry, the request
// counters, the health check and the HTTP endpoint serving /metrics,
// /health and /ready.
type monitor struct {
	cfg      Config
	log      *slog.Logger
	clock    lazaret.Clock
	reg      *prometheus.Registry
	req      *requestMetrics
	src      lazySources
	stopping atomic.Bool

	srv  *http.Server
	done chan struct{}
}

// newMonitor creates the node's registry (with the Go and process
// collectors) and its metrics. serve calls it first, so that the parts it
// starts can register their own metrics with m.reg.
func newMonitor(cfg Config, log *slog.Logger, clock lazaret.Clock) *monitor {
	m := &monitor{cfg: cfg, log: log.With("component", "http"), clock: clock, reg: newRegistry()}
	m.req = newRequestMetrics(m.reg)
	info := prometheus.Labels{"node": strconv.Itoa(cfg.Node.NodeNumber), "name": cfg.Node.Name, "version": cfg.Node.Version}
	m.reg.MustRegister(newNodeCollector(m.src.get, clock, info, func(sn snapshot) []string { return m.problems(sn) }))
	return m
}

// attach gives the monitor the node's parts to read at scrape and check
// time; cl and idx may be nil (no cluster, no PostgreSQL index).
func (m *monitor) attach(store *objstore.Store, node *replicator.Node, cl *clusterSide, idx *indexService) {
	s := &sources{store: store, node: node, self: m.cfg.Node.NodeNumber, started: m.clock.Now()}
	if cl != nil {
		s.members = cl.rt.Membership.Members
	}
	if idx != nil && idx.feeder != nil {
		s.index = func() *lazaret.IndexStatus { st := idx.feeder.Status(); return &st }
	}
	m.src.p.Store(s)
}

// wrap returns q counting its requests as coming from source ("api",
// "smtp", a frontend's name).
func (m *monitor) wrap(q lazaret.Quarantine, source string) lazaret.Quarantine {
	return &instrumented{Quarantine: q, source: source, m: m.req}
}

// problems applies the thresholds to sn.
func (m *monitor) problems(sn snapshot) []string {
	p := m.cfg.Health.problems(sn)
	if m.stopping.Load() {
		p = append([]string{"shutting down"}, p...)
	}
	return p
}

// check reads the sources and returns the problems.
func (m *monitor) check() []string {
	src, ok := m.src.get()
	if !ok {
		return []string{"starting"}
	}
	return m.problems(src.read(m.clock.Now()))
}

// statusHealth is the Health list of the node's status: the problems,
// then the notes (health.go).
func (m *monitor) statusHealth() []string {
	src, ok := m.src.get()
	if !ok {
		return []string{"starting"}
	}
	sn := src.read(m.clock.Now())
	return append(m.problems(sn), m.cfg.Health.notes(sn)...)
}

// healthBody is the JSON answer of /health and /ready.
type healthBody struct {
	Status   string   `json:"status"` // ok, degraded; ready, unavailable
	Node     int      `json:"node"`
	Name     string   `json:"name"`
	Version  string   `json:"version"`
	Problems []string `json:"problems,omitempty"`
}

// serveHealth answers GET /health: 200 {"status":"ok"} when no threshold
// is crossed, else 503 {"status":"degraded","problems":[...]}.
func (m *monitor) serveHealth(w http.ResponseWriter, r *http.Request) {
	p := m.check()
	m.writeHealth(w, r, p, "ok", "degraded")
}

// serveReady answers GET /ready: 200 while this node can take mail (its
// store answers and it is not shutting down), whatever the rest of the
// cluster's state; 503 naming the problem otherwise.
func (m *monitor) serveReady(w http.ResponseWriter, r *http.Request) {
	var p []string
	src, ok := m.src.get()
	switch {
	case m.stopping.Load():
		p = append(p, "shutting down")
	case !ok:
		p = append(p, "starting")
	default:
		if sn := src.read(m.clock.Now()); sn.storeErr != nil {
			p = append(p, fmt.Sprintf("store unavailable: %v", sn.storeErr))
		}
	}
	m.writeHealth(w, r, p, "ready", "unavailable")
}

func (m *monitor) writeHealth(w http.ResponseWriter, r *http.Request, problems []string, good, bad string) {
	body := healthBody{Status: good, Node: m.cfg.Node.NodeNumber, Name: m.cfg.Node.Name, Version: m.cfg.Node.Version, Problems: problems}
	code := http.StatusOK
	if len(problems) > 0 {
		body.Status, code = bad, http.StatusServiceUnavailable
	}
	b, _ := json.Marshal(body)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
}

// handler routes the endpoint's paths: its own (GET and HEAD only) and
// the configured Handlers, each over q(its name).
func (m *monitor) handler(q func(source string) lazaret.Quarantine) http.Handler {
	mux := http.NewServeMux()
	for _, h := range m.cfg.Handlers {
		mux.Handle(h.Pattern, h.New(q(h.Name)))
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(m.log.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
		Registry:      m.reg,
	}))
	if m.cfg.PProf {
		handlePProf(mux)
	}
	mux.HandleFunc("GET /health", m.serveHealth)
	mux.HandleFunc("GET /ready", m.serveReady)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "lazaret: /metrics (Prometheus), /health (200 ok, 503 degraded), /ready (200 if this node takes mail)")
	})
	return mux
}

// start listens on cfg.HTTPListen and serves the endpoint; it does
// nothing when HTTPListen is empty. A listen failure is an error; a later
// serving failure is logged (mail flow does not depend on monitoring).
func (m *monitor) start(stdout io.Writer, q func(source string) lazaret.Quarantine) error {
	if m.cfg.HTTPListen == "" {
		return nil
	}
	l, err := net.Listen("tcp", m.cfg.HTTPListen)
	if err != nil {
		return fmt.Errorf("http.listen: %w", err)
	}
	m.srv = &http.Server{
		Handler:           m.handler(q),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("http endpoint stopped", "err", err)
		}
	}()
	m.log.Info("http endpoint listening", "addr", l.Addr().String())
	fmt.Fprintf(stdout, "lazaret: metrics and health on http://%s/metrics, /health\n", l.Addr())
	return nil
}

// shuttingDown makes /health and /ready answer 503, so that a load
// balancer stops sending work before the node stops.
func (m *monitor) shuttingDown() { m.stopping.Store(true) }

// stop closes the endpoint, letting answers in flight finish for up to 5 s.
func (m *monitor) stop() {
	if m == nil || m.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := m.srv.Shutdown(ctx); err != nil {
		m.srv.Close()
	}
	<-m.done
}

package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/proto/rpc"
	"github.com/lazaret/lazaret/replicator"
)

// Env is what a daemon is handed rather than finding for itself.
type Env struct {
	// Log receives the node's structured log; nil discards it.
	Log *slog.Logger
	// Clock is the node's clock; nil is the system clock.
	Clock lazaret.Clock
	// Stdout receives one line per part started ("serving on ..."), for an
	// operator at a terminal and for tests that wait for it; nil: none.
	Stdout io.Writer
}

// Daemon is one open node: its store, data path, cluster side, index,
// monitoring and frontends. Open starts everything; Run serves until its
// context ends and then shuts down in order.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	clock  lazaret.Clock
	stdout io.Writer

	idx   *indexService
	mon   *monitor
	store *objstore.Store
	cl    *clusterSide
	node  *replicator.Node
	api   *rpc.Server
	smtp  *smtpService
	front []runningFrontend

	failed  chan error // the first serving failure of any part
	closers []func()   // run in reverse order by Close
}

// runningFrontend is a started Frontend.
type runningFrontend struct {
	name string
	stop func(context.Context) error
}

// shutdownTimeout bounds how long Run waits for requests in flight.
const shutdownTimeout = 30 * time.Second

// Open opens the store, starts the node, joins the cluster, starts the
// index feeder, listens on the API socket and starts the SMTP filter, the
// monitoring endpoint and the frontends. On error, whatever was started is
// stopped again. ctx bounds the start only.
func Open(ctx context.Context, cfg Config, env Env) (d *Daemon, err error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d = &Daemon{cfg: cfg, log: env.Log, clock: env.Clock, stdout: env.Stdout, failed: make(chan error, 1)}
	if d.log == nil {
		d.log = slog.New(slog.DiscardHandler)
	}
	if d.clock == nil {
		d.clock = lazaret.SystemClock{}
	}
	if d.stdout == nil {
		d.stdout = io.Discard
	}
	defer func() {
		if err != nil {
			d.Close()
			d = nil
		}
	}()
	if err := d.openNode(ctx); err != nil {
		return d, err
	}
	if err := d.startFrontends(ctx); err != nil {
		return d, err
	}
	c := d.cfg
	d.log.Info("serving", "node", c.Node.NodeNumber, "name", c.Node.Name, "socket", c.API.Socket, "data", c.Store.Dir, "version", c.Node.Version)
	fmt.Fprintf(d.stdout, "lazaret: node %d (%s) serving on %s, data in %s\n", c.Node.NodeNumber, c.Node.Name, c.API.Socket, c.Store.Dir)
	return d, nil
}

// openNode opens the parts under the frontends, each closed by Close in
// reverse order: index pool, store, cluster side, node, peer port, feeder.
func (d *Daemon) openNode(ctx context.Context) error {
	c := d.cfg
	if err := ensureDir(d.log, "data directory (store.data, --data)", c.Store.Dir, 0o750); err != nil {
		return err
	}
	if err := ensureDir(d.log, "socket directory (api.socket, --socket)", filepath.Dir(c.API.Socket), 0o755); err != nil {
		return err
	}
	idx, err := openIndex(ctx, c.Index, d.log) // nil without an index
	if err != nil {
		return err
	}
	d.idx = idx
	d.onClose(idx.close)
	d.mon = newMonitor(c, d.log, d.clock) // registry, /metrics, /health
	idx.useRegistry(d.mon.reg)
	store, err := objstore.Open(idx.storeConfig(c.Store), d.log, d.clock)
	if err != nil {
		return err
	}
	d.store = store
	d.onClose(func() { store.Close() })
	d.mon.reg.MustRegister(newWriteCollector(store))
	cl, err := openCluster(c.Cluster, d.log, d.clock) // nil unless clustered
	if err != nil {
		return err
	}
	d.cl = cl
	d.onClose(cl.close)
	node, err := replicator.New(cl.replicatorConfig(c.Node), store, d.log.With("component", "replicator"), d.clock, nil)
	if err != nil {
		return err
	}
	d.node = node
	d.onClose(func() { node.Close() })
	if err := cl.start(node); err != nil { // peer port and gossip; refuses a taken node number
		return err
	}
	d.onClose(cl.close) // leave the cluster before the node and store close
	if err := idx.start(store, node, d.clock); err != nil {
		return err
	}
	d.onClose(idx.close) // stops the feeder before the store closes
	d.mon.attach(store, node, cl, idx)
	return nil
}

// startFrontends listens on the API socket and starts the SMTP filter,
// the extra frontends and the monitoring endpoint.
func (d *Daemon) startFrontends(ctx context.Context) error {
	c := d.cfg
	l, err := rpc.ListenUnix(c.API.Socket, c.API.Mode, c.API.Group)
	if err != nil {
		return err
	}
	d.api = rpc.NewServer(d.quarantine("api"), d.log.With("component", "api"))
	go d.serving("api", func() error { return d.api.Serve(l) })
	d.onClose(func() { d.api.Stop(context.Background()) })
	smtpSvc, err := startSMTP(c, d.mon.wrap(d.node, "smtp"), d.log, d.stdout)
	if err != nil {
		return err
	}
	d.smtp = smtpSvc
	if ch := smtpSvc.failed(); ch != nil {
		go d.forward("smtp", ch)
	}
	d.onClose(func() { smtpSvc.stop(context.Background(), d.log) })
	for _, f := range c.Frontends {
		stop, failed, err := f.Start(ctx, FrontendEnv{Quarantine: d.quarantine(f.Name), Log: d.log.With("component", f.Name), Clock: d.clock, Stdout: d.stdout})
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		d.front = append(d.front, runningFrontend{name: f.Name, stop: stop})
		if failed != nil {
			go d.forward(f.Name, failed)
		}
	}
	d.onClose(func() { d.stopFrontends(context.Background()) })
	if err := d.mon.start(d.stdout, d.quarantine); err != nil {
		return err
	}
	d.onClose(d.mon.stop)
	return nil
}

// quarantine is the node as a frontend called source sees it: with the
// cluster's members and the health problems in Status, its requests counted.
func (d *Daemon) quarantine(source string) lazaret.Quarantine {
	return d.mon.wrap(&statusQuarantine{Quarantine: d.node, cl: d.cl, health: d.mon.statusHealth}, source)
}

// Node returns the node's data path (for tests and tools in the process).
func (d *Daemon) Node() *replicator.Node { return d.node }

// Run serves until ctx ends or a part fails, then shuts down: /health
// and /ready answer 503, the frontends stop taking requests and finish
// those in flight (up to 30 s), then the node and the store close. It
// returns nil after a clean shutdown.
func (d *Daemon) Run(ctx context.Context) error {
	defer d.Close()
	select {
	case <-ctx.Done():
		d.log.Info("shutting down")
	case err := <-d.failed:
		return err
	}
	d.mon.shuttingDown() // /health and /ready answer 503 from now on
	stopCtx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	d.stopFrontends(stopCtx)
	d.smtp.stop(stopCtx, d.log)
	d.api.Stop(stopCtx)
	os.Remove(d.cfg.API.Socket)
	return nil
}

// Close stops everything Open started, in reverse order, without waiting
// for requests in flight; it may be called again.
func (d *Daemon) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
	d.closers = nil
}

func (d *Daemon) onClose(f func()) { d.closers = append(d.closers, f) }

// stopFrontends stops the extra frontends, last started first.
func (d *Daemon) stopFrontends(ctx context.Context) {
	for i := len(d.front) - 1; i >= 0; i-- {
		if err := d.front[i].stop(ctx); err != nil {
			d.log.Warn("frontend: stop", "frontend", d.front[i].name, "err", err)
		}
	}
	d.front = nil
}

// serving runs serve and reports its error as the part's failure.
func (d *Daemon) serving(part string, serve func() error) {
	if err := serve(); err != nil {
		d.fail(fmt.Errorf("%s: %w", part, err))
	}
}

// forward reports the first error from ch as the part's failure.
func (d *Daemon) forward(part string, ch <-chan error) {
	if err, ok := <-ch; ok && err != nil {
		d.fail(fmt.Errorf("%s: %w", part, err))
	}
}

func (d *Daemon) fail(err error) {
	select {
	case d.failed <- err:
	default: // one failure is enough to stop
	}
}

// ensureDir creates dir when it is missing, and says so: a node started
// without flags uses the packaged defaults (/var/lib/lazaret,
// /run/lazaret), as a service would, and the log names what it created and
// which setting moves it.
func ensureDir(log *slog.Logger, what, dir string, mode os.FileMode) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	if err := os.MkdirAll(dir, mode); err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	log.Info("created "+what, "path", dir)
	return nil
}

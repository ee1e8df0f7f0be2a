// Package daemon opens and runs one Lazaret node from a Config: the local
// store (objstore), the data path (replicator.Node), the cluster side
// (replicator/cluster: gossip and the peer port), the PostgreSQL index
// feeder (index), the local gRPC API (proto/rpc), the SMTP filter
// (smtpfilter) and the monitoring endpoint (/metrics, /health, /ready).
//
// Open starts the parts in order and Run serves until its context ends,
// then stops taking requests, lets those in flight finish and closes the
// parts in reverse order. Every frontend sees the node through two
// decorators of lazaret.Quarantine: instrumented (metrics.go) counts its
// requests, and statusQuarantine (status.go) completes Status with the
// cluster's members and the health problems.
//
// Health is judged here only (health.go): the packages report figures, a
// snapshot reads them once, and the thresholds of HealthConfig turn them
// into problems (GET /health answers 503) or notes (listed by `lazaret
// status`), one line per condition.
//
// Other frontends (S3, FUSE, a web console) plug in through
// Config.Frontends (their own listeners, started after the node and
// stopped before it) and Config.Handlers (routes on the monitoring
// endpoint). cmd/lazaret only parses flags and its TOML file into a
// Config.
package daemon

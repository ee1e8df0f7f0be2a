package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/daemon"
	"github.com/lazaret/lazaret/objstore"
	"github.com/lazaret/lazaret/replicator"
	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/smtpfilter"
)

// Config is the lazaret.toml file. Every key is optional; DefaultConfig gives
// the values used when a key or the whole file is absent.
type Config struct {
	Node      NodeConfig      `toml:"node"`
	Store     StoreConfig     `toml:"store"`
	API       APIConfig       `toml:"api"`
	Retention RetentionConfig `toml:"retention"`
	Learn     LearnConfig     `toml:"learn"`
	Log       LogConfig       `toml:"log"`
	SMTP      SMTPConfig      `toml:"smtp"`    // config_smtp.go
	Release   ReleaseConfig   `toml:"release"` // config_smtp.go
	Index     IndexConfig     `toml:"index"`   // index.go
	Cluster   ClusterConfig   `toml:"cluster"` // config_cluster.go
	HTTP      HTTPConfig      `toml:"http"`    // config_http.go
	Health    HealthConfig    `toml:"health"`  // config_http.go
	S3        S3Config        `toml:"s3"`      // config_s3.go
	FUSE      FUSEConfig      `toml:"fuse"`    // config_fuse.go
}

// NodeConfig is the [node] table.
type NodeConfig struct {
	Number   int    `toml:"number"`    // node number, unique in the cluster, encoded in ids
	Name     string `toml:"name"`      // node name; default: the host name
	IDFormat string `toml:"id_format"` // "exim16" (default) or "exim23"
}

// StoreConfig is the [store] table.
type StoreConfig struct {
	Data           string `toml:"data"`             // data directory
	MaxMessageSize Size   `toml:"max_message_size"` // e.g. "64MiB"
	// MinFree is the space kept free on the data file system: writes that
	// would leave less are refused with a temporary error. 0 derives it
	// from the store's memory sizes (about 100 MiB).
	MinFree Size `toml:"min_free"`
}

// APIConfig is the [api] table.
type APIConfig struct {
	Socket      string `toml:"socket"`       // unix socket path
	SocketMode  string `toml:"socket_mode"`  // octal, e.g. "0660"
	SocketGroup string `toml:"socket_group"` // group owning the socket, e.g. "mtagroup"
}

// RetentionConfig is the [retention] table.
type RetentionConfig struct {
	Days     int      `toml:"days"`     // keep messages this many days
	Interval Duration `toml:"interval"` // how often to purge, e.g. "10m"
}

// LearnConfig is the [learn] table.
type LearnConfig struct {
	Spam    []string `toml:"spam"`    // e.g. ["sa-learn", "--spam"]
	Ham     []string `toml:"ham"`     // e.g. ["sa-learn", "--ham"]
	Timeout Duration `toml:"timeout"` // e.g. "60s"
}

// LogConfig is the [log] table.
type LogConfig struct {
	Level  string `toml:"level"`  // debug, info, warn, error
	Format string `toml:"format"` // text or json
}

// DefaultConfig returns the embedded defaults: one node, number 1.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	if host == "" {
		host = "lazaret1"
	}
	return Config{
		Node:      NodeConfig{Number: 1, Name: host, IDFormat: "exim16"},
		Store:     StoreConfig{Data: "/var/lib/lazaret", MaxMessageSize: 64 << 20},
		API:       APIConfig{Socket: DefaultSocket, SocketMode: "0660"},
		Retention: RetentionConfig{Days: 30, Interval: Duration(10 * time.Minute)},
		Learn:     LearnConfig{Timeout: Duration(60 * time.Second)},
		Log:       LogConfig{Level: "info", Format: "text"},
		SMTP:      defaultSMTPConfig(),
		Release:   defaultReleaseConfig(),
		Index:     defaultIndexConfig(),
		Cluster:   defaultClusterConfig(),
		HTTP:      defaultHTTPConfig(),
		Health:    defaultHealthConfig(),
		S3:        defaultS3Config(),
		FUSE:      defaultFUSEConfig(),
	}
}

// LoadConfig reads a TOML file over the defaults. Unknown keys and bad values
// are refused, naming the key.
func LoadConfig(path string) (Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return DefaultConfig(), fmt.Errorf("config: %w", err)
	}
	return ParseConfig(data, path)
}

// ParseConfig is LoadConfig of a file's contents; name is used in errors.
func ParseConfig(data []byte, name string) (Config, error) {
	cfg := DefaultConfig()
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return cfg, fmt.Errorf("config %s: %s", name, describeTOMLError(err))
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("config %s: %w", name, err)
	}
	return cfg, nil
}

// loadConfigOr loads the config file at path, or returns the defaults when
// path is empty.
func loadConfigOr(path string) (Config, error) {
	if path == "" {
		return DefaultConfig(), nil
	}
	return LoadConfig(path)
}

func describeTOMLError(err error) string {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) && len(strict.Errors) > 0 {
		var keys []string
		for _, e := range strict.Errors {
			keys = append(keys, strings.Join(e.Key(), "."))
		}
		return "unknown key " + strings.Join(keys, ", ")
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		if k := de.Key(); len(k) > 0 {
			return fmt.Sprintf("key %s (line %d): %s", strings.Join(k, "."), row, de.Error())
		}
		return fmt.Sprintf("line %d column %d: %s", row, col, de.Error())
	}
	return err.Error()
}

// Validate checks values that TOML types alone cannot, naming the key.
func (c *Config) Validate() error {
	if _, err := c.idFormat(); err != nil {
		return err
	}
	max := lazaret.MaxNode16
	if c.Node.IDFormat == "exim23" {
		max = lazaret.MaxNode23
	}
	switch {
	case c.Node.Number < 0 || c.Node.Number > max:
		return fmt.Errorf("node.number = %d: must be 0..%d for id format %s", c.Node.Number, max, c.Node.IDFormat)
	case c.Node.Name == "":
		return fmt.Errorf("node.name: must not be empty")
	case c.Store.Data == "":
		return fmt.Errorf("store.data: must not be empty")
	case c.Store.MaxMessageSize <= 0:
		return fmt.Errorf("store.max_message_size: must be positive")
	case c.API.Socket == "":
		return fmt.Errorf("api.socket: must not be empty")
	case c.Retention.Days <= 0:
		return fmt.Errorf("retention.days = %d: must be at least 1", c.Retention.Days)
	case c.Retention.Interval <= 0:
		return fmt.Errorf("retention.interval: must be positive")
	case c.Learn.Timeout <= 0:
		return fmt.Errorf("learn.timeout: must be positive")
	}
	if _, err := c.socketMode(); err != nil {
		return err
	}
	if err := c.validateSMTP(); err != nil {
		return err
	}
	if err := c.Index.validate(); err != nil {
		return err
	}
	if err := c.Cluster.validate(); err != nil {
		return err
	}
	if err := c.HTTP.validate(); err != nil {
		return err
	}
	if err := c.Health.validate(); err != nil {
		return err
	}
	if err := c.validateS3(); err != nil {
		return err
	}
	if err := c.FUSE.validate(c); err != nil {
		return err
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log.level = %q: want debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		return fmt.Errorf("log.format = %q: want text or json", c.Log.Format)
	}
	return nil
}

func (c *Config) idFormat() (lazaret.IDFormat, error) {
	switch c.Node.IDFormat {
	case "exim16", "":
		return lazaret.IDFormatExim16, nil
	case "exim23":
		return lazaret.IDFormatExim23, nil
	}
	return 0, fmt.Errorf("node.id_format = %q: want exim16 or exim23", c.Node.IDFormat)
}

func (c *Config) socketMode() (os.FileMode, error) {
	v, err := strconv.ParseUint(c.API.SocketMode, 8, 32)
	if err != nil || v > 0o777 {
		return 0, fmt.Errorf("api.socket_mode = %q: want an octal mode such as \"0660\"", c.API.SocketMode)
	}
	return os.FileMode(v), nil
}

// replicatorConfig derives the node's runtime configuration.
func (c *Config) replicatorConfig() replicator.Config {
	rc := replicator.DefaultConfig()
	rc.NodeNumber = c.Node.Number
	rc.Name = c.Node.Name
	rc.IDFormat, _ = c.idFormat()
	rc.MaxMessageSize = int64(c.Store.MaxMessageSize)
	rc.Retention = time.Duration(c.Retention.Days) * 24 * time.Hour
	rc.RetentionInterval = time.Duration(c.Retention.Interval)
	rc.LearnSpam, rc.LearnHam = c.Learn.Spam, c.Learn.Ham
	rc.LearnTimeout = time.Duration(c.Learn.Timeout)
	rc.Version = version
	rc.Cluster.Policy, rc.Cluster.WriteQuorum, rc.Cluster.Strict = c.Cluster.Policy, c.Cluster.WriteQuorum, c.Cluster.Strict
	if c.Cluster.AntiEntropyInterval > 0 {
		rc.Cluster.AntiEntropy.Interval = time.Duration(c.Cluster.AntiEntropyInterval)
	}
	if r := c.Cluster.RepairRate; r != nil {
		rc.Cluster.AntiEntropy.RepairRate = int64(*r)
		if *r == 0 {
			rc.Cluster.AntiEntropy.RepairRate = -1 // unlimited
		}
	}
	if c.Cluster.StragglerGrace > 0 {
		rc.Cluster.StragglerGrace = time.Duration(c.Cluster.StragglerGrace)
	}
	if c.Cluster.SpoolDir != "" {
		rc.Cluster.SpoolDir = c.Cluster.SpoolDir
	}
	if relay, err := smtpfilter.NewRelay(c.relayConfig()); err == nil { // Validate reports a bad one
		rc.Deliverer, rc.RelayName = relay, c.Release.Relay
	}
	return rc
}

// daemonConfig translates the file into the daemon's configuration.
func (c *Config) daemonConfig() daemon.Config {
	mode, _ := c.socketMode() // Validate reports a bad one
	dc := daemon.Config{
		Node:  c.replicatorConfig(),
		Store: objstore.DefaultConfig(c.Store.Data),

		API:        daemon.APIConfig{Socket: c.API.Socket, Mode: mode, Group: c.API.SocketGroup},
		HTTPListen: c.HTTP.Listen,
		PProf:      c.HTTP.PProf,
		Health:     c.Health.daemonHealth(),
	}
	dc.Store.MinFree = int64(c.Store.MinFree)
	if c.SMTP.Enabled {
		fc := c.smtpfilterConfig()
		dc.SMTP = &fc
	}
	if c.Index.Postgres != "" {
		dc.Index = &daemon.IndexConfig{Postgres: c.Index.pgConfig(), Feeder: c.feederConfig(), OutboxMaxRecords: c.Index.OutboxMaxRecords}
	}
	if c.S3.Listen != "" {
		dc.Frontends = append(dc.Frontends, c.s3Frontend()) // serve_s3.go
	}
	if c.Cluster.Enabled {
		cl := c.Cluster
		dc.Cluster = &cluster.RuntimeConfig{
			Dir:  cluster.Dir(cl.Dir),
			Name: c.Node.Name, Number: c.Node.Number,
			PeerListen: cl.PeerListen, PeerAdvertise: cl.advertised(cl.PeerListen),
			GossipListen: cl.GossipListen, GossipAdvertise: cl.advertised(cl.GossipListen),
			Join: cl.Join, Zone: cl.Zone, Version: version, Policy: cl.Policy,
			SnapshotPath: filepath.Join(c.Store.Data, "serf.snapshot"),
			Local:        cl.GossipProfile == "local",
		}
	}
	if f := c.fuseFrontend(); f != nil { // serve_fuse.go
		dc.Frontends = append(dc.Frontends, *f)
	}
	return dc
}

// Duration is a time.Duration written as a Go duration string ("90s", "10m").
type Duration time.Duration

// UnmarshalText parses a duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	if err != nil {
		return fmt.Errorf("bad duration %q (want e.g. \"30s\", \"10m\")", b)
	}
	*d = Duration(v)
	return nil
}

// MarshalText formats the duration.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }

// Size is a byte count written as a number or with a unit ("64MiB", "10MB").
type Size int64

// UnmarshalText parses a size.
func (s *Size) UnmarshalText(b []byte) error {
	v, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(v)
	return nil
}

// ParseSize parses "123", "64KiB", "10MB", "1GiB" (case-insensitive units).
func ParseSize(str string) (int64, error) {
	t := strings.TrimSpace(str)
	units := []struct {
		suffix string
		mult   int64
	}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"kb", 1e3}, {"mb", 1e6}, {"gb", 1e9}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}, {"b", 1}}
	mult := int64(1)
	lower := strings.ToLower(t)
	for _, u := range units {
		if strings.HasSuffix(lower, u.suffix) {
			mult, t = u.mult, strings.TrimSpace(t[:len(t)-len(u.suffix)])
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q (want e.g. \"64MiB\")", str)
	}
	return n * mult, nil
}

package replicator

import (
	"fmt"
	"time"

	"github.com/lazaret/lazaret"
)

// Config configures a Node. Start from DefaultConfig.
type Config struct {
	// NodeNumber is this node's number, encoded in every id it allocates.
	// Unique within a cluster; 0..3843 with the 16-character id format.
	NodeNumber int
	// Name is the node's name, shown in status and recorded as the hostname
	// of messages it takes in.
	Name string
	// IDFormat selects 16-character (default) or 23-character Exim ids.
	IDFormat lazaret.IDFormat
	// MaxMessageSize is the largest body accepted, in bytes.
	MaxMessageSize int64
	// Retention is how long a message is kept after it was received.
	Retention time.Duration
	// RetentionInterval is how often expired messages are purged and the
	// value log garbage-collected.
	RetentionInterval time.Duration
	// LearnSpam and LearnHam are the commands run by Learn, with the message
	// on standard input, e.g. ["sa-learn", "--spam"] or ["rspamc", "learn_spam"].
	// Empty means Learn only records the verdict.
	LearnSpam, LearnHam []string
	// LearnTimeout bounds one run of a learn command.
	LearnTimeout time.Duration
	// Version is the software version reported by Status.
	Version string
	// Deliverer hands released messages to the next hop. Nil: Release
	// fails with ErrUnavailable.
	Deliverer lazaret.Deliverer
	// RelayName names the next hop in the history ("127.0.0.1:25").
	RelayName string
	// Cluster makes the node one of a cluster (erasure-coded bodies,
	// metadata on every node); its zero value (no Members) is a single node.
	// See cluster_config.go.
	Cluster ClusterConfig
}

// DefaultConfig returns the configuration of a single node on defaults.
func DefaultConfig() Config {
	return Config{
		NodeNumber:        1,
		Name:              "lazaret1",
		IDFormat:          lazaret.IDFormatExim16,
		MaxMessageSize:    64 << 20,
		Retention:         30 * 24 * time.Hour,
		RetentionInterval: 10 * time.Minute,
		LearnTimeout:      60 * time.Second,
		Version:           "dev",
		Cluster:           DefaultClusterConfig(),
	}
}

// Validate reports the first invalid field, by name.
func (c *Config) Validate() error {
	switch {
	case c.NodeNumber < 0:
		return fmt.Errorf("node number %d: must not be negative", c.NodeNumber)
	case c.Name == "":
		return fmt.Errorf("node name: must not be empty")
	case c.MaxMessageSize <= 0:
		return fmt.Errorf("max message size %d: must be positive", c.MaxMessageSize)
	case c.Retention <= 0:
		return fmt.Errorf("retention %v: must be positive", c.Retention)
	case c.RetentionInterval <= 0:
		return fmt.Errorf("retention interval %v: must be positive", c.RetentionInterval)
	case c.LearnTimeout <= 0:
		return fmt.Errorf("learn timeout %v: must be positive", c.LearnTimeout)
	}
	if err := c.Cluster.Validate(); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	return nil
}

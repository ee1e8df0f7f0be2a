package fuse

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/lazaret/lazaret"
)

// Place is where in a day directory a message shows.
type Place string

// Places of the MailScanner tree.
const (
	PlaceSpam    Place = "spam"    // <day>/spam/<id>
	PlaceNonSpam Place = "nonspam" // <day>/nonspam/<id>
	PlaceMCP     Place = "mcp"     // <day>/mcp/<id>
	PlaceDir     Place = "dir"     // <day>/<id>/message (StoreInfections form)
)

// ParsePlace parses a Place name ("spam", "nonspam", "mcp", "dir").
func ParsePlace(s string) (Place, error) {
	switch p := Place(s); p {
	case PlaceSpam, PlaceNonSpam, PlaceMCP, PlaceDir:
		return p, nil
	}
	return "", fmt.Errorf("unknown place %q (want spam, nonspam, mcp or dir)", s)
}

// Config is the view's configuration; DefaultConfig gives the defaults.
type Config struct {
	// Location is the time zone of day directories. Every node of a
	// cluster must use the same one, or a message shows under different
	// days on different nodes. Default: the process's local zone, as
	// MailScanner uses.
	Location *time.Location
	// Places says where each verdict shows. Default: spam and highspam in
	// spam/, other in nonspam/, policy in mcp/, virus as <id>/message.
	Places map[lazaret.VerdictKind]Place
	// Verdicts is the verdict given to a file written into each place.
	// Default: spam/ spam, nonspam/ other, mcp/ policy, <id>/message virus.
	Verdicts map[Place]lazaret.VerdictKind

	// UID, GID and Mode are every file's owner, group and permission bits
	// (MailScanner's Quarantine User, Group and Permissions). Directories
	// get the same bits plus x wherever r or w is set (0660 gives 0770).
	// Default: the mounting process's uid and gid, mode 0660.
	UID, GID uint32
	Mode     uint32

	// EntryTimeout is how long the kernel caches a name (and a listing is
	// reused by this view: ListTTL). AttrTimeout is how long it caches
	// attributes. Bodies are immutable and stay in the page cache.
	// Defaults: 1 s, 1 s, 1 s. A change made through another node shows
	// here within about EntryTimeout + ListTTL after it reached this
	// node's store (README "FUSE view" has the measured bound).
	EntryTimeout time.Duration
	AttrTimeout  time.Duration
	ListTTL      time.Duration

	// Days is how many days back the top directory lists; 0 means the
	// node's retention (from Status).
	Days int
	// MaxMessageSize bounds a file written into the tree; a write past it
	// fails with EFBIG. Default 64 MiB, as the store's default.
	MaxMessageSize int64
	// MemoryBuffer is how much of a body (read or written) is held in
	// memory before the rest goes to an unlinked file in SpoolDir.
	MemoryBuffer int64
	SpoolDir     string // "" = os.TempDir()

	// OpTimeout bounds each call to the store, so that a dead node gives
	// EIO promptly instead of a hang. Default 10 s.
	OpTimeout time.Duration
	// Actor is the history's actor for deletes and puts. Default "fuse".
	Actor string

	// FsName is shown in /proc/mounts. Default "lazaret".
	FsName string
	// AllowOther lets users other than the mounting one use the mount
	// (the web server reading for MailWatch). Needs root, or
	// user_allow_other in /etc/fuse.conf. Default: true when root.
	AllowOther bool

	Clock lazaret.Clock
	Log   *slog.Logger
}

// DefaultConfig returns the defaults described on Config.
func DefaultConfig() Config {
	return Config{
		Location: time.Local,
		Places: map[lazaret.VerdictKind]Place{
			lazaret.VerdictSpam: PlaceSpam, lazaret.VerdictHighSpam: PlaceSpam,
			lazaret.VerdictOther: PlaceNonSpam, lazaret.VerdictPolicy: PlaceMCP,
			lazaret.VerdictVirus: PlaceDir,
		},
		Verdicts: map[Place]lazaret.VerdictKind{
			PlaceSpam: lazaret.VerdictSpam, PlaceNonSpam: lazaret.VerdictOther,
			PlaceMCP: lazaret.VerdictPolicy, PlaceDir: lazaret.VerdictVirus,
		},
		UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), Mode: 0o660,
		EntryTimeout: time.Second, AttrTimeout: time.Second, ListTTL: time.Second,
		MaxMessageSize: 64 << 20, MemoryBuffer: 8 << 20,
		OpTimeout: 10 * time.Second, Actor: "fuse", FsName: "lazaret",
		AllowOther: os.Geteuid() == 0,
		Clock:      lazaret.SystemClock{},
		Log:        slog.New(slog.DiscardHandler),
	}
}

// Validate checks the configuration, naming the field.
func (c *Config) Validate() error {
	switch {
	case c.Location == nil:
		return fmt.Errorf("fuse: time zone not set")
	case c.Mode&^0o7777 != 0:
		return fmt.Errorf("fuse: mode %o has bits outside 07777", c.Mode)
	case c.MaxMessageSize <= 0:
		return fmt.Errorf("fuse: max message size must be positive")
	case c.OpTimeout <= 0:
		return fmt.Errorf("fuse: op timeout must be positive")
	case c.Clock == nil || c.Log == nil:
		return fmt.Errorf("fuse: clock and logger must be set")
	}
	for k := lazaret.VerdictOther; k <= lazaret.VerdictPolicy; k++ {
		if _, ok := c.Places[k]; !ok {
			return fmt.Errorf("fuse: no place for verdict %s", k)
		}
	}
	for p, k := range c.Verdicts {
		if _, err := ParsePlace(string(p)); err != nil {
			return fmt.Errorf("fuse: verdicts: %w", err)
		}
		if k < lazaret.VerdictOther || k > lazaret.VerdictPolicy {
			return fmt.Errorf("fuse: verdicts: unknown verdict %v for %s", k, p)
		}
	}
	return nil
}

// dirMode is Mode with x added wherever r or w is set, as MailScanner
// makes its directories.
func (c *Config) dirMode() uint32 {
	m := c.Mode & 0o777
	for _, shift := range []uint{6, 3, 0} {
		if m>>shift&0o6 != 0 {
			m |= 1 << shift
		}
	}
	return m
}

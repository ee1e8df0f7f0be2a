package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/fuse"
)

// FUSEConfig is the [fuse] table: the MailScanner-tree view of the
// quarantine (package fuse), mounted by `lazaret mount` or by serve.
type FUSEConfig struct {
	Mountpoint   string            `toml:"mountpoint"`    // serve mounts the view here; "" = not at all
	TimeZone     string            `toml:"time_zone"`     // zone of day dirs: "Local" (default), "UTC", "Europe/Berlin"
	User         string            `toml:"user"`          // files' owner, name or number (MailScanner's Quarantine User); default the running user
	Group        string            `toml:"group"`         // files' group (Quarantine Group); default the running group
	Permissions  string            `toml:"permissions"`   // files' mode (Quarantine Permissions), default "0660"
	EntryTimeout Duration          `toml:"entry_timeout"` // kernel name cache, default "1s"
	AttrTimeout  Duration          `toml:"attr_timeout"`  // kernel attribute cache, default "1s"
	ListTTL      Duration          `toml:"list_ttl"`      // how long a day's listing is reused, default "1s"
	AllowOther   *bool             `toml:"allow_other"`   // other users may use the mount; default true when root
	Places       map[string]string `toml:"places"`        // verdict -> spam, nonspam, mcp or dir (<id>/message)
}

func defaultFUSEConfig() FUSEConfig {
	d := fuse.DefaultConfig()
	return FUSEConfig{
		TimeZone: "Local", Permissions: "0660",
		EntryTimeout: Duration(d.EntryTimeout), AttrTimeout: Duration(d.AttrTimeout), ListTTL: Duration(d.ListTTL),
	}
}

// fuseConfig derives the view's configuration, naming the key at fault.
func (c *Config) fuseConfig(log *slog.Logger) (fuse.Config, error) {
	f := c.FUSE
	fc := fuse.DefaultConfig()
	fc.Log = log.With("component", "fuse")
	fc.MaxMessageSize = int64(c.Store.MaxMessageSize)
	loc, err := time.LoadLocation(f.TimeZone)
	if err != nil {
		return fc, fmt.Errorf("fuse.time_zone = %q: %v", f.TimeZone, err)
	}
	fc.Location = loc
	if f.User != "" {
		if fc.UID, err = lookupID(f.User, func(n string) (string, error) {
			u, err := user.Lookup(n)
			if err != nil {
				return "", err
			}
			return u.Uid, nil
		}); err != nil {
			return fc, fmt.Errorf("fuse.user = %q: %v", f.User, err)
		}
	}
	if f.Group != "" {
		if fc.GID, err = lookupID(f.Group, func(n string) (string, error) {
			g, err := user.LookupGroup(n)
			if err != nil {
				return "", err
			}
			return g.Gid, nil
		}); err != nil {
			return fc, fmt.Errorf("fuse.group = %q: %v", f.Group, err)
		}
	}
	mode, err := strconv.ParseUint(f.Permissions, 8, 32)
	if err != nil || mode > 0o7777 {
		return fc, fmt.Errorf("fuse.permissions = %q: want an octal mode such as \"0660\"", f.Permissions)
	}
	fc.Mode = uint32(mode)
	for key, d := range map[string]Duration{"entry_timeout": f.EntryTimeout, "attr_timeout": f.AttrTimeout, "list_ttl": f.ListTTL} {
		if d < 0 {
			return fc, fmt.Errorf("fuse.%s: must not be negative", key)
		}
	}
	fc.EntryTimeout, fc.AttrTimeout, fc.ListTTL = time.Duration(f.EntryTimeout), time.Duration(f.AttrTimeout), time.Duration(f.ListTTL)
	if f.AllowOther != nil {
		fc.AllowOther = *f.AllowOther
	}
	for verdict, place := range f.Places {
		k, err := lazaret.ParseVerdictKind(verdict)
		if err != nil {
			return fc, fmt.Errorf("fuse.places: %v", err)
		}
		p, err := fuse.ParsePlace(place)
		if err != nil {
			return fc, fmt.Errorf("fuse.places.%s: %v", verdict, err)
		}
		fc.Places[k] = p
	}
	// A file written into a place gets the first verdict shown there.
	fc.Verdicts = map[fuse.Place]lazaret.VerdictKind{}
	for _, k := range []lazaret.VerdictKind{lazaret.VerdictSpam, lazaret.VerdictOther, lazaret.VerdictPolicy, lazaret.VerdictVirus, lazaret.VerdictHighSpam} {
		if _, ok := fc.Verdicts[fc.Places[k]]; !ok {
			fc.Verdicts[fc.Places[k]] = k
		}
	}
	return fc, fc.Validate()
}

// lookupID takes a number as it is and resolves a name.
func lookupID(s string, resolve func(string) (string, error)) (uint32, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	id, err := resolve(s)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(id, 10, 32)
	return uint32(n), err
}

// validate checks the [fuse] table.
func (f FUSEConfig) validate(c *Config) error {
	_, err := c.fuseConfig(slog.New(slog.DiscardHandler))
	if err == nil && f.Mountpoint != "" {
		if fi, serr := os.Stat(f.Mountpoint); serr == nil && !fi.IsDir() {
			return fmt.Errorf("fuse.mountpoint = %q: not a directory", f.Mountpoint)
		}
	}
	return err
}

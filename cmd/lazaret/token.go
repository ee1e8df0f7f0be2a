package main

import (
	"context"
	"fmt"
	"time"

	"github.com/lazaret/lazaret/replicator/cluster"
)

// token is `lazaret token rotate`: issue a new join token. The new token's
// hash goes into this node's cluster directory; the running node announces
// it to every member (serf user event) within a few seconds, and every Join
// checks the newest token any alive member holds, so the old token stops
// working at once.
func (m *Main) token(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "rotate" {
		return usagef("want 'lazaret token rotate --config FILE'")
	}
	fs := m.newFlags("token rotate", "")
	configPath := fs.String("config", "/etc/lazaret/lazaret.toml", "the node's configuration file")
	if _, err := parse(fs, args[1:]); err != nil {
		return err
	}
	cfg, err := LoadConfig(*configPath)
	if err != nil {
		return err
	}
	if !cfg.Cluster.Enabled {
		return fmt.Errorf("%s: [cluster] is not enabled: no join token to rotate", *configPath)
	}
	dir := cluster.Dir(cfg.Cluster.Dir)
	cur, err := cluster.ReadTokenState(dir.TokenPath())
	if err != nil {
		return err
	}
	now := time.Now()
	if !now.After(cur.Issued) {
		now = cur.Issued.Add(time.Millisecond)
	}
	tok, state, err := cluster.NewToken(now)
	if err != nil {
		return err
	}
	if err := cluster.WriteTokenState(dir.TokenPath(), state); err != nil {
		return err
	}
	fmt.Fprintf(m.Stdout, "join token: %s\n", tok)
	fmt.Fprintln(m.Stdout, "the previous token no longer admits nodes; the running node announces the new one to the cluster")
	return nil
}

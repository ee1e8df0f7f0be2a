// Command lazaret runs a Lazaret node and talks to one. It parses flags and
// the TOML config file (translated into a daemon.Config; package daemon runs
// the node) and holds the client subcommands. See README.md.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time by the Makefile.
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	m := NewMain(os.Stdin, os.Stdout, os.Stderr)
	os.Exit(m.Run(ctx, os.Args[1:]))
}

package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/lazaret/lazaret/proto/rpc"
)

// Main is the lazaret program: subcommands over injected standard streams, so
// tests run it in-process exactly as a user would from a shell.
type Main struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	// Getenv reads the environment (LAZARET_SOCKET); tests replace it.
	Getenv func(string) string
}

// NewMain returns a Main on the given streams and the process environment.
func NewMain(stdin io.Reader, stdout, stderr io.Writer) *Main {
	return &Main{Stdin: stdin, Stdout: stdout, Stderr: stderr, Getenv: os.Getenv}
}

// command is one subcommand.
type command struct {
	summary string
	run     func(m *Main, ctx context.Context, args []string) error
}

func (m *Main) commands() map[string]command {
	return map[string]command{
		"serve":       {"run a node", (*Main).serve},
		"init":        {"create a cluster: CA, gossip key, join token, this node's certificate and config", (*Main).initCluster},
		"join":        {"join this node to a running cluster with a join token", (*Main).joinCluster},
		"token":       {"rotate the cluster's join token (token rotate)", (*Main).token},
		"node":        {"retire a dead node for good; its shards are rebuilt elsewhere (node remove N)", (*Main).node},
		"dev":         {"run an N-node cluster on this host, one process per node", (*Main).dev},
		"index":       {"PostgreSQL index: migrate, rebuild", (*Main).index},
		"put":         {"quarantine a message from a file or stdin; prints its id", (*Main).put},
		"get":         {"write a message's body to stdout or a file", (*Main).get},
		"mount":       {"show the cluster's quarantine as a MailScanner tree (FUSE)", (*Main).mount},
		"stat":        {"show a message's metadata", (*Main).stat},
		"ls":          {"list messages, newest first", (*Main).ls},
		"delete":      {"delete a message", (*Main).delete},
		"learn":       {"teach the spam filter that a message is spam or ham", (*Main).learn},
		"release":     {"release a message to its recipients", (*Main).release},
		"allocate-id": {"reserve a message id", (*Main).allocateID},
		"status":      {"show the node's status", (*Main).status},
		"version":     {"print the version", (*Main).printVersion},
		"bench":       {"measure put/get throughput against a running node", (*Main).bench},
		"s3":          {"S3 API access keys (s3 key create, s3 key list)", (*Main).s3},
	}
}

// usageError is a mistake in the command line: exit status 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// Run runs the subcommand named by args[0] and returns the exit status.
func (m *Main) Run(ctx context.Context, args []string) int {
	cmds := m.commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		m.usage(cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(m.Stderr, "lazaret: unknown command %q (run 'lazaret help')\n", args[0])
		return 2
	}
	err := c.run(m, ctx, args[1:])
	var ue *usageError
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &ue):
		fmt.Fprintf(m.Stderr, "lazaret %s: %s\n", args[0], ue.msg)
		return 2
	default:
		// One line, whatever the error: operators grep logs.
		fmt.Fprintf(m.Stderr, "lazaret: %s\n", strings.ReplaceAll(err.Error(), "\n", " "))
		return 1
	}
}

func (m *Main) usage(cmds map[string]command) {
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintln(m.Stderr, "usage: lazaret <command> [flags] [args]")
	fmt.Fprintln(m.Stderr, "\ncommands:")
	for _, n := range names {
		fmt.Fprintf(m.Stderr, "  %-12s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(m.Stderr, "\nRun 'lazaret <command> -h' for a command's flags.")
}

// newFlags returns a FlagSet that reports errors instead of exiting.
func (m *Main) newFlags(name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// The flag package prints its error and the usage on every mistake;
	// parse shows the usage only when it was asked for (-h), so that an
	// error stays one line.
	fs.SetOutput(&usageOutput{w: m.Stderr})
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: lazaret %s [flags] %s\n", name, args)
		fs.PrintDefaults()
	}
	return fs
}

// usageOutput holds what the flag package prints until parse decides whether
// to show it.
type usageOutput struct {
	bytes.Buffer
	w io.Writer
}

// parse parses flags, allowing them before and after positional arguments
// ("lazaret get ID -o out.eml" as well as "lazaret get -o out.eml ID").
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if uo, ok := fs.Output().(*usageOutput); ok {
				if errors.Is(err, flag.ErrHelp) {
					_, _ = uo.w.Write(uo.Bytes())
				}
				uo.Reset()
			}
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usagef("%v (run 'lazaret %s -h')", err, fs.Name())
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// DefaultSocket is where serve listens and clients connect by default.
const DefaultSocket = "/run/lazaret/lazaret.sock"

// socketFlag adds --socket, defaulting to $LAZARET_SOCKET or DefaultSocket.
func (m *Main) socketFlag(fs *flag.FlagSet) *string {
	def := m.Getenv("LAZARET_SOCKET")
	if def == "" {
		def = DefaultSocket
	}
	return fs.String("socket", def, "node API socket (env LAZARET_SOCKET)")
}

// dial connects to the node at socket.
func dial(socket string) (*rpc.Client, error) { return rpc.DialUnix(socket) }

func (m *Main) printVersion(ctx context.Context, args []string) error {
	fmt.Fprintf(m.Stdout, "lazaret %s\n", version)
	return nil
}

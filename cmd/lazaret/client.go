package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// stringList is a repeatable string flag (--to a --to b).
type stringList []string

func (s *stringList) String() string     { return strings.Join(*s, ",") }
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

// withClient connects to the node and runs fn.
func withClient(socket string, fn func(c *rpc.Client) error) error {
	c, err := dial(socket)
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c)
}

func oneID(args []string) (lazaret.ID, error) {
	if len(args) != 1 {
		return "", usagef("want exactly one message id, got %d arguments", len(args))
	}
	id, err := lazaret.ParseID(args[0])
	if err != nil {
		return "", usagef("%v", err) // a malformed id is a usage mistake: exit 2
	}
	return id, nil
}

func (m *Main) put(ctx context.Context, args []string) error {
	fs := m.newFlags("put", "[FILE|-]")
	socket := m.socketFlag(fs)
	from := fs.String("from", "", "envelope sender")
	var to stringList
	fs.Var(&to, "to", "envelope recipient (repeatable)")
	verdict := fs.String("verdict", "spam", "verdict: spam, highspam, virus, policy or other")
	score := fs.Float64("score", 0, "scanner score")
	scanner := fs.String("scanner", "", "scanner name, e.g. spamassassin")
	report := fs.String("report", "", "scanner report text")
	clientIP := fs.String("client-ip", "", "client IP address")
	id := fs.String("id", "", "use this id (from allocate-id) instead of allocating one")
	asJSON := fs.Bool("json", false, "print the stored metadata as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usagef("want at most one file, got %d", len(pos))
	}
	kind, err := lazaret.ParseVerdictKind(*verdict)
	if err != nil {
		return usagef("--verdict: %v", err)
	}
	if *id != "" {
		if _, err := lazaret.ParseID(*id); err != nil {
			return usagef("--id: %v", err)
		}
	}
	if math.IsNaN(*score) || math.IsInf(*score, 0) {
		return usagef("--score %v: want a finite number", *score)
	}
	var body io.Reader = m.Stdin
	if len(pos) == 1 && pos[0] != "-" {
		f, err := os.Open(pos[0])
		if err != nil {
			return err
		}
		defer f.Close()
		body = f
	}
	req := lazaret.PutRequest{
		ID: lazaret.ID(*id), Sender: *from, Recipients: to, ClientIP: *clientIP,
		Verdict: lazaret.Verdict{Kind: kind, Score: *score, Scanner: *scanner, Report: *report},
		Actor:   rpc.Actor("cli"),
	}
	return withClient(*socket, func(c *rpc.Client) error {
		meta, err := c.Put(ctx, req, body)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(m.Stdout, meta)
		}
		fmt.Fprintln(m.Stdout, meta.ID)
		return nil
	})
}

func (m *Main) get(ctx context.Context, args []string) error {
	fs := m.newFlags("get", "ID")
	socket := m.socketFlag(fs)
	out := fs.String("o", "", "write the body to this file instead of stdout")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos)
	if err != nil {
		return err
	}
	return withClient(*socket, func(c *rpc.Client) error {
		_, body, err := c.Open(ctx, id)
		if err != nil {
			return err
		}
		defer body.Close()
		if *out == "" {
			_, err = io.Copy(m.Stdout, body)
			return err
		}
		return writeFileAtomic(*out, body)
	})
}

// writeFileAtomic writes r to path through a temporary file, so a failed or
// corrupt read never leaves a partial file under the requested name. A path
// that exists and is not a regular file (/dev/null, a pipe, a terminal) is
// written to directly: renaming over it would replace the device with a file.
func writeFileAtomic(path string, r io.Reader) error {
	if fi, err := os.Stat(path); err == nil && !fi.Mode().IsRegular() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, r); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func (m *Main) stat(ctx context.Context, args []string) error {
	fs := m.newFlags("stat", "ID")
	socket := m.socketFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos)
	if err != nil {
		return err
	}
	return withClient(*socket, func(c *rpc.Client) error {
		meta, err := c.Stat(ctx, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(m.Stdout, meta)
		}
		printMeta(m.Stdout, meta)
		return nil
	})
}

func (m *Main) ls(ctx context.Context, args []string) error {
	fs := m.newFlags("ls", "")
	socket := m.socketFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	var q lazaret.ListQuery
	fs.StringVar(&q.Sender, "from", "", "envelope sender, or @domain")
	fs.StringVar(&q.Recipient, "to", "", "envelope recipient, or @domain")
	fs.StringVar(&q.Domain, "domain", "", "sender or recipient domain")
	fs.StringVar(&q.Subject, "subject", "", "words in the subject")
	verdict := fs.String("verdict", "", "comma-separated verdicts (spam,highspam,virus,policy,other)")
	state := fs.String("state", "", "comma-separated states (quarantined,released,deleted); default quarantined,released")
	since := fs.String("since", "", "received at or after: RFC 3339 time, date (2006-01-02) or age (24h)")
	until := fs.String("until", "", "received before: RFC 3339 time, date or age")
	limit := fs.Int("limit", 50, "messages to show (0 = all)")
	moreListFlags := listFilterFlags(fs, &q) // index.go: --node, --min-score, --max-score
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	for _, v := range splitList(*verdict) {
		k, err := lazaret.ParseVerdictKind(v)
		if err != nil {
			return usagef("--verdict: %v", err)
		}
		q.Verdicts = append(q.Verdicts, k)
	}
	for _, v := range splitList(*state) {
		s, err := lazaret.ParseState(v)
		if err != nil {
			return usagef("--state: %v", err)
		}
		q.States = append(q.States, s)
	}
	if q.Since, err = parseWhen(*since); err != nil {
		return usagef("--since: %v", err)
	}
	if q.Until, err = parseWhen(*until); err != nil {
		return usagef("--until: %v", err)
	}
	if err := moreListFlags(); err != nil {
		return err
	}
	return withClient(*socket, func(c *rpc.Client) error {
		all := []*lazaret.Metadata{} // --json prints [] for none, not null
		source := ""
		for {
			q.Limit = 1000
			if *limit > 0 && *limit-len(all) < q.Limit {
				q.Limit = *limit - len(all)
			}
			page, err := c.List(ctx, q)
			if err != nil {
				return err
			}
			all = append(all, page.Messages...)
			source = page.Source
			if page.NextCursor == "" || (*limit > 0 && len(all) >= *limit) {
				break
			}
			q.Cursor = page.NextCursor
		}
		if *asJSON {
			return writeJSON(m.Stdout, struct {
				Source   string              `json:"source"`
				Messages []*lazaret.Metadata `json:"messages"`
			}{source, all})
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tRECEIVED\tVERDICT\tSCORE\tSTATE\tFROM\tTO\tSUBJECT")
		for _, md := range all {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f\t%s\t%s\t%s\t%s\n", md.ID, md.Received.Local().Format("2006-01-02 15:04:05"),
				md.Verdict.Kind, md.Verdict.Score, md.State, clip(md.Sender, 30), clip(strings.Join(md.Recipients, ","), 30), clip(md.Subject, 50))
		}
		return tw.Flush()
	})
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseWhen accepts an RFC 3339 time, a date, or an age ("36h") meaning that
// long ago.
func parseWhen(s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.ParseInLocation("2006-01-02", s, time.Local); err == nil {
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return time.Now().Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%q is not a time, date or age", s)
}

func clip(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func (m *Main) delete(ctx context.Context, args []string) error {
	return m.simple(ctx, "delete", args, nil, func(c *rpc.Client, id lazaret.ID) (*lazaret.Metadata, error) {
		return c.Delete(ctx, id, rpc.Actor("cli"))
	})
}

func (m *Main) learn(ctx context.Context, args []string) error {
	var spam, ham *bool
	return m.simple(ctx, "learn", args, func(fs *flag.FlagSet) {
		spam = fs.Bool("spam", false, "learn as spam")
		ham = fs.Bool("ham", false, "learn as ham (not spam)")
	}, func(c *rpc.Client, id lazaret.ID) (*lazaret.Metadata, error) {
		if *spam == *ham {
			return nil, usagef("give exactly one of --spam or --ham")
		}
		kind := lazaret.LearnSpam
		if *ham {
			kind = lazaret.LearnHam
		}
		return c.Learn(ctx, id, kind, rpc.Actor("cli"))
	})
}

func (m *Main) release(ctx context.Context, args []string) error {
	var to stringList
	var rid *string
	return m.simple(ctx, "release", args, func(fs *flag.FlagSet) {
		fs.Var(&to, "to", "deliver to this address instead of the original recipients (repeatable)")
		rid = fs.String("request-id", "", "idempotency key: repeating a release with the same key never delivers twice (default: a new random key)")
	}, func(c *rpc.Client, id lazaret.ID) (*lazaret.Metadata, error) {
		if *rid == "" {
			*rid = newRequestID()
		}
		md, err := c.Release(lazaret.WithRequestID(ctx, *rid), id, to, rpc.Actor("cli"))
		if err != nil {
			return nil, fmt.Errorf("%w (request id %s)", err, *rid)
		}
		return md, nil
	})
}

// newRequestID makes up a release's idempotency key.
func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return "cli-" + hex.EncodeToString(b[:])
}

// simple runs a command that takes one id, acts on it and prints the result.
func (m *Main) simple(ctx context.Context, name string, args []string, flags func(*flag.FlagSet),
	act func(*rpc.Client, lazaret.ID) (*lazaret.Metadata, error)) error {
	fs := m.newFlags(name, "ID")
	socket := m.socketFlag(fs)
	asJSON := fs.Bool("json", false, "print the resulting metadata as JSON")
	if flags != nil {
		flags(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	id, err := oneID(pos)
	if err != nil {
		return err
	}
	return withClient(*socket, func(c *rpc.Client) error {
		meta, err := act(c, id)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(m.Stdout, meta)
		}
		last := meta.History[len(meta.History)-1]
		fmt.Fprintf(m.Stdout, "%s: %s %s\n", meta.ID, last.Action, last.Detail)
		return nil
	})
}

func (m *Main) allocateID(ctx context.Context, args []string) error {
	fs := m.newFlags("allocate-id", "")
	socket := m.socketFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return err
	}
	return withClient(*socket, func(c *rpc.Client) error {
		id, err := c.AllocateID(ctx)
		if err == nil {
			fmt.Fprintln(m.Stdout, id)
		}
		return err
	})
}

func (m *Main) status(ctx context.Context, args []string) error {
	fs := m.newFlags("status", "")
	socket := m.socketFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	return withClient(*socket, func(c *rpc.Client) error {
		st, err := c.Status(ctx)
		if err != nil {
			return err
		}
		if *asJSON {
			return writeJSON(m.Stdout, st)
		}
		health := "ok"
		if len(st.Health) > 0 {
			health = strings.Join(st.Health, "; ")
		}
		tw := tabwriter.NewWriter(m.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "node\t%d (%s)\n", st.Node, st.Name)
		fmt.Fprintf(tw, "version\t%s\n", st.Version)
		fmt.Fprintf(tw, "started\t%s\n", st.Started.Local().Format(time.RFC3339))
		fmt.Fprintf(tw, "data\t%s\n", st.DataDir)
		fmt.Fprintf(tw, "messages\t%d\n", st.Messages)
		fmt.Fprintf(tw, "bytes\t%d (on disk %d)\n", st.Bytes, st.DiskBytes)
		fmt.Fprintf(tw, "retention\t%s\n", humanDuration(st.Retention))
		fmt.Fprintf(tw, "health\t%s\n", health)
		printIndexStatus(tw, st.Index) // index.go
		printLag(tw, st.Lag)
		if err := tw.Flush(); err != nil {
			return err
		}
		return printMembers(m.Stdout, st.Members, time.Now()) // status_cluster.go
	})
}

func printMeta(w io.Writer, md *lazaret.Metadata) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("id", string(md.ID))
	row("node", strconv.Itoa(md.Node))
	row("received", md.Received.Local().Format(time.RFC3339))
	row("state", md.State.String())
	row("sender", orDash(md.Sender))
	row("recipients", strings.Join(md.Recipients, ", "))
	row("client ip", md.ClientIP)
	row("helo", md.Helo)
	row("from", md.From)
	row("to", md.To)
	row("subject", md.Subject)
	if !md.Date.IsZero() {
		row("date", md.Date.Format(time.RFC1123Z))
	}
	row("message-id", md.MessageID)
	row("size", strconv.FormatInt(md.Size, 10))
	row("sha256", hex.EncodeToString(md.SHA256[:]))
	row("verdict", fmt.Sprintf("%s %.2f %s", md.Verdict.Kind, md.Verdict.Score, md.Verdict.Scanner))
	row("report", md.Verdict.Report)
	if md.LearnedAs != lazaret.LearnNone {
		row("learned as", md.LearnedAs.String())
	}
	row("version", md.Version.String())
	for _, e := range md.History {
		row("history", strings.TrimSpace(fmt.Sprintf("%s %s by %s on node %d %s", e.Time.Local().Format(time.RFC3339), e.Action, e.Actor, e.Node, e.Detail)))
	}
	tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "<>"
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// printLag adds the replication-lag rows: how far this node is from every
// message being fully protected and every replica agreeing.
func printLag(w io.Writer, l *lazaret.ReplicationLag) {
	if l == nil {
		return
	}
	oldest := "-"
	if !l.OldestUnderProtected.IsZero() {
		oldest = time.Since(l.OldestUnderProtected).Round(time.Second).String() + " ago"
	}
	fmt.Fprintf(w, "under-protected	%d messages, %d bytes, oldest %s\n", l.UnderProtected, l.UnderProtectedBytes, oldest)
	fmt.Fprintf(w, "repair	queue %d, repaired %d shards (%d bytes), corrupt shards found %d\n", l.RepairQueue, l.Repaired, l.RepairedBytes, l.CorruptShards)
	if len(l.RemovedNodes) > 0 {
		fmt.Fprintf(w, "removed nodes\t%v\n", l.RemovedNodes)
	}
	for _, p := range l.Peers {
		last := "never"
		if !p.LastSuccess.IsZero() {
			last = time.Since(p.LastSuccess).Round(time.Second).String() + " ago"
		}
		line := fmt.Sprintf("last %s, %d differences, %d bytes", last, p.Differences, p.Bytes)
		if p.LastError != "" {
			line += "; last attempt failed: " + p.LastError
		}
		fmt.Fprintf(w, "sync with node %d\t%s\n", p.Node, line)
	}
}

// humanDuration writes whole days as days ("30 days"), anything else as Go
// does ("36h0m0s").
func humanDuration(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		if d == day {
			return "1 day"
		}
		return fmt.Sprintf("%d days", d/day)
	}
	return d.String()
}

package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// cmdTimeout bounds one CLI command run in a test.
const cmdTimeout = 30 * time.Second

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a serving node.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// node is a `lazaret serve` running in-process.
type node struct {
	t      *testing.T
	socket string
	data   string
	out    *syncBuffer
	cancel context.CancelFunc
	done   chan int
}

// shortDir returns a temporary directory with a path short enough for a unix
// socket (at most 108 bytes), removed when the test ends.
func shortDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lz")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startServe runs `lazaret serve --data data --socket socket args...` until the
// test ends or stop is called, and waits until it answers Status.
func startServe(t *testing.T, data, socket string, args ...string) *node {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	n := &node{t: t, socket: socket, data: data, out: out, cancel: cancel, done: make(chan int, 1)}
	m := &Main{Stdin: strings.NewReader(""), Stdout: out, Stderr: out, Getenv: func(string) string { return "" }}
	argv := append([]string{"serve", "--data", data, "--socket", socket}, args...)
	go func() { n.done <- m.Run(ctx, argv) }()
	t.Cleanup(n.stop)

	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case code := <-n.done:
			n.done <- code
			t.Fatalf("serve exited with %d before serving:\n%s", code, out)
		default:
		}
		if err := ping(socket); err == nil {
			return n
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not answer within 20s: %v\n%s", err, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func ping(socket string) error {
	c, err := rpc.DialUnix(socket)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err = c.Status(ctx)
	return err
}

// stop cancels serve (as SIGTERM would) and checks it exits 0 promptly.
func (n *node) stop() {
	n.cancel()
	select {
	case code := <-n.done:
		n.done <- code // later stops see it too
		if code != 0 {
			n.t.Errorf("serve exited with %d:\n%s", code, n.out)
		}
	case <-time.After(30 * time.Second):
		n.t.Errorf("serve did not stop within 30s")
	}
}

// result is the outcome of one CLI run.
type result struct {
	code           int
	stdout, stderr string
}

// lz runs the CLI in-process with stdin and the given environment.
func lz(t *testing.T, env map[string]string, stdin []byte, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	m := &Main{Stdin: bytes.NewReader(stdin), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return env[k] }}
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	code := m.Run(ctx, args)
	return result{code, stdout.String(), stderr.String()}
}

// ok runs the CLI and fails the test unless it exits 0 with nothing on stderr.
func ok(t *testing.T, env map[string]string, stdin []byte, args ...string) string {
	t.Helper()
	r := lz(t, env, stdin, args...)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("lazaret %s: exit %d, stderr %q", strings.Join(args, " "), r.code, r.stderr)
	}
	return r.stdout
}

// fails runs the CLI and checks it exits with code and one line on stderr
// containing every one of want; stdout must stay empty.
func fails(t *testing.T, env map[string]string, stdin []byte, code int, want []string, args ...string) {
	t.Helper()
	r := lz(t, env, stdin, args...)
	if r.code != code {
		t.Errorf("lazaret %s: exit %d, want %d (stderr %q)", strings.Join(args, " "), r.code, code, r.stderr)
	}
	if r.stdout != "" {
		t.Errorf("lazaret %s: stdout %q, want nothing", strings.Join(args, " "), r.stdout)
	}
	line := strings.TrimSuffix(r.stderr, "\n")
	if line == "" || strings.Contains(line, "\n") {
		t.Errorf("lazaret %s: stderr %q, want exactly one line", strings.Join(args, " "), r.stderr)
	}
	for _, w := range want {
		if !strings.Contains(line, w) {
			t.Errorf("lazaret %s: stderr %q does not mention %q", strings.Join(args, " "), line, w)
		}
	}
}

// testMessage returns a mail message of about size bytes with a random body.
func testMessage(size int, seed uint64, subject string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Alice <alice@example.org>\r\nTo: bob@example.com\r\nSubject: %s\r\nMessage-ID: <%d@example.org>\r\n\r\n", subject, seed)
	r := rand.New(rand.NewPCG(seed, 1))
	for b.Len() < size {
		// Arbitrary bytes, including NUL, CR and 8-bit, on lines.
		line := make([]byte, 60+r.IntN(40))
		for i := range line {
			line[i] = byte(r.Uint32())
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

func TestCLIPutGetStatLs(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	startServe(t, filepath.Join(dir, "data"), sock)
	env := map[string]string{"LAZARET_SOCKET": sock} // no --socket anywhere below

	// put from a file (bigger than one gRPC chunk), with envelope and verdict.
	big := testMessage(700<<10, 1, "big one")
	file := filepath.Join(t.TempDir(), "big.eml")
	if err := os.WriteFile(file, big, 0o600); err != nil {
		t.Fatal(err)
	}
	idFile := strings.TrimSpace(ok(t, env, nil, "put", "--from", "alice@example.org", "--to", "bob@example.com",
		"--to", "carol@example.com", "--verdict", "virus", "--score", "9.5", "--scanner", "clamav", file))
	if _, err := lazaret.ParseID(idFile); err != nil {
		t.Fatalf("put printed %q: %v", idFile, err)
	}

	// put from stdin, flags after the "-" argument.
	small := testMessage(3000, 2, "=?UTF-8?B?SGFsbMO2?= small")
	idStdin := strings.TrimSpace(ok(t, env, small, "put", "-", "--from", "<dave@example.net>", "--to", "erin@example.com"))
	if _, err := lazaret.ParseID(idStdin); err != nil {
		t.Fatalf("put printed %q: %v", idStdin, err)
	}
	if idStdin == idFile {
		t.Fatalf("two puts got the same id %s", idFile)
	}

	// get to stdout and to a file: byte-identical.
	for id, want := range map[string][]byte{idFile: big, idStdin: small} {
		if got := ok(t, env, nil, "get", id); got != string(want) {
			t.Errorf("get %s to stdout: %d bytes, want %d identical bytes", id, len(got), len(want))
		}
		out := filepath.Join(t.TempDir(), "out.eml")
		if got := ok(t, env, nil, "get", id, "-o", out); got != "" {
			t.Errorf("get -o printed %q", got)
		}
		got, err := os.ReadFile(out)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("get %s -o: %d bytes (%v), want %d identical bytes", id, len(got), err, len(want))
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".out.eml.tmp*")); len(left) > 0 {
			t.Errorf("get -o left temporary files %v", left)
		}
	}

	// get -o to something that is not a regular file (here a named pipe,
	// as /dev/null would be) writes into it and leaves it what it was.
	fifo := filepath.Join(t.TempDir(), "pipe")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	read := make(chan []byte, 1)
	go func() {
		b, _ := os.ReadFile(fifo)
		read <- b
	}()
	ok(t, env, nil, "get", idStdin, "-o", fifo)
	select {
	case got := <-read:
		if !bytes.Equal(got, small) {
			t.Errorf("get -o a named pipe: the reader got %d bytes, want %d identical bytes", len(got), len(small))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("get -o a named pipe: nothing arrived")
	}
	if fi, err := os.Lstat(fifo); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Errorf("get -o replaced the named pipe: %v %v", fi.Mode(), err)
	}

	// stat --json parses and describes the message.
	var md lazaret.Metadata
	if err := json.Unmarshal([]byte(ok(t, env, nil, "stat", "--json", idFile)), &md); err != nil {
		t.Fatalf("stat --json: %v", err)
	}
	if string(md.ID) != idFile || md.Size != int64(len(big)) || md.SHA256 != sha256.Sum256(big) ||
		md.Sender != "alice@example.org" || strings.Join(md.Recipients, ",") != "bob@example.com,carol@example.com" ||
		md.Verdict.Kind != lazaret.VerdictVirus || md.Verdict.Score != 9.5 || md.Verdict.Scanner != "clamav" ||
		md.Subject != "big one" || md.From != "Alice <alice@example.org>" || md.State != lazaret.StateQuarantined {
		t.Errorf("stat --json = %+v", md)
	}
	if err := json.Unmarshal([]byte(ok(t, env, nil, "stat", idStdin, "--json")), &md); err != nil {
		t.Fatal(err)
	}
	if md.Subject != "Hallö small" || md.Sender != "dave@example.net" {
		t.Errorf("stat %s: subject %q sender %q; want the decoded subject and a bare sender", idStdin, md.Subject, md.Sender)
	}
	if text := ok(t, env, nil, "stat", idFile); !strings.Contains(text, idFile) || !strings.Contains(text, "virus") {
		t.Errorf("stat (text) = %q", text)
	}

	// ls --json: newest first, both messages; filters work.
	var page struct {
		Source   string              `json:"source"`
		Messages []*lazaret.Metadata `json:"messages"`
	}
	if err := json.Unmarshal([]byte(ok(t, env, nil, "ls", "--json")), &page); err != nil {
		t.Fatalf("ls --json: %v", err)
	}
	if len(page.Messages) != 2 || string(page.Messages[0].ID) != idStdin || string(page.Messages[1].ID) != idFile {
		t.Errorf("ls --json = %d messages %v, want [%s %s]", len(page.Messages), ids(page.Messages), idStdin, idFile)
	}
	if page.Source == "" {
		t.Errorf("ls --json: empty source")
	}
	if err := json.Unmarshal([]byte(ok(t, env, nil, "ls", "--json", "--verdict", "virus")), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || string(page.Messages[0].ID) != idFile {
		t.Errorf("ls --verdict virus = %v, want [%s]", ids(page.Messages), idFile)
	}
	if text := ok(t, env, nil, "ls"); !strings.Contains(text, idFile) || !strings.Contains(text, idStdin) {
		t.Errorf("ls (text) = %q", text)
	}

	// An explicit --socket wins over LAZARET_SOCKET.
	fails(t, map[string]string{"LAZARET_SOCKET": filepath.Join(dir, "nope.sock")}, nil, 1, []string{"nope.sock"}, "stat", idFile)
	ok(t, map[string]string{"LAZARET_SOCKET": filepath.Join(dir, "nope.sock")}, nil, "stat", "--socket", sock, idFile)

	// delete, then the message is gone.
	ok(t, env, nil, "delete", idStdin)
	fails(t, env, nil, 1, []string{idStdin, "not found"}, "get", idStdin)
	fails(t, env, nil, 1, []string{idStdin, "not found"}, "stat", idStdin)

	// status --json parses.
	var st lazaret.NodeStatus
	if err := json.Unmarshal([]byte(ok(t, env, nil, "status", "--json")), &st); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if st.Node != 1 || st.Messages != 1 || st.Bytes != int64(len(big)) {
		t.Errorf("status = %+v, want node 1 with 1 message of %d bytes", st, len(big))
	}
}

func ids(ms []*lazaret.Metadata) []lazaret.ID {
	var out []lazaret.ID
	for _, m := range ms {
		out = append(out, m.ID)
	}
	return out
}

func TestCLIRestartKeepsMessages(t *testing.T) {
	dir := shortDir(t)
	sock, data := filepath.Join(dir, "s.sock"), filepath.Join(dir, "data")
	env := map[string]string{"LAZARET_SOCKET": sock}
	msg := testMessage(50<<10, 3, "keep me")

	n := startServe(t, data, sock)
	id := strings.TrimSpace(ok(t, env, msg, "put", "--to", "bob@example.com"))
	n.stop()
	if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after serve stopped: %v", err)
	}
	fails(t, env, nil, 1, []string{"no such socket"}, "get", id)

	startServe(t, data, sock)
	if got := ok(t, env, nil, "get", id); got != string(msg) {
		t.Fatalf("after restart, get %s returned %d bytes, want the %d bytes put", id, len(got), len(msg))
	}
	// The restarted node keeps allocating fresh ids.
	id2 := strings.TrimSpace(ok(t, env, msg, "put"))
	if id2 == id {
		t.Fatalf("restarted node reused id %s", id)
	}
}

func TestCLIErrors(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	missing := map[string]string{"LAZARET_SOCKET": filepath.Join(dir, "missing.sock")}

	// Without a node.
	fails(t, missing, []byte("Subject: x\r\n\r\nhi\r\n"), 1, []string{"missing.sock", "no such socket"}, "put")
	fails(t, missing, nil, 1, []string{"missing.sock", "no such socket"}, "status")
	fails(t, nil, nil, 2, []string{"unknown command", "frobnicate"}, "frobnicate")
	fails(t, missing, nil, 2, []string{"-nosuchflag"}, "put", "--nosuchflag")
	fails(t, missing, nil, 2, []string{"--verdict", "bogus"}, "put", "--verdict", "bogus")
	fails(t, missing, nil, 2, []string{"--since"}, "ls", "--since", "yesterday-ish")
	fails(t, missing, nil, 2, []string{"one message id"}, "get")
	// A malformed id is a usage mistake (exit 2), found before any node is asked.
	fails(t, missing, nil, 2, []string{"invalid message id", "not-an-id"}, "get", "not-an-id")
	fails(t, missing, nil, 2, []string{"invalid message id"}, "stat", "1aBcDe-xxxxxx")
	fails(t, missing, nil, 2, []string{"--id", "invalid message id"}, "put", "--id", "x/y")
	fails(t, missing, nil, 2, []string{"--score", "finite"}, "put", "--score", "NaN")
	fails(t, missing, nil, 1, []string{"no such file"}, "put", filepath.Join(dir, "nope.eml"))
	if r := lz(t, nil, nil); r.code != 2 || !strings.Contains(r.stderr, "usage") {
		t.Errorf("lazaret with no arguments: exit %d, stderr %q; want 2 and usage", r.code, r.stderr)
	}
	if r := lz(t, nil, nil, "version"); r.code != 0 || !strings.HasPrefix(r.stdout, "lazaret ") {
		t.Errorf("lazaret version: exit %d, stdout %q", r.code, r.stdout)
	}

	// With a node.
	startServe(t, filepath.Join(dir, "data"), sock)
	env := map[string]string{"LAZARET_SOCKET": sock}
	// The id allocated for a refused put was never stored: not named.
	if r := lz(t, env, nil, "put"); r.code != 1 || !strings.HasPrefix(r.stderr, "lazaret: put: invalid argument: empty body") || !strings.Contains(r.stderr, "empty body") {
		t.Errorf("put of an empty body: exit %d, stderr %q; want 1 and \"put: ...empty body\"", r.code, r.stderr)
	}
	fails(t, env, nil, 1, []string{"empty body"}, "put", os.DevNull)
	fails(t, env, []byte("x\r\n"), 1, []string{"recipient"}, "put", "--to", "bob smith@example.com")
	fails(t, env, nil, 1, []string{"get 1aBcDe-AbCdEf-01: message not found"}, "get", "1aBcDe-AbCdEf-01")
	fails(t, env, nil, 1, []string{"stat 1aBcDe-AbCdEf-01: message not found"}, "stat", "1aBcDe-AbCdEf-01")
	fails(t, env, []byte("x\r\n"), 1, []string{"client IP", "999.1.2.3"}, "put", "--client-ip", "999.1.2.3")
	// ls of an empty quarantine lists [] in JSON, not null.
	if out := ok(t, env, nil, "ls", "--json"); !strings.Contains(out, `"messages": []`) {
		t.Errorf("ls --json of an empty quarantine: %s", out)
	}
	id := strings.TrimSpace(ok(t, env, []byte("Subject: x\r\n\r\nhi\r\n"), "put"))
	fails(t, env, nil, 2, []string{"--spam", "--ham"}, "learn", id)
	fails(t, env, nil, 2, []string{"--spam", "--ham"}, "learn", id, "--spam", "--ham")
	fails(t, env, nil, 2, []string{"invalid message id"}, "delete", "nope")
	fails(t, env, nil, 1, []string{"no envelope recipients"}, "release", id)
	// Nothing above changed the stored message.
	var md lazaret.Metadata
	if err := json.Unmarshal([]byte(ok(t, env, nil, "stat", "--json", id)), &md); err != nil {
		t.Fatal(err)
	}
	if len(md.History) != 1 || md.LearnedAs != lazaret.LearnNone {
		t.Errorf("failed commands changed the message: %+v", md)
	}
	// Learning with no learner configured records it.
	if out := ok(t, env, nil, "learn", "--ham", id); !strings.Contains(out, "learn") {
		t.Errorf("learn --ham printed %q", out)
	}
}

func TestCLIServeBadConfig(t *testing.T) {
	dir := shortDir(t)
	cfg := writeConfig(t, "[node]\nnumbr = 3\n")
	fails(t, nil, nil, 1, []string{"node.numbr"}, "serve", "--config", cfg, "--data", filepath.Join(dir, "d"), "--socket", filepath.Join(dir, "s"))
	fails(t, nil, nil, 2, []string{"-bogus"}, "serve", "--bogus")
	if _, err := os.Stat(filepath.Join(dir, "d")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused config created the data directory: %v", err)
	}
}

func TestCLIMaxMessageSize(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	cfg := writeConfig(t, "[store]\nmax_message_size = \"8KiB\"\n")
	startServe(t, filepath.Join(dir, "data"), sock, "--config", cfg)
	env := map[string]string{"LAZARET_SOCKET": sock}

	ok(t, env, testMessage(8<<10-200, 4, "fits"), "put")
	// Oversize from stdin (size unknown up front) and from a file (declared).
	fails(t, env, testMessage(20<<10, 5, "too big"), 1, []string{"too large", "8192"}, "put")
	file := filepath.Join(t.TempDir(), "big.eml")
	if err := os.WriteFile(file, testMessage(600<<10, 6, "much too big"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, env, nil, 1, []string{"too large"}, "put", file)

	var page struct{ Messages []*lazaret.Metadata }
	if err := json.Unmarshal([]byte(ok(t, env, nil, "ls", "--json")), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Subject != "fits" {
		t.Errorf("after refused puts, ls = %v; want only the message that fits", ids(page.Messages))
	}
}

// Client commands reach the socket by a relative path (issue 14), and a
// second serve on the same data names the process holding it (issue 16).
func TestCLIRelativeSocketAndDataInUse(t *testing.T) {
	dir := shortDir(t)
	n := startServe(t, filepath.Join(dir, "data"), filepath.Join(dir, "n1", "s.sock"))
	if !strings.Contains(n.out.String(), "created socket directory") {
		t.Errorf("serve did not say it created the socket directory:\n%s", n.out)
	}
	t.Chdir(dir)
	id := strings.TrimSpace(ok(t, nil, []byte("Subject: x\r\n\r\nhi\r\n"), "put", "--socket", "n1/s.sock"))
	ok(t, map[string]string{"LAZARET_SOCKET": "n1/s.sock"}, nil, "stat", id)
	if out := ok(t, nil, nil, "status", "--socket", "./n1/s.sock"); !regexp.MustCompile(`retention +30 days`).MatchString(out) {
		t.Errorf("status does not give the retention in days:\n%s", out)
	}

	fails(t, nil, nil, 1, []string{"data directory in use by pid", strconv.Itoa(os.Getpid())},
		"serve", "--data", filepath.Join(dir, "data"), "--socket", filepath.Join(dir, "other.sock"))
}

// ls pages through everything it was asked for, also when the records are
// too large for one response (issue 16: "received message larger than max").
func TestCLILsPagesThroughEverything(t *testing.T) {
	dir := shortDir(t)
	sock := filepath.Join(dir, "s.sock")
	startServe(t, filepath.Join(dir, "data"), sock)
	env := map[string]string{"LAZARET_SOCKET": sock}
	report := strings.Repeat("r", 60<<10)
	const n = 80 // 4.8 MB of reports: more than a client takes in one response
	for i := range n {
		ok(t, env, testMessage(300, uint64(i), fmt.Sprintf("m%d", i)), "put", "--report", report)
	}
	for _, limit := range []string{"0", "100000000", "25"} {
		var page struct{ Messages []*lazaret.Metadata }
		if err := json.Unmarshal([]byte(ok(t, env, nil, "ls", "--json", "--limit", limit)), &page); err != nil {
			t.Fatal(err)
		}
		want := n
		if limit == "25" {
			want = 25
		}
		seen := map[lazaret.ID]bool{}
		for _, m := range page.Messages {
			seen[m.ID] = true
		}
		if len(page.Messages) != want || len(seen) != want {
			t.Errorf("ls --limit %s: %d messages (%d distinct), want %d", limit, len(page.Messages), len(seen), want)
		}
	}
}

package replicator_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator"
)

// learnScript writes a shell script to dir and returns the argv that runs it.
// The script is run by /bin/sh rather than executed directly: a file just
// written may be "text file busy" while another test forks.
func learnScript(t *testing.T, dir, name, text string) []string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+text), 0o600); err != nil {
		t.Fatal(err)
	}
	return []string{"/bin/sh", path}
}

func TestLearnRunsCommand(t *testing.T) {
	dir := t.TempDir()
	spamOut, hamOut := filepath.Join(dir, "spam.eml"), filepath.Join(dir, "ham.eml")
	spam := append(learnScript(t, dir, "spam.sh", `cat > "$1"; echo "learned"; echo "args: $2" >&2`+"\n"), spamOut, "--spam")
	ham := append(learnScript(t, dir, "ham.sh", `cat > "$1"; echo "Learned tokens from 1 message(s)"`+"\n"), hamOut)
	f := newFx(t, func(c *replicator.Config) { c.LearnSpam, c.LearnHam = spam, ham })
	ctx := fxCtx(t)
	body := fxMail(300<<10, 1) // larger than a pipe buffer
	m := f.put(body, "b@example.com")

	f.clock.Advance(time.Minute)
	got, err := f.node.Learn(ctx, m.ID, lazaret.LearnSpam, "alice")
	if err != nil {
		t.Fatalf("Learn: %v", err)
	}
	if got.LearnedAs != lazaret.LearnSpam {
		t.Errorf("LearnedAs = %v, want spam", got.LearnedAs)
	}
	e := lastEvent(got)
	if e.Action != "learn" || e.Actor != "alice" || !strings.Contains(e.Detail, "spam") || !strings.Contains(e.Detail, "learned") ||
		!strings.Contains(e.Detail, "args: --spam") || !e.Time.Equal(fxT0.Add(time.Minute)) {
		t.Errorf("learn event = %+v", e)
	}
	if b, err := os.ReadFile(spamOut); err != nil || !bytes.Equal(b, body) {
		t.Errorf("the learner received %d bytes (%v), want the %d bytes of the message", len(b), err, len(body))
	}
	// Stored durably.
	if st, err := f.node.Stat(ctx, m.ID); err != nil || st.LearnedAs != lazaret.LearnSpam || len(st.History) != 2 {
		t.Errorf("Stat after Learn = %+v, %v", st, err)
	}

	got, err = f.node.Learn(ctx, m.ID, lazaret.LearnHam, "bob")
	if err != nil {
		t.Fatalf("Learn ham: %v", err)
	}
	if got.LearnedAs != lazaret.LearnHam || !strings.Contains(lastEvent(got).Detail, "Learned tokens") {
		t.Errorf("after Learn ham: learned as %v, event %+v", got.LearnedAs, lastEvent(got))
	}
	if b, err := os.ReadFile(hamOut); err != nil || !bytes.Equal(b, body) {
		t.Errorf("the ham learner received %d bytes (%v)", len(b), err)
	}

	if _, err := f.node.Learn(ctx, m.ID, lazaret.LearnNone, "bob"); !errors.Is(err, lazaret.ErrInvalidArgument) {
		t.Errorf("Learn as none: %v, want ErrInvalidArgument", err)
	}
	if _, err := f.node.Learn(ctx, "1aBcDe-AbCdEf-01", lazaret.LearnSpam, "bob"); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("Learn of an unknown message: %v, want ErrNotFound", err)
	}
}

func TestLearnFailure(t *testing.T) {
	dir := t.TempDir()
	fail := learnScript(t, dir, "fail.sh", "cat >/dev/null; echo 'ERROR: bayes db locked' >&2; exit 3\n")
	f := newFx(t, func(c *replicator.Config) { c.LearnSpam = fail })
	ctx := fxCtx(t)
	m := f.put(fxMail(5000, 1), "b@example.com")

	_, err := f.node.Learn(ctx, m.ID, lazaret.LearnSpam, "alice")
	if err == nil {
		t.Fatal("Learn with a failing learner succeeded")
	}
	if !errors.Is(err, lazaret.ErrUnavailable) || !strings.Contains(err.Error(), "exit status 3") || !strings.Contains(err.Error(), "bayes db locked") {
		t.Errorf("Learn error = %v; want ErrUnavailable with the exit status and output", err)
	}
	st, err := f.node.Stat(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	e := lastEvent(st)
	if e.Action != "learn-failed" || !strings.Contains(e.Detail, "exit status 3") || e.Actor != "alice" {
		t.Errorf("history after a failed learn: %+v", st.History)
	}
	if st.LearnedAs != lazaret.LearnNone {
		t.Errorf("LearnedAs = %v after a failed learn", st.LearnedAs)
	}

	// A learner that cannot be started.
	f2 := newFx(t, func(c *replicator.Config) { c.LearnHam = []string{filepath.Join(dir, "no-such-learner")} })
	m2 := f2.put(fxMail(100, 2), "b@example.com")
	if _, err := f2.node.Learn(ctx, m2.ID, lazaret.LearnHam, "alice"); err == nil || !strings.Contains(err.Error(), "no-such-learner") {
		t.Errorf("Learn with a missing learner: %v", err)
	}
}

func TestLearnTimeout(t *testing.T) {
	dir := t.TempDir()
	// The shell waits for a child that holds stdout open: killing the shell
	// alone does not end the learner's output.
	slow := learnScript(t, dir, "slow.sh", "cat >/dev/null; echo started; sleep 10; echo done\n")
	f := newFx(t, func(c *replicator.Config) { c.LearnSpam, c.LearnTimeout = slow, 300*time.Millisecond })
	ctx := fxCtx(t)
	m := f.put(fxMail(5000, 1), "b@example.com")

	start := time.Now()
	_, err := f.node.Learn(ctx, m.ID, lazaret.LearnSpam, "alice")
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("Learn with a slow learner: %v, want a timeout", err)
	}
	if took > 5*time.Second {
		t.Errorf("Learn with a 300ms timeout took %v", took)
	}
	st, err := f.node.Stat(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if e := lastEvent(st); e.Action != "learn-failed" || !strings.Contains(e.Detail, "timed out") || st.LearnedAs != lazaret.LearnNone {
		t.Errorf("after a timed-out learn: learned as %v, history %+v", st.LearnedAs, st.History)
	}
}

func TestLearnWithoutCommandRecords(t *testing.T) {
	f := newFx(t, nil)
	m := f.put(fxMail(100, 1), "b@example.com")
	got, err := f.node.Learn(fxCtx(t), m.ID, lazaret.LearnHam, "")
	if err != nil {
		t.Fatal(err)
	}
	if e := lastEvent(got); got.LearnedAs != lazaret.LearnHam || e.Action != "learn" || e.Actor == "" {
		t.Errorf("Learn without a command: learned as %v, event %+v", got.LearnedAs, e)
	}
}

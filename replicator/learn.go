package replicator

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"time"

	"github.com/lazaret/lazaret"
)

// CommandLearner runs an external learner (sa-learn, rspamc) with the message
// on standard input.
type CommandLearner struct {
	Spam, Ham []string
	Timeout   time.Duration
}

var _ lazaret.Learner = (*CommandLearner)(nil)

// maxLearnOutput caps what is kept of a learner's output in the history.
const maxLearnOutput = 2000

// learnWaitDelay bounds how long a learner's output is awaited once it has
// been killed on timeout.
const learnWaitDelay = time.Second

// Learn runs the command for kind. A command that exits non-zero, times out or
// cannot be started is an error that carries its output.
func (l *CommandLearner) Learn(ctx context.Context, kind lazaret.LearnKind, body io.Reader) (string, error) {
	argv := l.Spam
	if kind == lazaret.LearnHam {
		argv = l.Ham
	}
	if len(argv) == 0 {
		return "", nil
	}
	ctx, cancel := context.WithTimeout(ctx, l.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	// A killed learner's children (a shell script's sleep, a helper) may
	// keep its output open; stop waiting for them shortly after the kill.
	cmd.WaitDelay = learnWaitDelay
	cmd.Stdin = body
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	text := strings.TrimSpace(out.String())
	if len(text) > maxLearnOutput {
		text = text[:maxLearnOutput] + "..."
	}
	if ctx.Err() == context.DeadlineExceeded {
		return text, fmt.Errorf("%s: timed out after %v", argv[0], l.Timeout)
	}
	if err != nil {
		return text, fmt.Errorf("%s: %w: %s", argv[0], err, text)
	}
	return text, nil
}

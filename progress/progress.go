// Package progress reports how far long command-line work has got: a bar
// with count, rate and ETA when the output is a terminal, and otherwise
// (logs, pipes, CI) a plain line at most once per interval and at the end.
package progress

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/lazaret/lazaret"
)

// Config describes one piece of work.
type Config struct {
	// Label names the work, e.g. "index rebuild".
	Label string
	// Unit names what is counted, e.g. "messages".
	Unit string
	// Total is how many units there are; 0 when unknown (no ETA then). An
	// estimate that proves low grows to the count done.
	Total int64
	// Terminal draws a bar; see IsTerminal.
	Terminal bool
	// Interval is the least time between two plain lines.
	Interval time.Duration
	// Clock tells the time for rates and intervals; nil: the system clock.
	Clock lazaret.Clock
}

// DefaultConfig returns a Config for label counting unit, with plain lines
// every 5 seconds.
func DefaultConfig(label, unit string, total int64) Config {
	return Config{Label: label, Unit: unit, Total: total, Interval: 5 * time.Second}
}

// IsTerminal reports whether w is a terminal (a bar can be drawn on it).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// Reporter shows the progress of one piece of work. Its methods are safe
// for concurrent use.
type Reporter struct {
	w     io.Writer
	cfg   Config
	clock lazaret.Clock
	bar   *progressbar.ProgressBar // nil in plain mode

	mu       sync.Mutex
	done     int64
	start    time.Time
	lastLine time.Time
	finished bool
}

// New starts reporting to w.
func New(w io.Writer, cfg Config) *Reporter {
	r := &Reporter{w: w, cfg: cfg, clock: cfg.Clock}
	if r.clock == nil {
		r.clock = lazaret.SystemClock{}
	}
	r.start = r.clock.Now()
	r.lastLine = r.start
	if cfg.Terminal {
		total := cfg.Total
		if total <= 0 {
			total = -1 // a spinner
		}
		r.bar = progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(cfg.Label),
			progressbar.OptionShowCount(),
			progressbar.OptionShowIts(),
			progressbar.OptionSetItsString(cfg.Unit),
			progressbar.OptionSetPredictTime(true),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionShowElapsedTimeOnFinish(),
			progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }),
		)
	}
	return r
}

// Set records that done units are finished.
func (r *Reporter) Set(done int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished || done < r.done {
		return
	}
	r.done = done
	if r.cfg.Total > 0 && done > r.cfg.Total {
		// The total was an estimate (e.g. live messages, when deleted
		// ones' records are written too): it grows with the work.
		r.cfg.Total = done
		if r.bar != nil {
			r.bar.ChangeMax64(done)
		}
	}
	if r.bar != nil {
		r.bar.Set64(done)
		return
	}
	if now := r.clock.Now(); now.Sub(r.lastLine) >= r.cfg.Interval {
		r.lastLine = now
		fmt.Fprintln(r.w, r.line(now))
	}
}

// Add records n more finished units.
func (r *Reporter) Add(n int64) {
	r.mu.Lock()
	done := r.done + n
	r.mu.Unlock()
	r.Set(done)
}

// Finish ends the report: the bar is completed, or a last plain line says
// the total and the average rate.
func (r *Reporter) Finish() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.finished {
		return
	}
	r.finished = true
	if r.bar != nil {
		if r.cfg.Total > 0 && r.done < r.cfg.Total {
			// Less work than announced (e.g. records deleted meanwhile).
			r.bar.ChangeMax64(r.done)
		}
		r.bar.Finish()
		return
	}
	fmt.Fprintln(r.w, r.line(r.clock.Now())+" done")
}

// line is a plain progress line: label, count, share, rate, ETA.
func (r *Reporter) line(now time.Time) string {
	elapsed := now.Sub(r.start)
	rate := 0.0
	if elapsed > 0 {
		rate = float64(r.done) / elapsed.Seconds()
	}
	s := fmt.Sprintf("%s: %d", r.cfg.Label, r.done)
	if r.cfg.Total > 0 {
		s += fmt.Sprintf("/%d %s (%.0f%%)", r.cfg.Total, r.cfg.Unit, 100*float64(r.done)/float64(r.cfg.Total))
	} else {
		s += " " + r.cfg.Unit
	}
	s += fmt.Sprintf(", %.0f/s, elapsed %s", rate, elapsed.Round(time.Second))
	if r.cfg.Total > 0 && r.done < r.cfg.Total && rate > 0 {
		eta := time.Duration(float64(r.cfg.Total-r.done) / rate * float64(time.Second))
		s += ", ETA " + eta.Round(time.Second).String()
	}
	return s
}

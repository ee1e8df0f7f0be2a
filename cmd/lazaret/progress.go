package main

import "github.com/lazaret/lazaret/progress"

// progress reports long work on stderr: a bar on a terminal, plain lines
// every 5 seconds otherwise.
func (m *Main) progress(label, unit string, total int64) *progress.Reporter {
	cfg := progress.DefaultConfig(label, unit, total)
	cfg.Terminal = progress.IsTerminal(m.Stderr)
	return progress.New(m.Stderr, cfg)
}

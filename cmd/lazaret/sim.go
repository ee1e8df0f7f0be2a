package main

import (
	"context"

	"github.com/lazaret/lazaret/sim"
)

// simulate runs the scale simulation (package sim) and prints its table.
func (m *Main) simulate(ctx context.Context, args []string) error {
	fs := m.newFlags("sim", "")
	full := fs.Bool("full", false, "real reconcile sessions over up to 10^6 items a side (make bench-sim); default: samples of 32,768")
	seed := fs.Uint64("seed", 1, "random seed")
	sample := fs.Int("sample", 0, "most items a real session or the placement runs over (0: by --full)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 || *sample < 0 {
		return usagef("sim takes only flags; --sample must not be negative")
	}
	cfg := sim.DefaultConfig()
	if *full {
		cfg = sim.FullConfig()
	}
	cfg.Seed = *seed
	if *sample > 0 {
		cfg.Sample = *sample
	}
	res, err := sim.Run(cfg)
	if err != nil {
		return err
	}
	res.Print(m.Stdout)
	return nil
}

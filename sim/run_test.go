package sim

import (
	"os"
	"testing"
)

// TestFullTable prints the table of docs/scale.md (make bench-sim).
func TestFullTable(t *testing.T) {
	if os.Getenv("LAZARET_SIM_FULL") == "" {
		t.Skip("LAZARET_SIM_FULL=1 runs the full simulation (make bench-sim)")
	}
	res, err := Run(FullConfig())
	if err != nil {
		t.Fatal(err)
	}
	res.Print(os.Stdout)
}

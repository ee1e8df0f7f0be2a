package sim

import (
	"bytes"
	"math"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/reconcile"
)

// within fails unless got is within frac of want.
func within(t *testing.T, what string, got, want, frac float64) {
	t.Helper()
	if math.Abs(got-want) > frac*want {
		t.Errorf("%s: model %.0f, real %.0f (more than %.0f%% apart)", what, want, got, frac*100)
	} else {
		t.Logf("%s: model %.0f, real %.0f", what, want, got)
	}
}

// TestEstimateMatchesRealSession extrapolates from a small sample to a set
// 32 times larger and compares with the real session over the whole set.
func TestEstimateMatchesRealSession(t *testing.T) {
	cfg := reconcile.DefaultConfig()
	const m, sample = 1 << 18, 1 << 13
	for _, d := range []int{0, 10, 1000} {
		est, err := Estimate(rand.New(rand.NewPCG(1, 1)), m, d, sample, cfg)
		if err != nil {
			t.Fatal(err)
		}
		real, err := Estimate(rand.New(rand.NewPCG(2, 2)), m, d, m, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if real.Found != d {
			t.Errorf("d=%d: the real session found %d differences", d, real.Found)
		}
		within(t, "bytes", real.Bytes, est.Bytes, 0.35)
		if math.Abs(real.RoundTrips-est.RoundTrips) > 1 {
			t.Errorf("d=%d: model %.0f round trips, real %.0f", d, est.RoundTrips, real.RoundTrips)
		}
	}
}

// TestItemBytesMatchesMemSet measures the heap a real MemSet of 2^17 items
// takes against the model's bytes per item.
func TestItemBytesMatchesMemSet(t *testing.T) {
	const n = 1 << 17
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	set := reconcile.NewMemSet(items(rand.New(rand.NewPCG(3, 3)), n, 30*86400))
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(set)
	got := float64(after.HeapAlloc) - float64(before.HeapAlloc)
	within(t, "set bytes", got, float64(n*ItemBytes), 0.25)
}

// TestRepairMatchesPlacement checks the repair sample against the
// placement's arithmetic: a node holds a shard of (K+M)/N of the messages,
// and each costs K shards of traffic.
func TestRepairMatchesPlacement(t *testing.T) {
	for _, n := range []int{5, 16, 64} {
		code := erasure.DefaultCode(n)
		rep := repairSample(n, 1e6, 20000, 1e5)
		frac := float64(code.Shards()) / float64(n)
		within(t, "affected", rep.Affected, 1e6*frac, 0.05)
		within(t, "traffic", rep.Traffic, 1e6*frac*1e5, 0.05)
	}
}

// TestDeterministic runs a small simulation twice with one seed.
func TestDeterministic(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Nodes, cfg.Messages, cfg.Sample, cfg.Records = []int{5, 64}, []int{1e6, 1e8}, 1<<12, 50
	var a, b bytes.Buffer
	for _, w := range []*bytes.Buffer{&a, &b} {
		res, err := Run(cfg)
		if err != nil {
			t.Fatal(err)
		}
		res.Print(w)
	}
	if a.String() != b.String() {
		t.Errorf("two runs with seed 1 differ:\n%s\n%s", a.String(), b.String())
	}
}

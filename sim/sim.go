package sim

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"time"
	"unsafe"

	"github.com/lazaret/lazaret/replicator/erasure"
	"github.com/lazaret/lazaret/replicator/reconcile"
)

// Config says what to simulate.
type Config struct {
	// Nodes and Messages are the cluster sizes and message counts of the table.
	Nodes    []int
	Messages []int
	// Diffs are the numbers of differences anti-entropy is costed at (0: in sync).
	Diffs []int
	// Sample is the most set items a real reconcile session runs over, and
	// the most ids placed for repair; larger counts are extrapolated.
	Sample int
	// Records is how many metadata records are generated and merged to
	// measure their size.
	Records int
	// Seed makes the run reproducible.
	Seed uint64
	// Model is the disk, network and mail model.
	Model Model
	// Reconcile is the session configuration (replicator's default).
	Reconcile reconcile.Config
}

// DefaultConfig is the fast run of `lazaret sim`: the full table's sizes
// with small samples.
func DefaultConfig() Config {
	return Config{
		Nodes: []int{5, 16, 64}, Messages: []int{1e6, 1e7, 1e8}, Diffs: []int{0, 10, 1000, 100000},
		Sample: 1 << 15, Records: 200, Seed: 1, Model: DefaultModel(), Reconcile: reconcile.DefaultConfig(),
	}
}

// FullConfig is `make bench-sim`: real sessions over up to 10^6 items.
func FullConfig() Config {
	c := DefaultConfig()
	c.Sample, c.Records = 1e6, 2000
	return c
}

// ItemBytes models the memory of one anti-entropy set item in a
// reconcile.MemSet: the Item (string header and 16-byte hash) and the
// 16-byte id it points to. TestItemBytesMatchesMemSet checks it against
// the heap a real MemSet takes.
const ItemBytes = int(unsafe.Sizeof(reconcile.Item{})) + 16

// Row is one line of the table.
type Row struct {
	Nodes, Messages int
	MetaBytes       float64 // metadata stored per node
	MemBytes        float64 // anti-entropy set per node
	DataBytes       float64 // shard bytes per node
	PushBytes       float64 // metadata pushed per put, whole cluster
	AE              []Session
	PartitionDiffs  float64
	Converge        time.Duration
	Repair          Repair
	RepairTime      time.Duration
	List            time.Duration
}

// Result is a whole run.
type Result struct {
	Config      Config
	RecordBytes float64 // average stored record, measured
	MergeBytes  float64 // average record moved per direction after concurrent changes, measured
	Rows        []Row
}

// Run simulates every (nodes, messages) pair of cfg.
func Run(cfg Config) (*Result, error) {
	r := rand.New(rand.NewPCG(cfg.Seed, 15))
	md := cfg.Model
	res := &Result{Config: cfg}
	total := 0
	for i, id := range ids(cfg.Records, 86400, 16) {
		code := erasure.DefaultCode(16)
		holders := make([]int, code.Shards())
		for j := range holders {
			holders[j] = 1 + (i+j)%16
		}
		n, err := recordBytes(record(r, id, 1+i%16, code.K, code.M, holders))
		if err != nil {
			return nil, err
		}
		total += n
	}
	res.RecordBytes = float64(total) / float64(cfg.Records)
	mb, err := mergeSample(r, cfg.Records, 16, 4, 2)
	if err != nil {
		return nil, err
	}
	res.MergeBytes = mb
	ae := map[[2]int]Session{}
	aeCost := func(m, d int) (Session, error) {
		if s, ok := ae[[2]int{m, d}]; ok {
			return s, nil
		}
		s, err := Estimate(r, m, d, cfg.Sample, cfg.Reconcile)
		ae[[2]int{m, d}] = s
		return s, err
	}
	for _, n := range cfg.Nodes {
		code := erasure.DefaultCode(n)
		over := float64(code.Shards()) / float64(code.K)
		for _, m := range cfg.Messages {
			M := float64(m)
			row := Row{Nodes: n, Messages: m,
				MetaBytes: M * (res.RecordBytes + md.KeyOverhead),
				MemBytes:  M * float64(ItemBytes),
				DataBytes: M * md.MessageBytes * over / float64(n),
				PushBytes: float64(n-1) * res.RecordBytes,
			}
			for _, d := range cfg.Diffs {
				s, err := aeCost(m, d)
				if err != nil {
					return nil, err
				}
				row.AE = append(row.AE, s)
			}
			// A node cut off for an hour: it missed the cluster's mail and
			// the cluster missed the mail it took in alone.
			row.PartitionDiffs = math.Round(md.MailRate(M) * 3600)
			s, err := aeCost(m, int(row.PartitionDiffs))
			if err != nil {
				return nil, err
			}
			meta := row.PartitionDiffs * res.MergeBytes
			own := row.PartitionDiffs / float64(n) * md.MessageBytes * over // its lone intake, spread by repair
			row.Converge = md.transfer(s.Bytes+meta+own, s.RoundTrips) +
				time.Duration(meta/md.DiskBandwidth*1e9)
			row.Repair = repairSample(n, m, cfg.Sample, md.MessageBytes)
			busiest := math.Max(row.Repair.MaxNodeIn, row.Repair.MaxNodeOut)
			row.RepairTime = time.Duration(busiest / math.Min(md.NetBandwidth, md.DiskBandwidth) * 1e9)
			row.List = md.ListLatency(M, res.RecordBytes)
			res.Rows = append(res.Rows, row)
		}
	}
	return res, nil
}

// Print writes the result as Markdown tables.
func (res *Result) Print(w io.Writer) {
	cfg := res.Config
	fmt.Fprintf(w, "%s\n\n", cfg.Model.Describe())
	fmt.Fprintf(w, "sampling: real reconcile sessions over at most %d items per side (larger sets: same density of differences at the sample, plus the missing tree levels, see sim.Estimate); "+
		"real rendezvous placement of at most %d ids per cluster, scaled to M; %d generated records measured (JSON, as stored) and merged; seed %d; Go %s\n\n",
		cfg.Sample, cfg.Sample, cfg.Records, cfg.Seed, runtime.Version())
	fmt.Fprintf(w, "record: %.0f bytes stored (+%.0f of keys), %.0f bytes moved per direction after concurrent changes; anti-entropy set item: %d bytes in memory\n\n",
		res.RecordBytes, cfg.Model.KeyOverhead, res.MergeBytes, ItemBytes)
	fmt.Fprintf(w, "| N | M | metadata/node | set memory/node | shards/node | metadata÷shards | push/put |")
	for _, d := range cfg.Diffs {
		if d == 0 {
			fmt.Fprintf(w, " AE in sync |")
		} else {
			fmt.Fprintf(w, " AE %d diffs |", d)
		}
	}
	fmt.Fprintf(w, " 1 h partition: diffs, converge | node death: repair traffic, busiest node, time | List |\n|")
	for range 9 + len(cfg.Diffs) {
		fmt.Fprintf(w, "---|")
	}
	fmt.Fprintln(w)
	for _, r := range res.Rows {
		fmt.Fprintf(w, "| %d | 10^%.0f | %s | %s | %s | %.2f | %s |", r.Nodes, math.Log10(float64(r.Messages)),
			size(r.MetaBytes), size(r.MemBytes), size(r.DataBytes), r.MetaBytes/r.DataBytes, size(r.PushBytes))
		for _, s := range r.AE {
			fmt.Fprintf(w, " %s / %.0f RT |", size(s.Bytes), s.RoundTrips)
		}
		fmt.Fprintf(w, " %.0f, %s | %s, %s, %s | %s |\n", r.PartitionDiffs, dur(r.Converge),
			size(r.Repair.Traffic), size(math.Max(r.Repair.MaxNodeIn, r.Repair.MaxNodeOut)), dur(r.RepairTime), dur(r.List))
	}
}

func size(b float64) string {
	switch {
	case b >= 1e12:
		return fmt.Sprintf("%.1f TB", b/1e12)
	case b >= 1e9:
		return fmt.Sprintf("%.1f GB", b/1e9)
	case b >= 1e6:
		return fmt.Sprintf("%.1f MB", b/1e6)
	case b >= 1e3:
		return fmt.Sprintf("%.1f KB", b/1e3)
	}
	return fmt.Sprintf("%.0f B", b)
}

func dur(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= time.Second:
		return fmt.Sprintf("%.1f s", d.Seconds())
	}
	return fmt.Sprintf("%.2f ms", float64(d)/1e6)
}

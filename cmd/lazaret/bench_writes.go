package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// storeWrites are the write-cost counters of the stores of one or more
// nodes (lazaret_store_* on their /metrics), summed.
type storeWrites struct {
	acked, ackedBytes, synced    float64
	vlog, l0, compaction, device float64
	deviceKnown                  bool
}

// scrapeWrites reads the counters from each node's /metrics URL and sums
// them, so that a cluster's cost per message covers every node.
func scrapeWrites(ctx context.Context, urls []string) (storeWrites, error) {
	var w storeWrites
	hc := &http.Client{Timeout: 10 * time.Second}
	for _, u := range urls {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return w, fmt.Errorf("bench --metrics %s: %w", u, err)
		}
		resp, err := hc.Do(req)
		if err != nil {
			return w, fmt.Errorf("bench --metrics: %w", err)
		}
		err = w.add(resp.Body)
		resp.Body.Close()
		if err != nil {
			return w, fmt.Errorf("bench --metrics %s: %w", u, err)
		}
	}
	return w, nil
}

// add adds the samples of one Prometheus text exposition.
func (w *storeWrites) add(r io.Reader) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		dst := map[string]*float64{
			"lazaret_store_acked_messages_total":                   &w.acked,
			"lazaret_store_acked_bytes_total":                      &w.ackedBytes,
			"lazaret_store_synced_commits_total":                   &w.synced,
			`lazaret_store_written_bytes_total{part="vlog"}`:       &w.vlog,
			`lazaret_store_written_bytes_total{part="l0"}`:         &w.l0,
			`lazaret_store_written_bytes_total{part="compaction"}`: &w.compaction,
			`lazaret_store_written_bytes_total{part="device"}`:     &w.device,
		}[name]
		if dst == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		*dst += v
		if strings.HasSuffix(name, `"device"}`) {
			w.deviceKnown = true
		}
	}
	return sc.Err()
}

// reportWrites prints what the put phase cost the stores: syncs per
// message put and bytes written per body byte put.
func reportWrites(out io.Writer, before, after storeWrites, msgs int, bodyBytes int64, nodes int) {
	d := func(a, b float64) float64 { return a - b }
	perMsg := func(v float64) float64 { return v / float64(msgs) }
	perByte := func(v float64) float64 { return v / float64(bodyBytes) }
	fmt.Fprintf(out, "store writes during put, summed over %d node(s): %.0f messages acknowledged by a store, %.2f synced commits per message put\n",
		nodes, d(after.acked, before.acked), perMsg(d(after.synced, before.synced)))
	fmt.Fprintf(out, "bytes written per body byte put: value log %.2f, memtables/WAL %.2f, compaction %.2f",
		perByte(d(after.vlog, before.vlog)), perByte(d(after.l0, before.l0)), perByte(d(after.compaction, before.compaction)))
	if after.deviceKnown {
		fmt.Fprintf(out, ", device (whole process) %.2f", perByte(d(after.device, before.device)))
	}
	fmt.Fprintln(out)
}

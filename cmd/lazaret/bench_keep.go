package main

import (
	"bufio"
	"fmt"
	"os"
	"strings"

	"github.com/lazaret/lazaret"
)

// A kept-ids file lets a later `lazaret bench get --ids FILE` read back the
// messages of an earlier `lazaret bench --keep FILE put` (for example after
// killing nodes, for degraded reads). Its first line names the seed and
// count the bodies were generated from, so that the get phase regenerates
// and checks the same bytes; then one id per line, in generation order.
const keptHeader = "# lazaret bench ids: seed %d count %d\n"

// writeKept writes the ids of the put phase to path (synced: it is the only
// record of what the node holds for the benchmark).
func writeKept(path string, seed uint64, ids []lazaret.ID) error {
	var b strings.Builder
	fmt.Fprintf(&b, keptHeader, seed, len(ids))
	for _, id := range ids {
		b.WriteString(string(id))
		b.WriteByte('\n')
	}
	if err := writeSynced(path, []byte(b.String())); err != nil {
		return fmt.Errorf("bench --keep: %w", err)
	}
	return nil
}

// readKept reads a file written by writeKept.
func readKept(path string) (seed uint64, ids []lazaret.ID, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, nil, fmt.Errorf("bench --ids: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var count int
	if !sc.Scan() {
		return 0, nil, fmt.Errorf("bench --ids %s: empty file", path)
	}
	if _, err := fmt.Sscanf(sc.Text()+"\n", keptHeader, &seed, &count); err != nil || count <= 0 {
		return 0, nil, fmt.Errorf("bench --ids %s: first line %q is not a lazaret bench header", path, sc.Text())
	}
	for sc.Scan() {
		id, err := lazaret.ParseID(strings.TrimSpace(sc.Text()))
		if err != nil {
			return 0, nil, fmt.Errorf("bench --ids %s line %d: %w", path, len(ids)+2, err)
		}
		ids = append(ids, id)
	}
	if err := sc.Err(); err != nil {
		return 0, nil, fmt.Errorf("bench --ids %s: %w", path, err)
	}
	if len(ids) != count {
		return 0, nil, fmt.Errorf("bench --ids %s: %d ids, header says %d", path, len(ids), count)
	}
	return seed, ids, nil
}

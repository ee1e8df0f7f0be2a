package daemon

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/lazaret/lazaret/replicator/member"
)

// Health is computed here and nowhere else. The node's packages report
// figures (objstore.Stats, replicator.Node's counters, membership, the
// index feeder's status); a snapshot reads them once, and:
//   - problems applies the thresholds: GET /health, the
//     lazaret_health_problems metric;
//   - statusHealth is what `lazaret status` lists: the problems, then one
//     note for each condition that is not zero but crossed no threshold.
// Each condition yields at most one line.

// problems lists what is wrong in sn by the thresholds of c, one line each,
// for GET /health, the lazaret_health_problems metric and `lazaret status`.
// An empty list means healthy.
func (c HealthConfig) problems(sn snapshot) []string {
	var p []string
	if sn.storeErr != nil {
		p = append(p, fmt.Sprintf("store unavailable: %v", sn.storeErr))
	}
	if sp := sn.space; !sp.FullSince.IsZero() {
		p = append(p, fmt.Sprintf("disk full: writes refused for %s (%s free, %s kept in reserve; %d refused since start); free space on the data file system and writes resume by themselves",
			seconds(sn.at.Sub(sp.FullSince)), humanBytes(max(sp.Free, 0)), humanBytes(sp.Reserve), sp.Refused))
	}
	if c.MinFreeDisk > 0 && sn.freeDisk >= 0 && sn.freeDisk < c.MinFreeDisk {
		p = append(p, fmt.Sprintf("free disk: %s (threshold %s)", humanBytes(sn.freeDisk), humanBytes(c.MinFreeDisk)))
	}
	if line := c.underLine(sn); line != "" {
		p = append(p, line)
	}
	if c.MaxCorruptShards >= 0 && sn.corrupt > c.MaxCorruptShards {
		p = append(p, fmt.Sprintf("corrupt shards since start: %d (threshold %d): shards that failed their checksum when read", sn.corrupt, c.MaxCorruptShards))
	}
	p = append(p, c.indexProblems(sn)...)
	if sn.clustered {
		p = append(p, c.clusterProblems(sn)...)
	}
	return p
}

// underLine reports under-protected messages past a threshold: the age
// when it is crossed, else the count; "" when neither is.
func (c HealthConfig) underLine(sn snapshot) string {
	if sn.under == 0 {
		return ""
	}
	age := sn.at.Sub(sn.underOldest)
	switch {
	case c.MaxUnderProtectedAge > 0 && age > c.MaxUnderProtectedAge:
		return fmt.Sprintf("under-protected messages: %d (oldest %s, threshold %s)", sn.under, seconds(age), seconds(c.MaxUnderProtectedAge))
	case c.MaxUnderProtected >= 0 && sn.under > c.MaxUnderProtected:
		return fmt.Sprintf("under-protected messages: %d (threshold %d)", sn.under, c.MaxUnderProtected)
	}
	return ""
}

// indexProblems reports the PostgreSQL outbox past its thresholds.
func (c HealthConfig) indexProblems(sn snapshot) []string {
	ix := sn.index
	if ix == nil {
		return nil
	}
	var p []string
	if c.MaxIndexBacklog >= 0 && ix.Backlog > c.MaxIndexBacklog {
		p = append(p, fmt.Sprintf("postgres outbox: %d changes (threshold %d)", ix.Backlog, c.MaxIndexBacklog))
	}
	if c.MaxIndexBacklogAge > 0 && ix.Backlog > 0 && ix.BacklogAge > c.MaxIndexBacklogAge {
		p = append(p, fmt.Sprintf("postgres outbox: oldest change waiting %s (threshold %s)", seconds(ix.BacklogAge), seconds(c.MaxIndexBacklogAge)))
	}
	return p
}

// clusterProblems reports failed members and stale reconciliation.
func (c HealthConfig) clusterProblems(sn snapshot) []string {
	var p, failed []string
	for _, m := range sn.members {
		if m.State == member.Failed {
			failed = append(failed, fmt.Sprintf("%d (%s)", m.Number, m.Name))
		}
	}
	if c.MaxFailedMembers >= 0 && int64(len(failed)) > c.MaxFailedMembers {
		sort.Strings(failed)
		p = append(p, fmt.Sprintf("cluster: %d of %d members failed: %s (threshold %d)", len(failed), len(sn.members), strings.Join(failed, ", "), c.MaxFailedMembers))
	}
	if r := c.reconcileProblem(sn); r != "" {
		p = append(p, r)
	}
	return p
}

// notes lists the cluster conditions of sn that are not zero but are not
// problems by the thresholds of c: worth a line in `lazaret status`, not
// a 503. A node on its own has none.
func (c HealthConfig) notes(sn snapshot) []string {
	if !sn.clustered {
		return nil
	}
	var h []string
	if sn.under > 0 && c.underLine(sn) == "" {
		h = append(h, fmt.Sprintf("%d under-protected messages (%d bytes), oldest received %s", sn.under, sn.underBytes, sn.underOldest.UTC().Format(time.RFC3339)))
	}
	if sn.corrupt > 0 && !(c.MaxCorruptShards >= 0 && sn.corrupt > c.MaxCorruptShards) {
		h = append(h, fmt.Sprintf("%d shards failed their checksum since start", sn.corrupt))
	}
	if sn.metaShort > 0 {
		h = append(h, fmt.Sprintf("%d puts acknowledged before their metadata reached enough shard holders (see the log)", sn.metaShort))
	}
	if sn.pushDropped > 0 {
		h = append(h, fmt.Sprintf("%d metadata pushes dropped (queue full)", sn.pushDropped))
	}
	if sn.repairQueue > 0 {
		h = append(h, fmt.Sprintf("%d messages wait for repair", sn.repairQueue))
	}
	for _, p := range sn.peerSyncs {
		if p.LastError != "" {
			h = append(h, fmt.Sprintf("last reconciliation with node %d failed: %s", p.Node, clip(p.LastError, 120)))
		}
	}
	return h
}

// clip shortens s to at most n bytes for a health line.
func clip(s string, n int) string {
	if len(s) > n {
		return s[:n-3] + "..."
	}
	return s
}

// seconds formats a duration as whole seconds, as the thresholds are read.
func seconds(d time.Duration) string {
	return fmt.Sprintf("%ds", int64(d.Round(time.Second)/time.Second))
}

// humanBytes formats a byte count with a binary unit.
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// reconcileProblem reports a node that has not reconciled its metadata
// with any peer for longer than MaxReconcileAge while other members are
// alive. A node that just started is given MaxReconcileAge to do so.
func (c HealthConfig) reconcileProblem(sn snapshot) string {
	if c.MaxReconcileAge <= 0 {
		return ""
	}
	alive := 0
	for _, m := range sn.members {
		if m.State == member.Alive {
			alive++
		}
	}
	if alive < 2 { // only this node
		return ""
	}
	last := time.Time{}
	for _, p := range sn.peerSyncs {
		if p.LastSuccess.After(last) {
			last = p.LastSuccess
		}
	}
	limit := c.MaxReconcileAge
	switch {
	case last.IsZero() && !sn.started.IsZero() && sn.at.Sub(sn.started) > limit:
		return fmt.Sprintf("no metadata reconciliation with any peer since start %s ago (threshold %s)", seconds(sn.at.Sub(sn.started)), seconds(limit))
	case !last.IsZero() && sn.at.Sub(last) > limit:
		return fmt.Sprintf("last metadata reconciliation %s ago (threshold %s)", seconds(sn.at.Sub(last)), seconds(limit))
	}
	return ""
}

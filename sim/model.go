// Package sim estimates how a Lazaret cluster scales (issue 15): it runs the
// real placement (replicator/erasure), reconciliation (replicator/reconcile)
// and merge (lazaret.Merge) code over simulated nodes and messages in one
// process, sampled where the message count is too large, and turns what they
// do into bytes and seconds with a stated model of disk and network.
//
// Every figure is deterministic for a seed: times come from the model, not
// from the clock of the machine running the simulation.
package sim

import (
	"fmt"
	"math"
	"time"
)

// Model is the stated model of the hardware and the mail flow.
type Model struct {
	// NetBandwidth is each node's network link, bytes per second, each way.
	NetBandwidth float64
	// RTT is the round-trip time between two nodes.
	RTT time.Duration
	// DiskBandwidth is each node's sequential disk throughput, bytes per second.
	DiskBandwidth float64
	// DiskSeek is one random read from a cold disk page (SSD).
	DiskSeek time.Duration
	// MessageBytes is the average stored body (README's mail mix: 1,000
	// messages, 224 MB).
	MessageBytes float64
	// RetentionDays is how long messages are kept: M messages arrive
	// evenly over this window, so the cluster's mail rate is M/RetentionDays.
	RetentionDays float64
	// KeyOverhead is what the store adds per record beside its JSON: the
	// time-index and outbox keys and badger's per-entry header.
	KeyOverhead float64
	// ListPage is how many records one List page returns.
	ListPage int
	// LSMFanout and LSMBaseBytes shape badger's levels: level 1 holds
	// LSMBaseBytes, each level LSMFanout times more.
	LSMFanout    float64
	LSMBaseBytes float64
	// Interval is the anti-entropy interval (replicator default 10 s):
	// each node starts one session with a random peer every Interval/2 to
	// Interval.
	Interval time.Duration
}

// DefaultModel returns the model docs/scale.md states.
func DefaultModel() Model {
	return Model{
		NetBandwidth:  125e6, // 1 Gbit/s
		RTT:           500 * time.Microsecond,
		DiskBandwidth: 500e6, // SATA SSD
		DiskSeek:      100 * time.Microsecond,
		MessageBytes:  224e3,
		RetentionDays: 30,
		KeyOverhead:   64,
		ListPage:      50,
		LSMFanout:     10,
		LSMBaseBytes:  64 << 20,
		Interval:      10 * time.Second,
	}
}

// Describe writes the model as the lines printed above the table.
func (m Model) Describe() string {
	return fmt.Sprintf("model: network %.0f MB/s per node each way, RTT %v; disk %.0f MB/s, %v per random read; "+
		"average message %.0f KB; M messages arrive over %.0f days; %.0f bytes of keys per record; "+
		"List page %d; badger levels x%.0f from %.0f MB; anti-entropy every %v",
		m.NetBandwidth/1e6, m.RTT, m.DiskBandwidth/1e6, m.DiskSeek, m.MessageBytes/1e3, m.RetentionDays,
		m.KeyOverhead, m.ListPage, m.LSMFanout, m.LSMBaseBytes/(1<<20), m.Interval)
}

// MailRate returns the cluster's messages per second for m messages kept.
func (m Model) MailRate(messages float64) float64 {
	return messages / (m.RetentionDays * 86400)
}

// transfer returns the time to move bytes over the network in rtts round trips.
func (m Model) transfer(bytes, rtts float64) time.Duration {
	return time.Duration(rtts*float64(m.RTT) + bytes/m.NetBandwidth*1e9)
}

// ListLatency models a List page served from a node's own store: the
// newest-first time index is read cold, one random read per badger level to
// find the start, then the page's records sequentially.
func (m Model) ListLatency(messages, recordBytes float64) time.Duration {
	total := messages * (recordBytes + m.KeyOverhead)
	levels := 1.0
	if total > m.LSMBaseBytes {
		levels += math.Ceil(math.Log(total/m.LSMBaseBytes) / math.Log(m.LSMFanout))
	}
	page := float64(m.ListPage) * (recordBytes + m.KeyOverhead)
	return time.Duration((levels+1)*float64(m.DiskSeek) + page/m.DiskBandwidth*1e9)
}

package daemon

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/lazaret/lazaret/objstore"
)

// writeCollector exports what the store's writes cost (issue 13): divide
// the sync and byte counters by lazaret_store_acked_messages_total or
// lazaret_store_acked_bytes_total for the cost per message or per byte.
type writeCollector struct {
	store                              interface{ WriteStats() objstore.WriteStats }
	acked, ackedBytes, synced, written *prometheus.Desc
}

func newWriteCollector(store interface{ WriteStats() objstore.WriteStats }) *writeCollector {
	return &writeCollector{
		store:      store,
		acked:      prometheus.NewDesc("lazaret_store_acked_messages_total", "Messages whose metadata and shards this node's store committed (acknowledged), since it opened.", nil, nil),
		ackedBytes: prometheus.NewDesc("lazaret_store_acked_bytes_total", "Body bytes of the messages acknowledged by this node's store, since it opened.", nil, nil),
		synced:     prometheus.NewDesc("lazaret_store_synced_commits_total", "Durable (synced) badger transactions the store committed since it opened: each one syncs the write-ahead log and shares a value-log sync.", nil, nil),
		written:    prometheus.NewDesc("lazaret_store_written_bytes_total", "Bytes written since the store opened: by badger to its value log (vlog), memtables and WAL (l0) and by compaction, and by the whole process to the device (device, /proc/self/io).", []string{"part"}, nil),
	}
}

// Describe sends every descriptor.
func (c *writeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.acked, c.ackedBytes, c.synced, c.written} {
		ch <- d
	}
}

// Collect reads the store's counters.
func (c *writeCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.store.WriteStats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(c.acked, st.AckedMessages)
	counter(c.ackedBytes, st.AckedBytes)
	counter(c.synced, st.SyncedCommits)
	counter(c.written, st.VlogBytes, "vlog")
	counter(c.written, st.L0Bytes, "l0")
	counter(c.written, st.CompactionBytes, "compaction")
	if st.DeviceBytes >= 0 {
		counter(c.written, st.DeviceBytes, "device")
	}
}

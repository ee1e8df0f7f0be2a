package sim

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/replicator/reconcile"
)

// epoch is the first second of the simulated retention window.
const epoch = 1_780_000_000

// ids returns n 16-character ids issued evenly over span seconds by nodes
// nodes, in key order (ids sort by issue time).
func ids(n int, span int64, nodes int) []string {
	out := make([]string, n)
	seq := 0
	last := int64(-1)
	for i := range n {
		sec := int64(epoch) + int64(float64(i)*float64(span)/float64(n))
		if sec != last {
			seq, last = 0, sec
		}
		id, err := lazaret.MakeID(lazaret.IDFormatExim16, sec, uint64(seq/nodes), 1+seq%nodes)
		if err != nil {
			panic(err) // the window and node counts of the simulation always fit
		}
		out[i] = string(id)
		seq++
	}
	return out
}

// record returns a plausible quarantined message's metadata for id, placed
// on holders with code k+m: the fields a scanner fills and one history event.
func record(r *rand.Rand, id string, node, k, m int, holders []int) *lazaret.Metadata {
	word := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteByte(byte('a' + r.IntN(26)))
		}
		return b.String()
	}
	at := time.Unix(epoch+r.Int64N(86400), 0).UTC()
	md := &lazaret.Metadata{
		ID: lazaret.ID(id), Node: node, Received: at,
		Sender:    word(8) + "@" + word(10) + ".com",
		ClientIP:  fmt.Sprintf("203.0.113.%d", r.IntN(256)),
		Helo:      "mail." + word(9) + ".net",
		From:      "\"" + word(6) + " " + word(8) + "\" <" + word(7) + "@" + word(9) + ".com>",
		Subject:   word(5) + " " + word(9) + " " + word(4) + " " + word(11) + " " + word(6),
		Date:      at.Add(-time.Minute),
		MessageID: "<" + word(20) + "@" + word(10) + ".com>",
		Size:      int64(2000 + r.IntN(200000)),
		Verdict: lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 5 + float64(r.IntN(200))/10, Scanner: "spamassassin",
			Report: "BAYES_99,HTML_MESSAGE,RCVD_IN_SBL,URIBL_BLACK,DKIM_INVALID"},
		Placement: lazaret.Placement{K: k, M: m, ChunkSize: 1 << 20},
		History:   []lazaret.Event{{Time: at, Actor: "smtp", Action: "quarantine", Node: node}},
		Version:   lazaret.Version{Wall: at.UnixNano(), Node: node},
	}
	for range 1 + r.IntN(3) {
		md.Recipients = append(md.Recipients, word(6)+"@example.com")
	}
	md.To = md.Recipients[0]
	md.SHA256 = sha256.Sum256([]byte(id))
	for i, h := range holders {
		md.Placement.Shards = append(md.Placement.Shards, lazaret.ShardLoc{Index: i, Node: h, Size: md.Size / int64(k), SHA256: sha256.Sum256([]byte(fmt.Sprint(id, i)))})
	}
	return md
}

// recordBytes returns the stored size of md: its JSON, as objstore writes it.
func recordBytes(md *lazaret.Metadata) (int, error) {
	b, err := json.Marshal(md)
	if err != nil {
		return 0, fmt.Errorf("sim: encoding %s: %w", md.ID, err)
	}
	return len(b), nil
}

// mergeSample makes n records changed concurrently on two sides of a
// partition (one side releases, the other learns), merges them with
// lazaret.Merge in both orders, and checks the replicas converge. It returns
// the average bytes a record moves per direction.
func mergeSample(r *rand.Rand, n, nodes, k, m int) (float64, error) {
	total := 0
	for i, id := range ids(n, 86400, nodes) {
		a := record(r, id, 1+i%nodes, k, m, []int{1, 2, 3})
		b := a.Clone()
		a.State = lazaret.StateReleased
		a.History = append(a.History, lazaret.Event{Time: a.Received.Add(time.Hour), Actor: "web:alice", Action: "release", Node: 1})
		a.Version = lazaret.Version{Wall: a.Received.Add(time.Hour).UnixNano(), Node: 1}
		b.LearnedAs = lazaret.LearnSpam
		b.History = append(b.History, lazaret.Event{Time: a.Received.Add(time.Hour), Actor: "web:bob", Action: "learn", Detail: "spam", Node: 2})
		b.Version = lazaret.Version{Wall: a.Received.Add(time.Hour).UnixNano(), Node: 2}
		ab, ba := lazaret.Merge(a, b), lazaret.Merge(b, a)
		ia, err := reconcile.MetadataItem(ab)
		if err != nil {
			return 0, err
		}
		ib, err := reconcile.MetadataItem(ba)
		if err != nil {
			return 0, err
		}
		if ia.Hash != ib.Hash {
			return 0, fmt.Errorf("sim: merge of %s does not converge", id)
		}
		na, err := recordBytes(a)
		if err != nil {
			return 0, err
		}
		nb, err := recordBytes(b)
		if err != nil {
			return 0, err
		}
		total += na + nb
	}
	return float64(total) / float64(2*n), nil
}

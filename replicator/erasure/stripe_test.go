package erasure

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"testing"

	"pgregory.net/rapid"

	"github.com/lazaret/lazaret"
)

// encodeMem erasure-codes body into in-memory shards and their locations.
func encodeMem(t *rapid.T, cs *Codecs, c Code, chunk int, body []byte) ([][]byte, []lazaret.ShardLoc) {
	enc, err := cs.Get(c)
	if err != nil {
		t.Fatal(err)
	}
	shards := make([]bytes.Buffer, c.Shards())
	size, err := EncodeStripes(enc, c, chunk, bytes.NewReader(body), func(pieces [][]byte) error {
		for i, p := range pieces {
			shards[i].Write(p)
		}
		return nil
	})
	if err != nil || size != int64(len(body)) {
		t.Fatalf("encode: %d bytes, %v", size, err)
	}
	lay := stripeLayout{k: c.K, chunk: chunk, size: size}
	out := make([][]byte, c.Shards())
	locs := make([]lazaret.ShardLoc, c.Shards())
	for i := range shards {
		out[i] = shards[i].Bytes()
		if int64(len(out[i])) != lay.shardSize() {
			t.Fatalf("shard %d has %d bytes, layout says %d", i, len(out[i]), lay.shardSize())
		}
		locs[i] = lazaret.ShardLoc{Index: i, Node: i + 1, Size: int64(len(out[i])), SHA256: sha256.Sum256(out[i])}
	}
	return out, locs
}

// crcReader fails with ErrCorrupt on reaching byte bad, as objstore's
// chunk CRC does before handing out a corrupt chunk.
type crcReader struct {
	r   io.Reader
	pos int64
	bad int64
}

func (c *crcReader) Read(p []byte) (int, error) {
	if c.pos >= c.bad {
		return 0, fmt.Errorf("chunk at %d: %w", c.bad, lazaret.ErrCorrupt)
	}
	if rest := c.bad - c.pos; int64(len(p)) > rest {
		p = p[:rest]
	}
	n, err := c.r.Read(p)
	c.pos += int64(n)
	return n, err
}

// TestErasureRoundTrip: any ≤ m erased shards, plus shards failing their
// checksums (caught by a chunk CRC mid-way, or by the SHA-256 of a
// single-stripe shard), still give the body back byte for byte, and every
// failing shard is reported; more failures than m give an error, never
// wrong bytes.
func TestErasureRoundTrip(t *testing.T) {
	cs := &Codecs{}
	rapid.Check(t, func(t *rapid.T) {
		c := Code{K: rapid.IntRange(1, 6).Draw(t, "k"), M: rapid.IntRange(0, 3).Draw(t, "m")}
		chunk := rapid.SampledFrom([]int{1, 7, 64, 4096}).Draw(t, "chunk")
		body := rapid.SliceOfN(rapid.Byte(), 1, 20000).Draw(t, "body")
		shards, locs := encodeMem(t, cs, c, chunk, body)
		lay := stripeLayout{k: c.K, chunk: chunk, size: int64(len(body))}

		// Fail up to m+1 shards: erased, CRC failure mid-way, or (single
		// stripe only) wrong bytes that only the SHA-256 catches.
		fails := rapid.IntRange(0, c.M+1).Draw(t, "fails")
		perm := rapid.Permutation(locs).Draw(t, "order")
		kind := map[int]string{}
		for _, l := range perm[:fails] {
			kinds := []string{"erased", "crc"}
			if lay.stripes() == 1 {
				kinds = append(kinds, "flip")
			}
			kind[l.Index] = rapid.SampledFrom(kinds).Draw(t, "kind")
		}
		open := func(_ context.Context, l lazaret.ShardLoc) (io.ReadCloser, error) {
			b := shards[l.Index]
			switch kind[l.Index] {
			case "erased":
				return nil, fmt.Errorf("%w: node down", lazaret.ErrUnavailable)
			case "crc":
				return io.NopCloser(&crcReader{r: bytes.NewReader(b), bad: int64(len(b)) / 2}), nil
			case "flip":
				x := bytes.Clone(b)
				x[len(x)/2] ^= 0x40
				return io.NopCloser(bytes.NewReader(x)), nil
			}
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		reported := map[int]bool{}
		fail := func(l lazaret.ShardLoc, err error, corrupt bool) {
			reported[l.Index] = true
			if corrupt != (kind[l.Index] != "erased") {
				t.Fatalf("shard %d (%s) reported corrupt=%v: %v", l.Index, kind[l.Index], corrupt, err)
			}
		}
		enc, _ := cs.Get(c)
		pl := lazaret.Placement{K: c.K, M: c.M, ChunkSize: chunk, Shards: locs}
		r := NewStripeReader(context.Background(), "id", pl, int64(len(body)), sha256.Sum256(body), enc, perm, open, fail)
		got, err := io.ReadAll(r)
		r.Close()
		if fails > c.M {
			if err == nil {
				t.Fatalf("%d of %d shards failing: read succeeded", fails, c.Shards())
			}
			if !errors.Is(err, lazaret.ErrUnavailable) && !errors.Is(err, lazaret.ErrCorrupt) {
				t.Fatalf("read error %v matches neither ErrUnavailable nor ErrCorrupt", err)
			}
			return
		}
		if err != nil {
			t.Fatalf("%v with %d failing shards %v: %v", c, fails, kind, err)
		}
		if !bytes.Equal(got, body) {
			t.Fatalf("%v: read %d bytes that differ from the %d encoded", c, len(got), len(body))
		}
		for i := range kind {
			// A failing shard is reported if it was tried at all; it is
			// tried when it comes before the K-th healthy one.
			tried := false
			healthy := 0
			for _, l := range perm {
				if l.Index == i {
					tried = true
					break
				}
				if kind[l.Index] == "" {
					healthy++
				}
				if healthy == c.K {
					break
				}
			}
			if tried && !reported[i] {
				t.Fatalf("shard %d (%s) failed silently", i, kind[i])
			}
		}
	})
}

func TestStripeLayout(t *testing.T) {
	for _, c := range []struct {
		k, chunk      int
		size, stripes int64
		shard         int64
	}{
		{3, 4, 1, 1, 1}, {3, 4, 12, 1, 4}, {3, 4, 13, 2, 5}, {3, 4, 24, 2, 8}, {1, 10, 25, 3, 25}, {4, 256 << 10, 10000, 1, 2500},
	} {
		l := stripeLayout{k: c.k, chunk: c.chunk, size: c.size}
		if l.stripes() != c.stripes || l.shardSize() != c.shard {
			t.Errorf("%+v: %d stripes, shards of %d; want %d, %d", c, l.stripes(), l.shardSize(), c.stripes, c.shard)
		}
	}
}

package s3api_test

import (
	"context"
	"encoding/xml"
	"math/rand/v2"
	"net/url"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

type listResult struct {
	IsTruncated           bool
	NextContinuationToken string
	NextMarker            string
	EncodingType          string
	KeyCount              int
	Contents              []struct{ Key, ETag string }
	CommonPrefixes        []struct{ Prefix string }
}

func (e *env) listPage(t *testing.T, query url.Values) listResult {
	t.Helper()
	resp, b := e.do(e.signed("GET", "/quarantine?"+query.Encode(), nil, roKey, time.Now()))
	if resp.StatusCode != 200 {
		t.Fatalf("list %v: %d %s", query, resp.StatusCode, b)
	}
	var r listResult
	if err := xml.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// listAll pages through a listing (v2, or v1 when v1 is set) and returns
// keys and common prefixes in the order received.
func (e *env) listAll(t *testing.T, v1 bool, base url.Values) (keys, prefixes []string) {
	t.Helper()
	q := url.Values{}
	for k, v := range base {
		q[k] = v
	}
	if !v1 {
		q.Set("list-type", "2")
	}
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("listing does not end")
		}
		r := e.listPage(t, q)
		for _, c := range r.Contents {
			keys = append(keys, c.Key)
		}
		for _, p := range r.CommonPrefixes {
			prefixes = append(prefixes, p.Prefix)
		}
		if !r.IsTruncated {
			return keys, prefixes
		}
		if v1 {
			if r.NextMarker == "" {
				t.Fatal("truncated v1 page without NextMarker")
			}
			q.Set("marker", r.NextMarker)
		} else {
			q.Set("continuation-token", r.NextContinuationToken)
		}
	}
}

// TestListing pages through messages received over several days with
// both list versions, delimiters, start-after and URL encoding, and while
// messages are being added.
func TestListing(t *testing.T) {
	e := newEnv(t, false, nil)
	rng := rand.New(rand.NewPCG(9, 10))
	now := time.Now().UTC()
	var want []string
	days := map[string]bool{}
	for i := range 120 {
		received := now.Add(-time.Duration(i%5)*24*time.Hour - time.Duration(rng.IntN(3600))*time.Second)
		m := e.put(mail(rng, 300, "list"), received)
		want = append(want, keyOf(m, ".eml"), keyOf(m, ".json"))
		days[m.Received.Format("2006/01/02/")] = true
	}
	sort.Strings(want)

	for _, v1 := range []bool{false, true} {
		for _, max := range []string{"1", "7", "1000"} {
			keys, _ := e.listAll(t, v1, url.Values{"max-keys": {max}})
			if !slices.Equal(keys, want) {
				t.Fatalf("v1=%v max-keys=%s: %d keys, want %d (sorted %v)", v1, max, len(keys), len(want), slices.IsSorted(keys))
			}
		}
		// Directory-style listing: years, then days of a month.
		_, ps := e.listAll(t, v1, url.Values{"delimiter": {"/"}, "max-keys": {"1"}})
		if len(ps) == 0 || ps[0] != now.Format("2006/") && ps[0] != now.AddDate(0, 0, -4).Format("2006/") {
			t.Fatalf("v1=%v root prefixes %v", v1, ps)
		}
		var allDays []string
		for _, y := range ps {
			_, months := e.listAll(t, v1, url.Values{"delimiter": {"/"}, "prefix": {y}})
			for _, mo := range months {
				_, ds := e.listAll(t, v1, url.Values{"delimiter": {"/"}, "prefix": {mo}, "max-keys": {"2"}})
				allDays = append(allDays, ds...)
			}
		}
		if len(allDays) != len(days) || !slices.IsSorted(allDays) {
			t.Fatalf("v1=%v days %v, want %d", v1, allDays, len(days))
		}
		for _, d := range allDays {
			keys, ps := e.listAll(t, v1, url.Values{"delimiter": {"/"}, "prefix": {d}})
			if len(ps) != 0 || len(keys) == 0 {
				t.Fatalf("day %s: %d keys, prefixes %v", d, len(keys), ps)
			}
		}
	}
	// start-after, and URL encoding.
	keys, _ := e.listAll(t, false, url.Values{"start-after": {want[100]}, "max-keys": {"13"}, "encoding-type": {"url"}})
	if !slices.Equal(keys, want[101:]) {
		t.Fatalf("start-after: %d keys, want %d", len(keys), len(want)-101)
	}
	if r := e.listPage(t, url.Values{"list-type": {"2"}, "encoding-type": {"url"}, "prefix": {"20"}}); r.EncodingType != "url" {
		t.Fatalf("encoding-type not echoed: %+v", r.EncodingType)
	}

	// Messages added while a listing pages: no key twice, order kept,
	// every key that existed at the start listed.
	ctx, cancel := context.WithCancel(ctxT(t))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r := rand.New(rand.NewPCG(11, 12))
		for i := 0; ctx.Err() == nil && i < 200; i++ {
			received := now.Add(-time.Duration(r.IntN(5)) * 24 * time.Hour)
			if _, err := e.node.Put(ctx, lazaret.PutRequest{Received: received}, bytesReader(mail(r, 200, "concurrent"))); err != nil && ctx.Err() == nil {
				t.Errorf("concurrent put: %v", err)
				return
			}
		}
	}()
	keys, _ = e.listAll(t, false, url.Values{"max-keys": {"5"}})
	cancel()
	wg.Wait()
	if !slices.IsSorted(keys) || len(slices.Compact(slices.Clone(keys))) != len(keys) {
		t.Fatal("listing during puts is out of order or repeats keys")
	}
	for _, k := range want {
		if _, found := slices.BinarySearch(keys, k); !found {
			t.Fatalf("key %s missing from a listing during puts", k)
		}
	}
}

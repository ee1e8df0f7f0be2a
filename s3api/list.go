package s3api

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret"
)

// Listing. Keys sort by day, then by id within a day, while
// lazaret.Quarantine.List walks messages newest first by receive time. So a
// listing reads one day at a time (List with Since/Until on that day),
// sorts its keys, and walks the days in order; a day's sorted keys are
// kept for SnapshotTTL so that the pages of one listing read each day
// once. A listing's first page always reads afresh. Continuation is by
// key (the token is the last key or common prefix returned), so pages
// neither repeat nor skip keys however messages are added meanwhile, and
// a listing that meets an unreachable store fails rather than come back
// short. Days with nothing in them cost one List call of one message;
// with a delimiter, a whole day, month or year that collapses into one
// common prefix is probed the same way without being read.

// entry is one listed object.
type entry struct {
	key  string
	size int64
	etag string
	mod  time.Time
}

type daySnapshot struct {
	entries []entry
	built   time.Time
	// sidecars are the sidecar entries by message, with the metadata
	// version and history length they were made from (a merge can add
	// history events under the same version): a re-read of the day
	// encodes only the sidecars of messages that changed.
	sidecars map[lazaret.ID]sidecarEntry
}

type sidecarEntry struct {
	version lazaret.Version
	events  int
	entry   entry
}

// dayCache keeps the sorted keys of recently read days.
type dayCache struct {
	mu   sync.Mutex
	max  int
	days map[time.Time]*daySnapshot
}

func newDayCache(max int) *dayCache {
	return &dayCache{max: max, days: map[time.Time]*daySnapshot{}}
}

func (c *dayCache) get(day time.Time) *daySnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.days[day]
}

func (c *dayCache) put(day time.Time, s *daySnapshot) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.days) >= c.max {
		var oldest time.Time
		var first = true
		for d, v := range c.days {
			if first || v.built.Before(c.days[oldest].built) {
				oldest, first = d, false
			}
		}
		delete(c.days, oldest)
	}
	c.days[day] = s
}

// readDay lists one day's messages and returns its sorted entries; prev,
// if not nil, is the day's previous snapshot.
func (s *Server) readDay(ctx context.Context, day time.Time, prev *daySnapshot) (*daySnapshot, error) {
	q := lazaret.ListQuery{Since: day, Until: day.Add(24 * time.Hour), Limit: lazaret.MaxListLimit}
	var out []entry
	sides := map[lazaret.ID]sidecarEntry{}
	for {
		page, err := s.q.List(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, m := range page.Messages {
			eml, side := keysOf(m)
			if !eml.day.Equal(day) {
				continue
			}
			se, ok := sidecarEntry{}, false
			if prev != nil {
				se, ok = prev.sidecars[m.ID]
			}
			if !ok || se.version != m.Version || se.events != len(m.History) {
				sc := sidecarOf(m)
				sum := md5.Sum(sc)
				se = sidecarEntry{m.Version, len(m.History), entry{key: side.String(), size: int64(len(sc)), etag: `"` + hex.EncodeToString(sum[:]) + `"`, mod: lastChange(m)}}
			}
			sides[m.ID] = se
			out = append(out, entry{key: eml.String(), size: m.Size, etag: etag(m), mod: m.Received}, se.entry)
		}
		if page.NextCursor == "" {
			break
		}
		q.Cursor = page.NextCursor
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return &daySnapshot{entries: out, sidecars: sides}, nil
}

func (s *Server) day(ctx context.Context, day time.Time, fresh bool) ([]entry, error) {
	prev := s.days.get(day)
	if !fresh && prev != nil && s.clock.Now().Sub(prev.built) < s.cfg.SnapshotTTL {
		return prev.entries, nil
	}
	built := s.clock.Now()
	snap, err := s.readDay(ctx, day, prev)
	if err != nil {
		return nil, err
	}
	snap.built = built
	s.days.put(day, snap)
	return snap.entries, nil
}

// anyIn reports whether a listed message was received in [from, until).
func (s *Server) anyIn(ctx context.Context, from, until time.Time) (bool, error) {
	page, err := s.q.List(ctx, lazaret.ListQuery{Since: from, Until: until, Limit: 1})
	if err != nil {
		return false, err
	}
	return len(page.Messages) > 0, nil
}

// listing is one page of results.
type listing struct {
	entries   []entry
	prefixes  []string
	truncated bool
	next      string // the last key or prefix returned, when truncated
}

// list returns up to max keys and common prefixes after key `after`.
func (s *Server) list(ctx context.Context, prefix, delim, after string, max int, fresh bool) (*listing, error) {
	out := &listing{}
	if max == 0 {
		return out, nil
	}
	st, err := s.nodeStatus(ctx)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	first := now.Add(-st.Retention).Truncate(24 * time.Hour)
	last := now.Add(48 * time.Hour).Truncate(24 * time.Hour) // clocks a little ahead
	count := 0
	// emit adds a key or common prefix; false when the page is full and
	// another result exists.
	emit := func(key string, e *entry) bool {
		if count == max {
			out.truncated = true
			return false
		}
		count++
		if e != nil {
			out.entries = append(out.entries, *e)
		} else {
			out.prefixes = append(out.prefixes, key)
		}
		out.next = key
		return true
	}
	for day := first; !day.After(last); day = day.Add(24 * time.Hour) {
		dd := dayDir(day)
		if !strings.HasPrefix(dd, prefix) && !strings.HasPrefix(prefix, dd) {
			continue
		}
		if after != "" && dd+"\xff" <= after {
			continue
		}
		if delim != "" && len(prefix) < len(dd) {
			if i := strings.Index(dd[len(prefix):], delim); i >= 0 && len(prefix)+i+len(delim) <= len(dd) {
				// Every key of this day (and of the following days with the
				// same directory prefix) collapses into one common prefix.
				cp := dd[:len(prefix)+i+len(delim)]
				end := day
				for next := day.Add(24 * time.Hour); !next.After(last) && strings.HasPrefix(dayDir(next), cp); next = next.Add(24 * time.Hour) {
					end = next
				}
				if cp > after && !strings.HasPrefix(after, cp) {
					ok, err := s.anyIn(ctx, day, end.Add(24*time.Hour))
					if err != nil {
						return nil, err
					}
					if ok && !emit(cp, nil) {
						return out, nil
					}
				}
				day = end
				continue
			}
		}
		entries, err := s.day(ctx, day, fresh)
		if err != nil {
			return nil, err
		}
		i := sort.Search(len(entries), func(i int) bool { return entries[i].key > after })
		lastCP := ""
		for ; i < len(entries); i++ {
			e := &entries[i]
			if !strings.HasPrefix(e.key, prefix) {
				continue
			}
			if delim != "" {
				if j := strings.Index(e.key[len(prefix):], delim); j >= 0 {
					cp := e.key[:len(prefix)+j+len(delim)]
					if cp == lastCP || cp <= after || strings.HasPrefix(after, cp) {
						continue
					}
					lastCP = cp
					if !emit(cp, nil) {
						return out, nil
					}
					continue
				}
			}
			if !emit(e.key, e) {
				return out, nil
			}
		}
	}
	return out, nil
}

// listParams are the parameters common to both list versions.
type listParams struct {
	prefix, delim string
	max           int
	urlEncode     bool
}

func parseListParams(r *http.Request) (listParams, error) {
	q := r.URL.Query()
	p := listParams{prefix: q.Get("prefix"), delim: q.Get("delimiter"), max: 1000}
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return p, errf(errInvalidArgument, "max-keys must be a non-negative integer")
		}
		p.max = min(n, 1000)
	}
	switch q.Get("encoding-type") {
	case "":
	case "url":
		p.urlEncode = true
	default:
		return p, errf(errInvalidArgument, "invalid encoding-type %q", q.Get("encoding-type"))
	}
	return p, nil
}

func (p listParams) enc(s string) string {
	if p.urlEncode {
		return awsEscape(s, false)
	}
	return s
}

type contentXML struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Size         int64  `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
	Owner        *owner `xml:"Owner,omitempty"`
}

type prefixXML struct {
	Prefix string `xml:"Prefix"`
}

func (p listParams) contents(l *listing, withOwner bool) ([]contentXML, []prefixXML) {
	var cs []contentXML
	for _, e := range l.entries {
		c := contentXML{Key: p.enc(e.key), LastModified: xmlTime(e.mod), ETag: e.etag, Size: e.size, StorageClass: "STANDARD"}
		if withOwner {
			o := lazaretOwner
			c.Owner = &o
		}
		cs = append(cs, c)
	}
	var ps []prefixXML
	for _, cp := range l.prefixes {
		ps = append(ps, prefixXML{p.enc(cp)})
	}
	return cs, ps
}

func (s *Server) listV2(w http.ResponseWriter, r *http.Request) error {
	p, err := parseListParams(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	startAfter, token := q.Get("start-after"), q.Get("continuation-token")
	after := startAfter
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || len(b) == 0 || b[0] != 1 {
			return errf(errInvalidArgument, "the continuation token provided is incorrect")
		}
		if t := string(b[1:]); t > after {
			after = t
		}
	}
	l, err := s.list(r.Context(), p.prefix, p.delim, after, p.max, token == "")
	if err != nil {
		return err
	}
	cs, ps := p.contents(l, q.Get("fetch-owner") == "true")
	res := struct {
		XMLName               xml.Name     `xml:"ListBucketResult"`
		NS                    string       `xml:"xmlns,attr"`
		Name                  string       `xml:"Name"`
		Prefix                string       `xml:"Prefix"`
		Delimiter             string       `xml:"Delimiter,omitempty"`
		MaxKeys               int          `xml:"MaxKeys"`
		KeyCount              int          `xml:"KeyCount"`
		IsTruncated           bool         `xml:"IsTruncated"`
		ContinuationToken     string       `xml:"ContinuationToken,omitempty"`
		NextContinuationToken string       `xml:"NextContinuationToken,omitempty"`
		StartAfter            string       `xml:"StartAfter,omitempty"`
		EncodingType          string       `xml:"EncodingType,omitempty"`
		Contents              []contentXML `xml:"Contents"`
		CommonPrefixes        []prefixXML  `xml:"CommonPrefixes"`
	}{
		NS: s3NS, Name: s.cfg.Bucket, Prefix: p.enc(p.prefix), Delimiter: p.enc(p.delim), MaxKeys: p.max,
		KeyCount: len(cs) + len(ps), IsTruncated: l.truncated, ContinuationToken: token,
		StartAfter: p.enc(startAfter), Contents: cs, CommonPrefixes: ps,
	}
	if p.urlEncode {
		res.EncodingType = "url"
	}
	if l.truncated {
		res.NextContinuationToken = base64.RawURLEncoding.EncodeToString(append([]byte{1}, l.next...))
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

func (s *Server) listV1(w http.ResponseWriter, r *http.Request) error {
	p, err := parseListParams(r)
	if err != nil {
		return err
	}
	marker := r.URL.Query().Get("marker")
	l, err := s.list(r.Context(), p.prefix, p.delim, marker, p.max, marker == "")
	if err != nil {
		return err
	}
	cs, ps := p.contents(l, true)
	res := struct {
		XMLName        xml.Name     `xml:"ListBucketResult"`
		NS             string       `xml:"xmlns,attr"`
		Name           string       `xml:"Name"`
		Prefix         string       `xml:"Prefix"`
		Marker         string       `xml:"Marker"`
		NextMarker     string       `xml:"NextMarker,omitempty"`
		Delimiter      string       `xml:"Delimiter,omitempty"`
		MaxKeys        int          `xml:"MaxKeys"`
		IsTruncated    bool         `xml:"IsTruncated"`
		EncodingType   string       `xml:"EncodingType,omitempty"`
		Contents       []contentXML `xml:"Contents"`
		CommonPrefixes []prefixXML  `xml:"CommonPrefixes"`
	}{
		NS: s3NS, Name: s.cfg.Bucket, Prefix: p.enc(p.prefix), Marker: p.enc(marker), Delimiter: p.enc(p.delim),
		MaxKeys: p.max, IsTruncated: l.truncated, Contents: cs, CommonPrefixes: ps,
	}
	if p.urlEncode {
		res.EncodingType = "url"
	}
	if l.truncated {
		res.NextMarker = p.enc(l.next)
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

package s3api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret"
)

// Uploads (readwrite keys).
//
// A restore copies a backup back: for each message its YYYY/MM/DD/<id>.eml
// and its .json sidecar, in any order, on one node (clients upload them
// concurrently). The message is recreated with lazaret.PutRequest.Restore,
// keeping its id, metadata and history:
//
//   - sidecar first: it waits in memory (PendingTTL) for its body;
//   - body first: it waits up to a second for its sidecar, then is
//     restored with what is known (the x-amz-meta-lazaret-* headers, else
//     its id, date and checksum, with an empty history), and the sidecar,
//     when it comes, replaces that metadata;
//   - a sidecar of a message already stored with the same body replaces
//     its metadata.
//
// Any other key (not YYYY/MM/DD/<id>.eml) is a new message: a body alone
// is quarantined with a new id, and appears under its own key.

// pendingSidecars holds sidecars whose body has not arrived yet.
type pendingSidecars struct {
	mu sync.Mutex
	m  map[lazaret.ID]pendingSidecar
}

type pendingSidecar struct {
	rec *lazaret.Metadata
	at  time.Time
}

// maxPending bounds the sidecars waiting for their body.
const maxPending = 100_000

func newPendingSidecars() *pendingSidecars {
	return &pendingSidecars{m: map[lazaret.ID]pendingSidecar{}}
}

func (p *pendingSidecars) add(rec *lazaret.Metadata, now time.Time, ttl time.Duration) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.m) >= maxPending {
		for id, e := range p.m {
			if now.Sub(e.at) > ttl {
				delete(p.m, id)
			}
		}
		if len(p.m) >= maxPending {
			return errf(errServiceUnavailable, "too many sidecars wait for their .eml; upload the bodies")
		}
	}
	p.m[rec.ID] = pendingSidecar{rec, now}
	return nil
}

func (p *pendingSidecars) take(id lazaret.ID, now time.Time, ttl time.Duration) *lazaret.Metadata {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.m[id]
	if !ok {
		return nil
	}
	delete(p.m, id)
	if now.Sub(e.at) > ttl {
		return nil
	}
	return e.rec
}

func (s *Server) putObject(w http.ResponseWriter, r *http.Request, a *auth, key string) error {
	if err := validKeyName(key); err != nil {
		return err
	}
	body, chk, n, err := bodyReader(r, a)
	if err != nil {
		return err
	}
	if n > s.cfg.MaxObjectSize {
		return errf(errEntityTooLarge, "the object is larger than the %d-byte limit", s.cfg.MaxObjectSize)
	}
	actor := "s3:" + a.key.Name
	k, ok := parseKey(key)
	var m *lazaret.Metadata
	switch {
	case ok && k.sidecar:
		if err := s.putSidecar(r.Context(), k, body, actor); err != nil {
			return err
		}
		w.Header().Set("ETag", `"`+hexOf(chk.md5.Sum(nil))+`"`)
		w.WriteHeader(http.StatusOK)
		return nil
	case ok:
		m, err = s.putRestoredBody(r.Context(), r.Header, k, body, actor)
	default:
		m, err = s.q.Put(r.Context(), newPutRequest(r.Header, actor), body)
	}
	if err != nil {
		return err
	}
	w.Header().Set("ETag", etag(m))
	w.WriteHeader(http.StatusOK)
	return nil
}

// newPutRequest is a new message's envelope from optional headers.
func newPutRequest(h http.Header, actor string) lazaret.PutRequest {
	req := lazaret.PutRequest{Actor: actor, Sender: h.Get(metaPrefix + "Sender")}
	if rc := h.Get(metaPrefix + "Recipients"); rc != "" {
		req.Recipients = strings.Split(rc, ",")
	}
	if v, err := lazaret.ParseVerdictKind(h.Get(metaPrefix + "Verdict")); err == nil && h.Get(metaPrefix+"Verdict") != "" {
		req.Verdict.Kind = v
		req.Verdict.Score, _ = strconv.ParseFloat(h.Get(metaPrefix+"Score"), 64)
	}
	return req
}

func (s *Server) putSidecar(ctx context.Context, k objKey, body io.Reader, actor string) error {
	raw, err := io.ReadAll(io.LimitReader(body, maxSidecar+1))
	if err != nil {
		return err
	}
	if len(raw) > maxSidecar {
		return errf(errEntityTooLarge, "a sidecar is at most %d bytes", maxSidecar)
	}
	rec, err := parseSidecar(raw)
	if err != nil {
		return err
	}
	if rec.ID != k.id || !rec.Received.UTC().Truncate(24*time.Hour).Equal(k.day) {
		return errf(errInvalidArgument, "the sidecar describes %s received %s, not %s", rec.ID, rec.Received.UTC().Format(time.DateOnly), k)
	}
	stored, err := s.q.Stat(ctx, k.id)
	switch {
	case err == nil:
		return s.restoreOnto(ctx, stored, rec, actor)
	case !errors.Is(err, lazaret.ErrNotFound):
		return err
	}
	now := s.clock.Now()
	if err := s.pending.add(rec, now, s.cfg.PendingTTL); err != nil {
		return err
	}
	// The body may have been stored meanwhile without seeing this sidecar.
	if stored, err := s.q.Stat(ctx, k.id); err == nil {
		if rec := s.pending.take(k.id, now, s.cfg.PendingTTL); rec != nil {
			return s.restoreOnto(ctx, stored, rec, actor)
		}
	}
	return nil
}

// restoreOnto applies a sidecar to a stored message with the same body.
func (s *Server) restoreOnto(ctx context.Context, stored, rec *lazaret.Metadata, actor string) error {
	if stored.SHA256 != rec.SHA256 {
		return errf(errConflict, "message %s is stored with another body than the sidecar describes", rec.ID)
	}
	_, body, err := s.q.Open(ctx, rec.ID)
	if err != nil {
		return err
	}
	defer body.Close()
	_, err = s.q.Put(ctx, lazaret.PutRequest{Restore: rec, Actor: actor}, body)
	return err
}

// putRestoredBody stores YYYY/MM/DD/<id>.eml under its id.
func (s *Server) putRestoredBody(ctx context.Context, h http.Header, k objKey, body io.Reader, actor string) (*lazaret.Metadata, error) {
	// Read the body first: without a sidecar its checksum is part of the
	// record, and a failed payload check must store nothing.
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, io.LimitReader(body, s.cfg.MaxObjectSize+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > s.cfg.MaxObjectSize {
		return nil, errf(errEntityTooLarge, "the object is larger than the %d-byte limit", s.cfg.MaxObjectSize)
	}
	data := buf.Bytes()
	now := s.clock.Now()
	rec := s.pending.take(k.id, now, s.cfg.PendingTTL)
	// Clients upload a message's two objects concurrently: give the
	// sidecar a moment, so the message is created once, complete.
	for wait := 0; rec == nil && wait < 50 && h.Get(metaPrefix+"Id") == ""; wait++ {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		rec = s.pending.take(k.id, now, s.cfg.PendingTTL)
	}
	fromSidecar := rec != nil
	if rec == nil {
		var err error
		if rec, err = metaFromHeaders(h, int64(len(data)), now, actor); err != nil {
			return nil, err
		}
	}
	if rec == nil {
		rec = bareRecord(k, data)
	}
	if rec.ID != k.id || !rec.Received.UTC().Truncate(24*time.Hour).Equal(k.day) {
		return nil, errf(errInvalidArgument, "the metadata describes %s received %s, not %s", rec.ID, rec.Received.UTC().Format(time.DateOnly), k)
	}
	m, err := s.q.Put(ctx, lazaret.PutRequest{Restore: rec, Actor: actor}, bytes.NewReader(data))
	if err != nil {
		if fromSidecar && !errors.Is(err, lazaret.ErrInvalidArgument) {
			s.pending.add(rec, now, s.cfg.PendingTTL) // a retry of the body may still use it
		}
		return nil, err
	}
	if !fromSidecar {
		// The sidecar may have arrived while the body was being stored.
		if sc := s.pending.take(k.id, now, s.cfg.PendingTTL); sc != nil {
			if m2, err := s.q.Put(ctx, lazaret.PutRequest{Restore: sc, Actor: actor}, bytes.NewReader(data)); err == nil {
				m = m2
			} else {
				return nil, err
			}
		}
	}
	return m, nil
}

// bareRecord is what a body alone under a message key says: its id, and
// its receive time (the id's time when it falls on the key's date, else
// the date's midnight). Its history is empty: histories merge as unions
// across replicas, so an event recorded now would stay beside the
// sidecar's history when that arrives.
func bareRecord(k objKey, data []byte) *lazaret.Metadata {
	received := k.id.Time().UTC()
	if !received.Truncate(24 * time.Hour).Equal(k.day) {
		received = k.day
	}
	return &lazaret.Metadata{
		ID: k.id, Node: k.id.Node(), Received: received, Size: int64(len(data)), SHA256: sha256.Sum256(data),
		Recipients: []string{}, State: lazaret.StateQuarantined,
	}
}

// deleteObjects is DeleteObjects (POST /bucket?delete).
func (s *Server) deleteObjects(w http.ResponseWriter, r *http.Request, a *auth) error {
	body, _, _, err := bodyReader(r, a)
	if err != nil {
		return err
	}
	raw, err := io.ReadAll(io.LimitReader(body, 2<<20))
	if err != nil {
		return err
	}
	var req struct {
		Quiet   bool `xml:"Quiet"`
		Objects []struct {
			Key string `xml:"Key"`
		} `xml:"Object"`
	}
	if err := xml.Unmarshal(raw, &req); err != nil || len(req.Objects) == 0 || len(req.Objects) > 1000 {
		return errf(errMalformedXML, "the XML you provided was not well-formed or did not validate (1 to 1000 objects)")
	}
	type deleted struct {
		Key string `xml:"Key"`
	}
	type failed struct {
		Key     string `xml:"Key"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	var res struct {
		XMLName xml.Name  `xml:"DeleteResult"`
		NS      string    `xml:"xmlns,attr"`
		Deleted []deleted `xml:"Deleted"`
		Errors  []failed  `xml:"Error"`
	}
	res.NS = s3NS
	for _, o := range req.Objects {
		if err := s.deleteKey(r.Context(), o.Key, a); err != nil {
			ae := toAPIError(err)
			res.Errors = append(res.Errors, failed{o.Key, ae.code, ae.msg})
		} else if !req.Quiet {
			res.Deleted = append(res.Deleted, deleted{o.Key})
		}
	}
	writeXML(w, http.StatusOK, res)
	return nil
}

package s3api

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/lazaret/lazaret"
)

// Object keys. A message is two objects under its received date (UTC):
//
//	YYYY/MM/DD/<id>.eml   the body, byte for byte
//	YYYY/MM/DD/<id>.json  the sidecar: full metadata and history
//
// Quarantined and released messages are listed; deleted (and expired)
// ones are not, and their keys answer NoSuchKey.

const (
	extEML  = ".eml"
	extJSON = ".json"
	// sidecarFormat names the sidecar's layout.
	sidecarFormat = "lazaret-backup/1"
	// maxSidecar bounds an uploaded sidecar.
	maxSidecar = 4 << 20
)

// objKey is a parsed message key.
type objKey struct {
	day     time.Time // midnight UTC of the received date
	id      lazaret.ID
	sidecar bool
}

func dayDir(t time.Time) string { return t.UTC().Format("2006/01/02/") }

func (k objKey) String() string {
	ext := extEML
	if k.sidecar {
		ext = extJSON
	}
	return dayDir(k.day) + string(k.id) + ext
}

// parseKey parses "YYYY/MM/DD/<id>.eml|.json"; ok is false for any other key.
func parseKey(key string) (objKey, bool) {
	if len(key) < 11 || key[4] != '/' || key[7] != '/' || key[10] != '/' {
		return objKey{}, false
	}
	day, err := time.Parse("2006/01/02/", key[:11])
	if err != nil || dayDir(day) != key[:11] {
		return objKey{}, false
	}
	name := key[11:]
	var k objKey
	switch {
	case strings.HasSuffix(name, extEML):
		name = strings.TrimSuffix(name, extEML)
	case strings.HasSuffix(name, extJSON):
		name, k.sidecar = strings.TrimSuffix(name, extJSON), true
	default:
		return objKey{}, false
	}
	id, err := lazaret.ParseID(name)
	if err != nil || string(id) != name {
		return objKey{}, false
	}
	k.day, k.id = day, id
	return k, true
}

func keysOf(m *lazaret.Metadata) (eml, sidecar objKey) {
	day := m.Received.UTC().Truncate(24 * time.Hour)
	return objKey{day: day, id: m.ID}, objKey{day: day, id: m.ID, sidecar: true}
}

// sidecar is the JSON document stored beside each body: every field of
// the metadata a restore needs, and nothing that belongs to one cluster
// (placement, version).
type sidecar struct {
	Format     string            `json:"format"`
	ID         lazaret.ID        `json:"id"`
	Node       int               `json:"node"`
	Received   time.Time         `json:"received"`
	Sender     string            `json:"sender"`
	Recipients []string          `json:"recipients"`
	ClientIP   string            `json:"client_ip,omitempty"`
	Helo       string            `json:"helo,omitempty"`
	From       string            `json:"from,omitempty"`
	To         string            `json:"to,omitempty"`
	Subject    string            `json:"subject,omitempty"`
	Date       time.Time         `json:"date,omitzero"`
	MessageID  string            `json:"message_id,omitempty"`
	Size       int64             `json:"size"`
	SHA256     string            `json:"sha256"`
	MD5        string            `json:"md5,omitempty"`
	Verdict    lazaret.Verdict   `json:"verdict"`
	State      lazaret.State     `json:"state"`
	LearnedAs  lazaret.LearnKind `json:"learned_as,omitempty"`
	History    []lazaret.Event   `json:"history"`
}

func sidecarOf(m *lazaret.Metadata) []byte {
	sc := sidecar{
		Format: sidecarFormat, ID: m.ID, Node: m.Node, Received: m.Received.UTC(),
		Sender: m.Sender, Recipients: m.Recipients, ClientIP: m.ClientIP, Helo: m.Helo,
		From: m.From, To: m.To, Subject: m.Subject, Date: m.Date, MessageID: m.MessageID,
		Size: m.Size, SHA256: hex.EncodeToString(m.SHA256[:]),
		Verdict: m.Verdict, State: m.State, LearnedAs: m.LearnedAs,
	}
	if m.MD5 != ([16]byte{}) {
		sc.MD5 = hex.EncodeToString(m.MD5[:])
	}
	// Times in UTC: replicas agree on the instant but not on the zone a
	// header's Date was written in, and every node must serve the same
	// bytes.
	if !sc.Date.IsZero() {
		sc.Date = sc.Date.UTC()
	}
	sc.History = make([]lazaret.Event, len(m.History))
	for i, e := range m.History {
		e.Time = e.Time.UTC()
		sc.History[i] = e
	}
	if sc.Recipients == nil {
		sc.Recipients = []string{}
	}
	b, _ := json.MarshalIndent(sc, "", "  ") // cannot fail: plain types
	return append(b, '\n')
}

// parseSidecar reads an uploaded sidecar into a restore record.
func parseSidecar(b []byte) (*lazaret.Metadata, error) {
	var sc sidecar
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return nil, errf(errInvalidArgument, "sidecar: %v", err)
	}
	if sc.Format != sidecarFormat {
		return nil, errf(errInvalidArgument, "sidecar: format %q, want %q", sc.Format, sidecarFormat)
	}
	m := &lazaret.Metadata{
		ID: sc.ID, Node: sc.Node, Received: sc.Received,
		Sender: sc.Sender, Recipients: sc.Recipients, ClientIP: sc.ClientIP, Helo: sc.Helo,
		From: sc.From, To: sc.To, Subject: sc.Subject, Date: sc.Date, MessageID: sc.MessageID,
		Size: sc.Size, Verdict: sc.Verdict, State: sc.State, LearnedAs: sc.LearnedAs, History: sc.History,
	}
	if sum, err := hex.DecodeString(sc.SHA256); err != nil || len(sum) != 32 {
		return nil, errf(errInvalidArgument, "sidecar: sha256 %q is not 64 hex digits", sc.SHA256)
	} else {
		copy(m.SHA256[:], sum)
	}
	if err := lazaret.ValidateRestore(m); err != nil {
		return nil, errf(errInvalidArgument, "sidecar: %v", err)
	}
	return m, nil
}

// etag is the quoted MD5 of the body, as S3 has for single-part objects.
// A message stored before MD5s were kept gets its SHA-256 instead: 64 hex
// digits, which clients do not mistake for an MD5.
func etag(m *lazaret.Metadata) string {
	if m.MD5 != ([16]byte{}) {
		return `"` + hex.EncodeToString(m.MD5[:]) + `"`
	}
	return `"` + hex.EncodeToString(m.SHA256[:]) + `"`
}

func md5ETag(b []byte) string {
	sum := md5.Sum(b)
	return `"` + hex.EncodeToString(sum[:]) + `"`
}

// lastChange is when a message's metadata last changed (its sidecar's
// LastModified).
func lastChange(m *lazaret.Metadata) time.Time {
	t := m.Received
	for _, e := range m.History {
		if e.Time.After(t) {
			t = e.Time
		}
	}
	return t
}

// Metadata headers: x-amz-meta-lazaret-*. Values that are not printable
// ASCII are RFC 2047 encoded, as S3 does for metadata.
const metaPrefix = "X-Amz-Meta-Lazaret-"

func metaValue(v string) string {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return mime.BEncoding.Encode("UTF-8", v)
		}
	}
	return v
}

func setMetaHeaders(h http.Header, m *lazaret.Metadata) {
	h.Set(metaPrefix+"Id", string(m.ID))
	h.Set(metaPrefix+"Node", strconv.Itoa(m.Node))
	h.Set(metaPrefix+"Received", m.Received.UTC().Format(time.RFC3339Nano))
	h.Set(metaPrefix+"Sender", metaValue(m.Sender))
	h.Set(metaPrefix+"Recipients", metaValue(strings.Join(m.Recipients, ",")))
	h.Set(metaPrefix+"Verdict", m.Verdict.Kind.String())
	h.Set(metaPrefix+"Score", strconv.FormatFloat(m.Verdict.Score, 'g', -1, 64))
	h.Set(metaPrefix+"State", m.State.String())
	h.Set(metaPrefix+"Sha256", hex.EncodeToString(m.SHA256[:]))
}

// metaFromHeaders builds a restore record from x-amz-meta-lazaret-*
// headers (no history but a "restore" event), or nil if there are none.
func metaFromHeaders(h http.Header, size int64, now time.Time, actor string) (*lazaret.Metadata, error) {
	if h.Get(metaPrefix+"Id") == "" {
		return nil, nil
	}
	var dec mime.WordDecoder
	get := func(name string) string {
		v := h.Get(metaPrefix + name)
		if d, err := dec.DecodeHeader(v); err == nil {
			return d
		}
		return v
	}
	bad := func(what string, err error) error {
		return errf(errInvalidArgument, "x-amz-meta-lazaret-%s: %v", what, err)
	}
	m := &lazaret.Metadata{ID: lazaret.ID(get("Id")), Sender: get("Sender"), Size: size}
	var err error
	if m.Node, err = strconv.Atoi(get("Node")); err != nil {
		return nil, bad("node", err)
	}
	if m.Received, err = time.Parse(time.RFC3339Nano, get("Received")); err != nil {
		return nil, bad("received", err)
	}
	if r := get("Recipients"); r != "" {
		m.Recipients = strings.Split(r, ",")
	}
	if m.Verdict.Kind, err = lazaret.ParseVerdictKind(get("Verdict")); err != nil {
		return nil, bad("verdict", err)
	}
	if s := get("Score"); s != "" {
		if m.Verdict.Score, err = strconv.ParseFloat(s, 64); err != nil {
			return nil, bad("score", err)
		}
	}
	if m.State, err = lazaret.ParseState(get("State")); err != nil {
		return nil, bad("state", err)
	}
	sum, err := hex.DecodeString(get("Sha256"))
	if err != nil || len(sum) != 32 {
		return nil, bad("sha256", fmt.Errorf("not 64 hex digits"))
	}
	copy(m.SHA256[:], sum)
	m.History = []lazaret.Event{{Time: now.UTC(), Actor: actor, Action: "restore", Detail: "from x-amz-meta headers"}}
	if err := lazaret.ValidateRestore(m); err != nil {
		return nil, errf(errInvalidArgument, "%v", err)
	}
	return m, nil
}

// getObject answers GET and HEAD of a key.
func (s *Server) getObject(w http.ResponseWriter, r *http.Request, key string) error {
	k, ok := parseKey(key)
	if !ok {
		return errf(errNoSuchKey, "the specified key does not exist")
	}
	ctx := r.Context()
	if k.sidecar {
		m, err := s.q.Stat(ctx, k.id)
		if err != nil {
			return err
		}
		if eml, _ := keysOf(m); !eml.day.Equal(k.day) {
			return errf(errNoSuchKey, "the specified key does not exist")
		}
		b := sidecarOf(m)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		return serveBytes(w, r, b, md5ETag(b), lastChange(m))
	}
	var m *lazaret.Metadata
	var body io.ReadCloser
	var err error
	if r.Method == http.MethodHead {
		m, err = s.q.Stat(ctx, k.id)
	} else {
		m, body, err = s.q.Open(ctx, k.id)
	}
	if err != nil {
		return err
	}
	if body != nil {
		defer body.Close()
	}
	if eml, _ := keysOf(m); !eml.day.Equal(k.day) {
		return errf(errNoSuchKey, "the specified key does not exist")
	}
	h := w.Header()
	h.Set("Content-Type", "message/rfc822")
	setMetaHeaders(h, m)
	// rclone reads the modification time from this header.
	h.Set("X-Amz-Meta-Mtime", strconv.FormatFloat(float64(m.Received.UnixNano())/1e9, 'f', -1, 64))
	return serveBody(w, r, m, body)
}

// conditional applies If-Match, If-Unmodified-Since, If-None-Match and
// If-Modified-Since (RFC 9110 order); done is true when it answered.
func conditional(w http.ResponseWriter, r *http.Request, tag string, mod time.Time) (bool, error) {
	mod = mod.Truncate(time.Second)
	match := func(list string) bool {
		for _, t := range strings.Split(list, ",") {
			t = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(t), "W/"))
			if t == "*" || t == tag || `"`+t+`"` == tag {
				return true
			}
		}
		return false
	}
	if v := r.Header.Get("If-Match"); v != "" {
		if !match(v) {
			return true, errf(errPreconditionFailed, "At least one of the pre-conditions you specified did not hold")
		}
	} else if v := r.Header.Get("If-Unmodified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && mod.After(t) {
			return true, errf(errPreconditionFailed, "At least one of the pre-conditions you specified did not hold")
		}
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if match(v) {
			w.WriteHeader(http.StatusNotModified)
			return true, nil
		}
	} else if v := r.Header.Get("If-Modified-Since"); v != "" {
		if t, err := http.ParseTime(v); err == nil && !mod.After(t) {
			w.WriteHeader(http.StatusNotModified)
			return true, nil
		}
	}
	return false, nil
}

// byteRange parses a single "bytes=" range against size. ok is false when
// there is no (usable) Range header; an unsatisfiable one is an error.
func byteRange(h string, size int64) (start, end int64, ok bool, err error) {
	spec, found := strings.CutPrefix(h, "bytes=")
	if !found || strings.Contains(spec, ",") {
		return 0, 0, false, nil // absent, another unit or several ranges: whole object
	}
	a, b, found := strings.Cut(strings.TrimSpace(spec), "-")
	if !found {
		return 0, 0, false, nil
	}
	unsat := errf(errInvalidRange, "the requested range is not satisfiable")
	switch {
	case a == "":
		n, perr := strconv.ParseInt(b, 10, 64)
		if perr != nil || n < 0 {
			return 0, 0, false, nil
		}
		if n == 0 || size == 0 {
			return 0, 0, false, unsat
		}
		return max(size-n, 0), size - 1, true, nil
	default:
		s, perr := strconv.ParseInt(a, 10, 64)
		if perr != nil || s < 0 {
			return 0, 0, false, nil
		}
		e := size - 1
		if b != "" {
			if e, perr = strconv.ParseInt(b, 10, 64); perr != nil || e < s {
				return 0, 0, false, nil
			}
			e = min(e, size-1)
		}
		if s >= size {
			return 0, 0, false, unsat
		}
		return s, e, true, nil
	}
}

// responseOverrides applies the response-* query parameters of (usually
// presigned) GETs.
func responseOverrides(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	for param, header := range map[string]string{
		"response-content-type": "Content-Type", "response-content-disposition": "Content-Disposition",
		"response-content-language": "Content-Language", "response-content-encoding": "Content-Encoding",
		"response-cache-control": "Cache-Control", "response-expires": "Expires",
	} {
		if v := q.Get(param); v != "" {
			w.Header().Set(header, v)
		}
	}
}

func serveBytes(w http.ResponseWriter, r *http.Request, b []byte, tag string, mod time.Time) error {
	h := w.Header()
	h.Set("ETag", tag)
	h.Set("Last-Modified", httpTime(mod))
	h.Set("Accept-Ranges", "bytes")
	if done, err := conditional(w, r, tag, mod); done {
		return err
	}
	start, end, ranged, err := byteRange(r.Header.Get("Range"), int64(len(b)))
	if err != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", len(b)))
		return err
	}
	responseOverrides(w, r)
	status := http.StatusOK
	if ranged {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, len(b)))
		b, status = b[start:end+1], http.StatusPartialContent
	}
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(b)
	}
	return nil
}

// serveBody streams a message body (nil for HEAD). A read error after the
// headers are sent aborts the connection, so the client sees a short
// response against Content-Length rather than a silently short object.
func serveBody(w http.ResponseWriter, r *http.Request, m *lazaret.Metadata, body io.Reader) error {
	h := w.Header()
	tag := etag(m)
	h.Set("ETag", tag)
	h.Set("Last-Modified", httpTime(m.Received))
	h.Set("Accept-Ranges", "bytes")
	if done, err := conditional(w, r, tag, m.Received); done {
		return err
	}
	start, end, ranged, err := byteRange(r.Header.Get("Range"), m.Size)
	if err != nil {
		h.Set("Content-Range", fmt.Sprintf("bytes */%d", m.Size))
		return err
	}
	responseOverrides(w, r)
	status, n := http.StatusOK, m.Size
	if ranged {
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, end, m.Size))
		status, n = http.StatusPartialContent, end-start+1
	} else {
		h.Set("X-Amz-Checksum-Sha256", base64.StdEncoding.EncodeToString(m.SHA256[:]))
		h.Set("X-Amz-Checksum-Type", "FULL_OBJECT")
	}
	h.Set("Content-Length", strconv.FormatInt(n, 10))
	if body == nil { // HEAD
		w.WriteHeader(status)
		return nil
	}
	if start > 0 {
		if _, err := io.CopyN(io.Discard, body, start); err != nil {
			return err // nothing sent yet: a clean error
		}
	}
	w.WriteHeader(status)
	if _, err := io.CopyN(w, body, n); err != nil {
		panic(http.ErrAbortHandler) // headers are out; cut the connection
	}
	return nil
}

// validKeyName refuses keys S3 clients should never have sent.
func validKeyName(key string) error {
	switch {
	case !utf8.ValidString(key):
		return errf(errInvalidArgument, "object key is not valid UTF-8")
	case len(key) > 1024:
		return errf(errInvalidArgument, "object key longer than 1024 bytes")
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == ".." || seg == "." {
			return errf(errInvalidArgument, "object key with a %q segment", seg)
		}
	}
	return nil
}

// deleteObject deletes a message by its .eml key. Deleting a sidecar, or a
// key that does not exist, changes nothing and succeeds, as in S3.
func (s *Server) deleteObject(w http.ResponseWriter, r *http.Request, key string, a *auth) error {
	if err := s.deleteKey(r.Context(), key, a); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) deleteKey(ctx context.Context, key string, a *auth) error {
	k, ok := parseKey(key)
	if !ok || k.sidecar {
		return nil
	}
	m, err := s.q.Stat(ctx, k.id)
	if errors.Is(err, lazaret.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if eml, _ := keysOf(m); !eml.day.Equal(k.day) {
		return nil
	}
	_, err = s.q.Delete(ctx, k.id, "s3:"+a.key.Name)
	if errors.Is(err, lazaret.ErrNotFound) {
		return nil
	}
	return err
}

func hexOf(b []byte) string { return hex.EncodeToString(b) }

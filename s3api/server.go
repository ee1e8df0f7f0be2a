package s3api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/lazaret/lazaret"
)

// Config configures the S3 API.
type Config struct {
	// Bucket is the one bucket's name.
	Bucket string
	// Region is the region clients must sign for.
	Region string
	// MaxSkew is how far a request's X-Amz-Date may be from the server's
	// clock (S3: 15 minutes).
	MaxSkew time.Duration
	// MaxObjectSize refuses larger uploads before reading them; it should
	// be the store's maximum message size.
	MaxObjectSize int64
	// SnapshotTTL is how long a continued listing may reuse the sorted
	// keys of a day it read before (a listing's first page always reads
	// afresh).
	SnapshotTTL time.Duration
	// PendingTTL is how long a restored sidecar waits for its .eml.
	PendingTTL time.Duration
}

// DefaultConfig returns bucket "quarantine" in us-east-1.
func DefaultConfig() Config {
	return Config{
		Bucket: "quarantine", Region: "us-east-1", MaxSkew: 15 * time.Minute,
		MaxObjectSize: 64 << 20, SnapshotTTL: time.Minute, PendingTTL: time.Hour,
	}
}

// Validate checks c.
func (c *Config) Validate() error {
	switch {
	case !validBucketName(c.Bucket):
		return fmt.Errorf("s3 bucket %q: 3-63 lower-case letters, digits, dots and hyphens", c.Bucket)
	case c.Region == "":
		return errors.New("s3 region: must not be empty")
	case c.MaxSkew <= 0 || c.MaxObjectSize <= 0 || c.SnapshotTTL <= 0 || c.PendingTTL <= 0:
		return errors.New("s3: max skew, max object size, snapshot and pending TTL must be positive")
	}
	return nil
}

func validBucketName(b string) bool {
	if len(b) < 3 || len(b) > 63 {
		return false
	}
	for _, c := range b {
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

// Server is the S3 API over a lazaret.Quarantine, an http.Handler.
type Server struct {
	cfg   Config
	q     lazaret.Quarantine
	keys  KeyLookup
	log   *slog.Logger
	clock lazaret.Clock

	days    *dayCache        // list.go
	pending *pendingSidecars // restore.go

	statusMu sync.Mutex
	status   *lazaret.NodeStatus
	statusAt time.Time
}

// New returns the S3 API for q, authenticating with keys.
func New(cfg Config, q lazaret.Quarantine, keys KeyLookup, log *slog.Logger, clock lazaret.Clock) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Server{
		cfg: cfg, q: q, keys: keys, log: log, clock: clock,
		days: newDayCache(4), pending: newPendingSidecars(),
	}, nil
}

// ServeHTTP authenticates, authorises and routes one request (path-style
// addressing: /bucket/key).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := newRequestID()
	w.Header().Set("X-Amz-Request-Id", reqID)
	w.Header().Set("Server", "lazaret")
	a, err := s.verify(r)
	if err == nil {
		err = s.route(w, r, a)
	}
	if err != nil {
		ae := toAPIError(err)
		if ae.status >= 500 {
			s.log.Warn("s3 request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		} else {
			s.log.Debug("s3 request refused", "method", r.Method, "path", r.URL.Path, "code", ae.code, "msg", ae.msg)
		}
		writeError(w, r, reqID, ae)
	}
}

func newRequestID() string {
	b := make([]byte, 8)
	rand.Read(b)
	return strings.ToUpper(hex.EncodeToString(b))
}

// Sub-resources this API does not implement, on buckets and objects.
var unsupported = []string{
	"acl", "policy", "versioning", "versions", "lifecycle", "cors", "tagging", "website", "logging",
	"notification", "replication", "encryption", "uploads", "uploadId", "partNumber", "restore",
	"select", "object-lock", "retention", "legal-hold", "accelerate", "requestPayment", "attributes",
	"analytics", "inventory", "metrics", "intelligent-tiering", "ownershipControls", "publicAccessBlock", "torrent",
}

func (s *Server) route(w http.ResponseWriter, r *http.Request, a *auth) error {
	path := strings.TrimPrefix(r.URL.Path, "/")
	bucket, key, _ := strings.Cut(path, "/")
	q := r.URL.Query()
	for _, sub := range unsupported {
		if q.Has(sub) {
			return errf(errNotImplemented, "%s is not implemented", sub)
		}
	}
	write := r.Method != http.MethodGet && r.Method != http.MethodHead
	if write && a.key.Role != RoleReadWrite {
		return errf(errAccessDenied, "key %s is read-only", a.key.Name)
	}
	if bucket == "" {
		if r.Method != http.MethodGet {
			return errf(errMethodNotAllowed, "only GET (ListBuckets) is allowed on /")
		}
		return s.listBuckets(w, r)
	}
	if bucket != s.cfg.Bucket {
		if r.Method == http.MethodPut && key == "" {
			return errf(errNotImplemented, "buckets cannot be created; the bucket is %q", s.cfg.Bucket)
		}
		return errf(errNoSuchBucket, "the specified bucket does not exist")
	}
	if key == "" {
		switch {
		case r.Method == http.MethodHead:
			w.Header().Set("X-Amz-Bucket-Region", s.cfg.Region)
			return nil
		case r.Method == http.MethodGet && q.Has("location"):
			return s.bucketLocation(w)
		case r.Method == http.MethodGet && q.Get("list-type") == "2":
			return s.listV2(w, r)
		case r.Method == http.MethodGet:
			return s.listV1(w, r)
		case r.Method == http.MethodPut:
			return errf(errBucketAlreadyOwnedByYou, "the bucket %q exists and is yours", s.cfg.Bucket)
		case r.Method == http.MethodPost && q.Has("delete"):
			return s.deleteObjects(w, r, a)
		}
		return errf(errNotImplemented, "%s on the bucket is not implemented", r.Method)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		return s.getObject(w, r, key)
	case http.MethodPut:
		if r.Header.Get("X-Amz-Copy-Source") != "" {
			return errf(errNotImplemented, "CopyObject is not implemented")
		}
		return s.putObject(w, r, a, key)
	case http.MethodDelete:
		return s.deleteObject(w, r, key, a)
	}
	return errf(errNotImplemented, "%s on an object is not implemented", r.Method)
}

const s3NS = "http://s3.amazonaws.com/doc/2006-03-01/"

type owner struct {
	ID          string `xml:"ID"`
	DisplayName string `xml:"DisplayName"`
}

var lazaretOwner = owner{ID: "lazaret", DisplayName: "lazaret"}

func (s *Server) listBuckets(w http.ResponseWriter, r *http.Request) error {
	type bucket struct {
		Name         string `xml:"Name"`
		CreationDate string `xml:"CreationDate"`
	}
	st, err := s.nodeStatus(r.Context())
	created := time.Unix(0, 0)
	if err == nil && !st.Started.IsZero() {
		created = st.Started
	}
	writeXML(w, http.StatusOK, struct {
		XMLName xml.Name `xml:"ListAllMyBucketsResult"`
		NS      string   `xml:"xmlns,attr"`
		Owner   owner    `xml:"Owner"`
		Buckets []bucket `xml:"Buckets>Bucket"`
	}{NS: s3NS, Owner: lazaretOwner, Buckets: []bucket{{s.cfg.Bucket, xmlTime(created)}}})
	return nil
}

func (s *Server) bucketLocation(w http.ResponseWriter) error {
	loc := s.cfg.Region
	if loc == "us-east-1" {
		loc = ""
	}
	writeXML(w, http.StatusOK, struct {
		XMLName xml.Name `xml:"LocationConstraint"`
		NS      string   `xml:"xmlns,attr"`
		Value   string   `xml:",chardata"`
	}{NS: s3NS, Value: loc})
	return nil
}

// nodeStatus is the node's status, cached for a minute (listing needs
// only the retention).
func (s *Server) nodeStatus(ctx context.Context) (*lazaret.NodeStatus, error) {
	s.statusMu.Lock()
	defer s.statusMu.Unlock()
	now := s.clock.Now()
	if s.status != nil && now.Sub(s.statusAt) < time.Minute {
		return s.status, nil
	}
	st, err := s.q.Status(ctx)
	if err != nil {
		return nil, err
	}
	s.status, s.statusAt = st, now
	return st, nil
}

func xmlTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func httpTime(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

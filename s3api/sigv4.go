package s3api

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// AWS Signature Version 4, verified on the server side. The rules
// (canonical request, string to sign, signing key) are those of the AWS
// documentation "Signature Version 4 signing process" and its S3 variants
// (no double encoding of the path, payload hash from x-amz-content-sha256).

const (
	algorithm     = "AWS4-HMAC-SHA256"
	amzDateFormat = "20060102T150405Z"
	scopeDate     = "20060102"
	// maxPresignExpiry is the longest X-Amz-Expires S3 accepts (7 days).
	maxPresignExpiry = 7 * 24 * time.Hour

	unsignedPayload         = "UNSIGNED-PAYLOAD"
	streamingSigned         = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
	streamingSignedTrailer  = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
	streamingUnsignedTraile = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
	emptySHA256             = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)

// auth is a verified request's identity and what the payload checks need.
type auth struct {
	key         Key
	amzDate     string // X-Amz-Date as sent
	scope       string // date/region/s3/aws4_request
	signingKey  []byte
	signature   string // hex; the seed of chunk signatures
	payloadHash string // x-amz-content-sha256 (or UNSIGNED-PAYLOAD for presigned)
}

// credential is the parsed Credential= value.
type credential struct {
	accessKey, date, region, service string
}

func parseCredential(s string) (credential, bool) {
	// The access key may itself contain "/" in theory; the last four
	// fields are fixed.
	parts := strings.Split(s, "/")
	if len(parts) < 5 || parts[len(parts)-1] != "aws4_request" {
		return credential{}, false
	}
	n := len(parts)
	c := credential{accessKey: strings.Join(parts[:n-4], "/"), date: parts[n-4], region: parts[n-3], service: parts[n-2]}
	if c.accessKey == "" || len(c.date) != 8 || c.region == "" {
		return credential{}, false
	}
	return c, true
}

// parseAuthHeader splits "AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...".
func parseAuthHeader(h string) (cred credential, signed []string, sig string, ok bool) {
	rest, found := strings.CutPrefix(h, algorithm+" ")
	if !found {
		return cred, nil, "", false
	}
	var haveCred bool
	for _, f := range strings.Split(rest, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(f), "=")
		if !found {
			return cred, nil, "", false
		}
		switch k {
		case "Credential":
			cred, haveCred = parseCredential(v)
		case "SignedHeaders":
			signed = strings.Split(v, ";")
		case "Signature":
			sig = v
		}
	}
	return cred, signed, sig, haveCred && len(signed) > 0 && isHex(sig, 64)
}

func isHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	_, err := hex.DecodeString(s)
	return err == nil
}

// verify authenticates r. It never reads the body; payload checks are set
// up from the returned auth (payload.go).
func (s *Server) verify(r *http.Request) (*auth, error) {
	q := r.URL.Query()
	authz := r.Header.Get("Authorization")
	switch {
	case strings.HasPrefix(authz, algorithm+" "):
		return s.verifyHeader(r, authz)
	case q.Get("X-Amz-Algorithm") == algorithm:
		return s.verifyPresigned(r, q)
	case strings.HasPrefix(authz, "AWS "), q.Has("AWSAccessKeyId"):
		return nil, errf(errNotImplemented, "Signature Version 2 is not supported; use Signature Version 4")
	case strings.HasPrefix(authz, "AWS4-ECDSA-P256-SHA256"), q.Get("X-Amz-Algorithm") != "":
		return nil, errf(errNotImplemented, "only AWS4-HMAC-SHA256 signatures are supported")
	case authz != "":
		return nil, errf(errAuthorizationHeaderMalformed, "the Authorization header is not AWS4-HMAC-SHA256")
	}
	return nil, errf(errAccessDenied, "anonymous access is not allowed: sign requests with an access key")
}

func (s *Server) verifyHeader(r *http.Request, authz string) (*auth, error) {
	cred, signed, sig, ok := parseAuthHeader(authz)
	if !ok {
		return nil, errf(errAuthorizationHeaderMalformed, "malformed Authorization header")
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return nil, errf(errAccessDenied, "missing or malformed X-Amz-Date")
	}
	a, err := s.checkScope(cred, t)
	if err != nil {
		return nil, err
	}
	if d := s.clock.Now().Sub(t); d > s.cfg.MaxSkew || -d > s.cfg.MaxSkew {
		return nil, errf(errRequestTimeTooSkewed, "the difference between the request time and the server's time is too large")
	}
	for _, need := range []string{"host", "x-amz-date", "x-amz-content-sha256"} {
		if !contains(signed, need) {
			return nil, errf(errAccessDenied, "the signature must cover the %s header", need)
		}
	}
	if err := checkUnsignedHeaders(r, signed, false); err != nil {
		return nil, err
	}
	a.amzDate = amzDate
	a.payloadHash = r.Header.Get("X-Amz-Content-Sha256")
	switch a.payloadHash {
	case unsignedPayload, streamingSigned, streamingSignedTrailer, streamingUnsignedTraile:
	default:
		if !isHex(a.payloadHash, 64) {
			if strings.HasPrefix(a.payloadHash, "STREAMING-") {
				return nil, errf(errNotImplemented, "payload signing %q is not supported", a.payloadHash)
			}
			return nil, errf(errInvalidArgument, "x-amz-content-sha256 must be a hex SHA-256 or UNSIGNED-PAYLOAD")
		}
		a.payloadHash = strings.ToLower(a.payloadHash)
	}
	if !s.signatureMatches(r, a, signed, sig, rawQueryWithout(r.URL.RawQuery, "")) {
		return nil, errf(errSignatureDoesNotMatch, "the request signature we calculated does not match the signature you provided")
	}
	a.signature = sig
	return a, nil
}

func (s *Server) verifyPresigned(r *http.Request, q url.Values) (*auth, error) {
	cred, ok := parseCredential(q.Get("X-Amz-Credential"))
	if !ok {
		return nil, errf(errAuthorizationQueryParametersError, "malformed X-Amz-Credential")
	}
	sig := q.Get("X-Amz-Signature")
	signed := strings.Split(q.Get("X-Amz-SignedHeaders"), ";")
	if !isHex(sig, 64) || q.Get("X-Amz-SignedHeaders") == "" {
		return nil, errf(errAuthorizationQueryParametersError, "missing X-Amz-Signature or X-Amz-SignedHeaders")
	}
	amzDate := q.Get("X-Amz-Date")
	t, err := time.Parse(amzDateFormat, amzDate)
	if err != nil {
		return nil, errf(errAuthorizationQueryParametersError, "malformed X-Amz-Date")
	}
	secs, err := strconv.Atoi(q.Get("X-Amz-Expires"))
	if err != nil || secs < 1 || time.Duration(secs)*time.Second > maxPresignExpiry {
		return nil, errf(errAuthorizationQueryParametersError, "X-Amz-Expires must be 1 to 604800 seconds")
	}
	a, err := s.checkScope(cred, t)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	if t.Sub(now) > s.cfg.MaxSkew {
		return nil, errf(errRequestTimeTooSkewed, "the presigned URL is not valid yet")
	}
	if now.After(t.Add(time.Duration(secs) * time.Second)) {
		return nil, errf(errAccessDenied, "request has expired")
	}
	if !contains(signed, "host") {
		return nil, errf(errAccessDenied, "the signature must cover the host header")
	}
	if err := checkUnsignedHeaders(r, signed, true); err != nil {
		return nil, err
	}
	a.amzDate = amzDate
	a.payloadHash = unsignedPayload
	if h := r.Header.Get("X-Amz-Content-Sha256"); h != "" && contains(signed, "x-amz-content-sha256") {
		a.payloadHash = h
	}
	if !s.signatureMatches(r, a, signed, sig, rawQueryWithout(r.URL.RawQuery, "X-Amz-Signature")) {
		return nil, errf(errSignatureDoesNotMatch, "the request signature we calculated does not match the signature you provided")
	}
	a.signature = sig
	return a, nil
}

// checkScope checks the credential scope against the key store, the
// configured region and the request date, and derives the signing key.
func (s *Server) checkScope(c credential, t time.Time) (*auth, error) {
	if c.service != "s3" {
		return nil, errf(errAuthorizationHeaderMalformed, "the credential scope names service %q, not s3", c.service)
	}
	if c.region != s.cfg.Region {
		e := errf(errAuthorizationHeaderMalformed, "the region %q is wrong; expecting %q", c.region, s.cfg.Region)
		e.region = s.cfg.Region
		return nil, e
	}
	if c.date != t.UTC().Format(scopeDate) {
		return nil, errf(errSignatureDoesNotMatch, "the credential date does not match X-Amz-Date")
	}
	k, ok := s.keys.Lookup(c.accessKey)
	if !ok {
		return nil, errf(errInvalidAccessKeyID, "the access key id you provided does not exist in our records")
	}
	scope := c.date + "/" + c.region + "/s3/aws4_request"
	return &auth{key: k, scope: scope, signingKey: signingKey(k.Secret, c.date, c.region)}, nil
}

func signingKey(secret, date, region string) []byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, "s3")
	return hmacSHA256(k, "aws4_request")
}

func hmacSHA256(key []byte, data string) []byte {
	h := hmac.New(sha256.New, key)
	h.Write([]byte(data))
	return h.Sum(nil)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// signatureMatches computes the signature over the request as the client
// saw it. Clients differ in how they encode the path (some send it
// escaped exactly as they signed it, others let the HTTP stack re-encode
// it), so both the path as received and the AWS encoding of the decoded
// path are tried.
func (s *Server) signatureMatches(r *http.Request, a *auth, signed []string, sig, rawQuery string) bool {
	headers := canonicalHeaders(r, signed)
	query := canonicalQuery(rawQuery)
	want, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	tried := map[string]bool{}
	for _, path := range []string{r.URL.EscapedPath(), awsEscape(r.URL.Path, false)} {
		if path == "" {
			path = "/"
		}
		if tried[path] {
			continue
		}
		tried[path] = true
		creq := r.Method + "\n" + path + "\n" + query + "\n" + headers + "\n" + strings.Join(signed, ";") + "\n" + a.payloadHash
		sts := algorithm + "\n" + a.amzDate + "\n" + a.scope + "\n" + sha256Hex([]byte(creq))
		if hmac.Equal(hmacSHA256(a.signingKey, sts), want) {
			return true
		}
	}
	return false
}

// canonicalHeaders is the signed headers, lower-case, values trimmed with
// inner runs of spaces collapsed and repeated headers joined with ",".
func canonicalHeaders(r *http.Request, signed []string) string {
	var b strings.Builder
	for _, name := range signed {
		var vals []string
		switch name {
		case "host":
			vals = []string{r.Host}
		case "content-length":
			if v := r.Header.Values("Content-Length"); len(v) > 0 {
				vals = v
			} else {
				vals = []string{strconv.FormatInt(r.ContentLength, 10)}
			}
		case "transfer-encoding":
			vals = r.TransferEncoding
		default:
			vals = r.Header.Values(name)
		}
		b.WriteString(name)
		b.WriteByte(':')
		for i, v := range vals {
			if i > 0 {
				b.WriteByte(',')
			}
			b.WriteString(strings.Join(strings.Fields(v), " "))
		}
		b.WriteByte('\n')
	}
	return b.String()
}

// canonicalQuery decodes each parameter and re-encodes it the AWS way,
// sorted by name then value.
func canonicalQuery(raw string) string {
	if raw == "" {
		return ""
	}
	type kv struct{ k, v string }
	var params []kv
	for _, p := range strings.Split(raw, "&") {
		if p == "" {
			continue
		}
		k, v, _ := strings.Cut(p, "=")
		dk, err1 := url.QueryUnescape(k)
		dv, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			dk, dv = k, v // a client sent it unescaped; sign what was sent
		}
		params = append(params, kv{awsEscape(dk, true), awsEscape(dv, true)})
	}
	sort.Slice(params, func(i, j int) bool {
		if params[i].k != params[j].k {
			return params[i].k < params[j].k
		}
		return params[i].v < params[j].v
	})
	var b strings.Builder
	for i, p := range params {
		if i > 0 {
			b.WriteByte('&')
		}
		b.WriteString(p.k)
		b.WriteByte('=')
		b.WriteString(p.v)
	}
	return b.String()
}

// rawQueryWithout drops parameter name (if not "") from a raw query.
func rawQueryWithout(raw, name string) string {
	if name == "" {
		return raw
	}
	parts := strings.Split(raw, "&")
	out := parts[:0]
	for _, p := range parts {
		k, _, _ := strings.Cut(p, "=")
		if k != name {
			out = append(out, p)
		}
	}
	return strings.Join(out, "&")
}

// awsEscape percent-encodes every byte but A-Za-z0-9-_.~ (and "/" unless
// slash is set), upper-case hex, as SigV4 and S3 URL-encoded listings do.
func awsEscape(s string, slash bool) string {
	const hexdig = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == '~':
			b.WriteByte(c)
		case c == '/' && !slash:
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hexdig[c>>4])
			b.WriteByte(hexdig[c&15])
		}
	}
	return b.String()
}

// checkUnsignedHeaders refuses headers that change what a request does
// unless the signature covers them, so that nobody can add metadata,
// checksums or a copy source to a signed request. A presigned URL carries
// no body metadata of its own, so the same rule applies to it.
func checkUnsignedHeaders(r *http.Request, signed []string, presigned bool) error {
	for name := range r.Header {
		l := strings.ToLower(name)
		risky := strings.HasPrefix(l, "x-amz-meta-") || strings.HasPrefix(l, "x-amz-checksum-") ||
			l == "x-amz-decoded-content-length" || l == "x-amz-trailer" || l == "x-amz-copy-source" ||
			(!presigned && l == "x-amz-content-sha256") || l == "content-md5"
		if risky && !contains(signed, l) {
			return errf(errAccessDenied, "header %s must be signed", l)
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

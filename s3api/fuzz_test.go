package s3api

import (
	"bufio"
	"bytes"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/lazaret/lazaret"
)

// FuzzRequest feeds arbitrary requests (method, path, query, auth headers,
// body) to the API: nothing panics, and nothing without a valid signature
// succeeds. The Quarantine is nil: any call reaching it would panic.
func FuzzRequest(f *testing.F) {
	f.Add("GET", "/quarantine", "list-type=2&prefix=2026%2F", "AWS4-HMAC-SHA256 Credential=AK/20261206/us-east-1/s3/aws4_request, SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=0000000000000000000000000000000000000000000000000000000000000000", "20261206T000000Z", "")
	f.Add("PUT", "/quarantine/2026/12/06/1xa1qZ-000000-01.eml", "", "", "", "body")
	f.Add("GET", "/quarantine/k", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20261206%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20261206T000000Z&X-Amz-Expires=60&X-Amz-SignedHeaders=host&X-Amz-Signature=00", "", "", "")
	f.Add("POST", "/quarantine", "delete", "AWS AK:sig", "", "<Delete/>")
	keys := StaticKeys{{Name: "k", AccessKey: "AK", Secret: "secret-secret-secret", Role: RoleReadWrite}}
	s, err := New(DefaultConfig(), nil, keys, slog.New(slog.DiscardHandler), lazaret.SystemClock{})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, method, path, query, authz, date, body string) {
		if !strings.HasPrefix(path, "/") || strings.ContainsAny(method+path+query, " \r\n\t") || method == "" {
			return
		}
		r, err := http.NewRequest(method, "http://lazaret"+path+"?"+query, strings.NewReader(body))
		if err != nil {
			return
		}
		r.Header.Set("Authorization", authz)
		r.Header.Set("X-Amz-Date", date)
		r.Header.Set("X-Amz-Content-Sha256", "UNSIGNED-PAYLOAD")
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		if w.Code < 400 {
			t.Fatalf("%s %s?%s with Authorization %q answered %d", method, path, query, authz, w.Code)
		}
	})
}

// FuzzCanonical checks canonicalisation and parsing helpers on arbitrary
// input: the canonical query is a fixed point, escaping leaves only
// unreserved characters, keys parse back to themselves and ranges stay
// inside the object.
func FuzzCanonical(f *testing.F) {
	f.Add("a=1&b=%20x&c&prefix=2026%2F12", "2026/12/06/1xa1qZ-000000-01.eml", "bytes=0-9", int64(100))
	f.Add("X-Amz-Signature=abc&%zz=1", "2026/02/30/x.json", "bytes=-5", int64(3))
	f.Fuzz(func(t *testing.T, raw, key, rng string, size int64) {
		c := canonicalQuery(raw)
		if c2 := canonicalQuery(c); c2 != c {
			t.Fatalf("canonicalQuery(%q) = %q, again %q", raw, c, c2)
		}
		for _, ch := range []byte(awsEscape(key, true)) {
			if !(ch == '%' || 'A' <= ch && ch <= 'Z' || 'a' <= ch && ch <= 'z' || '0' <= ch && ch <= '9' || ch == '-' || ch == '_' || ch == '.' || ch == '~') {
				t.Fatalf("awsEscape(%q) left %q", key, ch)
			}
		}
		if k, ok := parseKey(key); ok && k.String() != key {
			t.Fatalf("parseKey(%q) = %v", key, k)
		}
		if size < 0 {
			size = -size
		}
		if s, e, ok, err := byteRange(rng, size); ok && (err != nil || s < 0 || e >= size || s > e) {
			t.Fatalf("byteRange(%q, %d) = %d-%d, %v", rng, size, s, e, err)
		}
	})
}

// FuzzChunked decodes arbitrary aws-chunked bodies (unsigned, with a
// trailer): no panic, and a body that decodes cleanly has exactly the
// declared length.
func FuzzChunked(f *testing.F) {
	f.Add([]byte("5\r\nhello\r\n0\r\nx-amz-checksum-crc32:NhCmhg==\r\n\r\n"), int64(5))
	f.Add([]byte("ffffff\r\n"), int64(3))
	f.Fuzz(func(t *testing.T, body []byte, declared int64) {
		c := &checks{md5: newChecksum("x-amz-checksum-sha256"), sums: map[string]hash.Hash{"x-amz-checksum-crc32": newChecksum("x-amz-checksum-crc32")}, expected: map[string]string{}}
		cr := &chunkedReader{br: bufio.NewReaderSize(bytes.NewReader(body), 4096), a: &auth{}, c: c, trailer: true, want: declared}
		n, err := io.Copy(io.Discard, cr)
		if err == nil && n != declared {
			t.Fatalf("decoded %d bytes cleanly, declared %d", n, declared)
		}
	})
}

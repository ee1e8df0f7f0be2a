package s3api_test

import (
	"context"
	"encoding/xml"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/lazaret/lazaret/s3api"
)

func errCode(t *testing.T, body []byte) string {
	t.Helper()
	var e struct {
		Code string `xml:"Code"`
	}
	if err := xml.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	return e.Code
}

// TestAuthRefusals: every bad credential gets its S3 code and changes
// nothing.
func TestAuthRefusals(t *testing.T) {
	e := newEnv(t, false, nil)
	rng := rand.New(rand.NewPCG(5, 6))
	body := mail(rng, 2000, "refused")
	now := time.Now()
	wrongSecret := rwKey
	wrongSecret.Secret = "not-the-secret-0123456789abcdef"
	unknown := rwKey
	unknown.AccessKey = "AKUNKNOWN0000000000"
	cases := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"no auth", func() *http.Request {
			r, _ := http.NewRequest("PUT", e.srv.URL+"/quarantine/new/a.eml", strings.NewReader(string(body)))
			return r
		}, 403, "AccessDenied"},
		{"wrong secret", func() *http.Request { return e.signed("PUT", "/quarantine/new/a.eml", body, wrongSecret, now) }, 403, "SignatureDoesNotMatch"},
		{"unknown key", func() *http.Request { return e.signed("PUT", "/quarantine/new/a.eml", body, unknown, now) }, 403, "InvalidAccessKeyId"},
		{"clock skew", func() *http.Request {
			return e.signed("PUT", "/quarantine/new/a.eml", body, rwKey, now.Add(-20*time.Minute))
		}, 403, "RequestTimeTooSkewed"},
		{"read-only key", func() *http.Request { return e.signed("PUT", "/quarantine/new/a.eml", body, roKey, now) }, 403, "AccessDenied"},
		{"tampered body", func() *http.Request {
			r := e.signed("PUT", "/quarantine/new/a.eml", body, rwKey, now)
			tampered := append([]byte(nil), body...)
			tampered[len(tampered)-5] ^= 1
			r.Body = http.NoBody
			r.Body = io.NopCloser(strings.NewReader(string(tampered)))
			return r
		}, 400, "XAmzContentSHA256Mismatch"},
		{"unsigned metadata header", func() *http.Request {
			r := e.signed("PUT", "/quarantine/new/a.eml", body, rwKey, now)
			r.Header.Set("X-Amz-Meta-Lazaret-Sender", "evil@example.org")
			return r
		}, 403, "AccessDenied"},
		{"query changed after signing", func() *http.Request {
			r := e.signed("GET", "/quarantine?list-type=2", nil, rwKey, now)
			r.URL.RawQuery = "list-type=2&prefix=2026"
			return r
		}, 403, "SignatureDoesNotMatch"},
		{"wrong region", func() *http.Request {
			r, _ := http.NewRequest("GET", e.srv.URL+"/quarantine?location", nil)
			r.Header.Set("X-Amz-Content-Sha256", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
			s3Signer().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: rwKey.AccessKey, SecretAccessKey: rwKey.Secret}, r,
				"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", "s3", "eu-west-1", now)
			return r
		}, 400, "AuthorizationHeaderMalformed"},
		{"sigv2", func() *http.Request {
			r, _ := http.NewRequest("GET", e.srv.URL+"/quarantine", nil)
			r.Header.Set("Authorization", "AWS "+rwKey.AccessKey+":c2lnbmF0dXJl")
			return r
		}, 501, "NotImplemented"},
		{"expired presigned URL", func() *http.Request {
			return e.presigned("GET", "/quarantine?list-type=2", rwKey, now.Add(-2*time.Hour), time.Hour)
		}, 403, "AccessDenied"},
		{"presigned URL with a changed expiry", func() *http.Request {
			r := e.presigned("GET", "/quarantine?list-type=2", rwKey, now, time.Minute)
			q := r.URL.Query()
			q.Set("X-Amz-Expires", "604800")
			r.URL.RawQuery = q.Encode()
			return r
		}, 403, "SignatureDoesNotMatch"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, b := e.do(c.req())
			if resp.StatusCode != c.status || errCode(t, b) != c.code {
				t.Fatalf("got %d %s, want %d %s", resp.StatusCode, b, c.status, c.code)
			}
		})
	}
	if n := e.count(); n != 0 {
		t.Fatalf("%d messages stored by refused requests", n)
	}
	// The same requests, correctly signed, work.
	if resp, b := e.do(e.signed("PUT", "/quarantine/new/a.eml", body, rwKey, now)); resp.StatusCode != 200 {
		t.Fatalf("signed put: %d %s", resp.StatusCode, b)
	}
	if resp, b := e.do(e.presigned("GET", "/quarantine?list-type=2", roKey, now, time.Minute)); resp.StatusCode != 200 {
		t.Fatalf("presigned list: %d %s", resp.StatusCode, b)
	}
	if n := e.count(); n != 1 {
		t.Fatalf("%d messages, want 1", n)
	}
}

func (e *env) presigned(method, path string, k s3api.Key, at time.Time, expires time.Duration) *http.Request {
	e.t.Helper()
	r, _ := http.NewRequest(method, e.srv.URL+path, nil)
	q := r.URL.Query()
	q.Set("X-Amz-Expires", strconv.Itoa(int(expires/time.Second)))
	r.URL.RawQuery = q.Encode()
	u, _, err := s3Signer().PresignHTTP(context.Background(), aws.Credentials{AccessKeyID: k.AccessKey, SecretAccessKey: k.Secret}, r, "UNSIGNED-PAYLOAD", "s3", "us-east-1", at)
	if err != nil {
		e.t.Fatal(err)
	}
	pr, _ := http.NewRequest(method, u, nil)
	return pr
}

// TestBadRequests: odd keys, ranges and limits get clear answers.
func TestBadRequests(t *testing.T) {
	e := newEnv(t, false, func(c *s3api.Config) { c.MaxObjectSize = 100 << 10 })
	rng := rand.New(rand.NewPCG(7, 8))
	m := e.put(mail(rng, 5000, "range"), time.Time{})
	now := time.Now()
	get := func(path string, hdr map[string]string) (*http.Response, []byte) {
		r := e.signed("GET", path, nil, roKey, now)
		for k, v := range hdr {
			r.Header.Set(k, v)
		}
		return e.do(r)
	}
	key := "/quarantine/" + keyOf(m, ".eml")
	for _, c := range []struct {
		rng    string
		status int
		want   string
	}{
		{"bytes=0-9", 206, "bytes 0-9/"},
		{"bytes=-10", 206, "bytes " + strconv.Itoa(int(m.Size-10)) + "-"},
		{"bytes=100-", 206, "bytes 100-"},
		{"bytes=10-999999", 206, "bytes 10-" + strconv.Itoa(int(m.Size-1))},
		{"bytes=999999-", 416, "bytes */"},
		{"bytes=" + strconv.Itoa(int(m.Size)) + "-", 416, "bytes */"},
		{"bytes=5-1", 200, ""},
	} {
		resp, b := get(key, map[string]string{"Range": c.rng})
		if resp.StatusCode != c.status || !strings.HasPrefix(resp.Header.Get("Content-Range"), c.want) {
			t.Errorf("Range %s: %d %q %s", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), b)
		}
		if c.status == 416 && errCode(t, b) != "InvalidRange" {
			t.Errorf("Range %s: %s", c.rng, b)
		}
	}
	// Conditionals.
	resp, _ := get(key, nil)
	tag := resp.Header.Get("ETag")
	if r, _ := get(key, map[string]string{"If-None-Match": tag}); r.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", r.StatusCode)
	}
	if r, b := get(key, map[string]string{"If-Match": `"00000000000000000000000000000000"`}); r.StatusCode != 412 || errCode(t, b) != "PreconditionFailed" {
		t.Errorf("If-Match: %d %s", r.StatusCode, b)
	}
	if r, _ := get(key, map[string]string{"If-Modified-Since": httpDate(now.Add(time.Hour))}); r.StatusCode != 304 {
		t.Errorf("If-Modified-Since: %d", r.StatusCode)
	}
	// Keys that name nothing.
	for _, k := range []string{"../etc/passwd", "2026/12/06/../../x.eml", "2026/12/06/ümlaut id.eml", "with space.eml",
		"2026/13/01/" + string(m.ID) + ".eml", keyOf(m, ".txt"), strings.Replace(keyOf(m, ".eml"), "/", "-", 1)} {
		resp, b := get("/quarantine/"+awsPathEscape(k), nil)
		if resp.StatusCode != 404 || errCode(t, b) != "NoSuchKey" {
			t.Errorf("GET %q: %d %s", k, resp.StatusCode, b)
		}
	}
	// Putting to a key with ".." is refused; unicode and spaces are new messages.
	body := mail(rng, 3000, "keys")
	if resp, b := e.do(e.signed("PUT", "/quarantine/"+awsPathEscape("a/../b.eml"), body, rwKey, now)); resp.StatusCode != 400 {
		t.Errorf("PUT a/../b.eml: %d %s", resp.StatusCode, b)
	}
	for _, k := range []string{"inbox/ümlaut name.eml", "with space & plus+.eml"} {
		if resp, b := e.do(e.signed("PUT", "/quarantine/"+awsPathEscape(k), body, rwKey, now)); resp.StatusCode != 200 {
			t.Errorf("PUT %q: %d %s", k, resp.StatusCode, b)
		}
	}
	// Too large, declared or not.
	big := mail(rng, 200<<10, "big")
	if resp, b := e.do(e.signed("PUT", "/quarantine/new/big.eml", big, rwKey, now)); resp.StatusCode != 400 || errCode(t, b) != "EntityTooLarge" {
		t.Errorf("oversize put: %d %s", resp.StatusCode, b)
	}
	// max-keys beyond 1000 is capped; negative is refused.
	if resp, b := get("/quarantine?list-type=2&max-keys=1000000000", nil); resp.StatusCode != 200 || !strings.Contains(string(b), "<MaxKeys>1000</MaxKeys>") {
		t.Errorf("huge max-keys: %d %s", resp.StatusCode, b)
	}
	if resp, b := get("/quarantine?list-type=2&max-keys=-1", nil); resp.StatusCode != 400 {
		t.Errorf("negative max-keys: %d %s", resp.StatusCode, b)
	}
	if resp, b := get("/quarantine?list-type=2&continuation-token=%21%21", nil); resp.StatusCode != 400 {
		t.Errorf("bad token: %d %s", resp.StatusCode, b)
	}
	if resp, b := get("/other-bucket?list-type=2", nil); resp.StatusCode != 404 || errCode(t, b) != "NoSuchBucket" {
		t.Errorf("other bucket: %d %s", resp.StatusCode, b)
	}
	if n := e.count(); n != 3 {
		t.Errorf("%d messages, want 3", n)
	}
}

func awsPathEscape(k string) string {
	parts := strings.Split(k, "/")
	for i, p := range parts {
		parts[i] = strings.ReplaceAll(url.PathEscape(p), "+", "%2B")
	}
	return strings.Join(parts, "/")
}

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

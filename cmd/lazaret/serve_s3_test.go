package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lazaret/lazaret/internal/testcert"
)

// TestServeS3HTTPS runs `lazaret serve` with [s3] over HTTPS (a
// self-signed certificate) and a key from the config, and uses it with
// minio-go: an upload quarantines a message that is then listed and read.
func TestServeS3HTTPS(t *testing.T) {
	dir := shortDir(t)
	certFile, keyFile, certPEM := testcert.Write(t, dir)
	cfg := writeConfig(t, `[s3]
listen = "127.0.0.1:0"
cert = "`+certFile+`"
key = "`+keyFile+`"
[[s3.keys]]
name = "restore"
access_key = "AKSERVETEST00000001"
secret = "serve-test-secret-0123456789"
role = "readwrite"
`)
	n := startServe(t, filepath.Join(dir, "data"), filepath.Join(dir, "s.sock"), "--config", cfg)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; time.Sleep(20 * time.Millisecond) {
		if m := regexp.MustCompile(`S3 API on https://(\S+),`).FindStringSubmatch(n.out.String()); m != nil {
			addr = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("serve did not report the S3 API:\n%s", n.out)
		}
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	c, err := minio.New(addr, &minio.Options{
		Creds: credentials.NewStaticV4("AKSERVETEST00000001", "serve-test-secret-0123456789", ""), Secure: true, Region: "us-east-1",
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	body := []byte("From: a@example.org\r\nTo: b@example.com\r\nSubject: over https\r\n\r\nhello\r\n")
	if _, err := c.PutObject(ctx, "quarantine", "incoming/m.eml", bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		t.Fatalf("PutObject: %v", err)
	}
	var key string
	for o := range c.ListObjects(ctx, "quarantine", minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatal(o.Err)
		}
		if strings.HasSuffix(o.Key, ".eml") {
			key = o.Key
		}
	}
	obj, err := c.GetObject(ctx, "quarantine", key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(obj)
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("GetObject %q: %q %v", key, got, err)
	}
	// Plain HTTP on that port is not served.
	if resp, err := http.Get("http://" + addr + "/"); err == nil && resp.StatusCode < 400 {
		t.Fatalf("plain HTTP answered %d", resp.StatusCode)
	}
}

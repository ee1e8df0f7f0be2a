package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// TestServeS3HTTPS runs `lazaret serve` with [s3] over HTTPS (a
// self-signed certificate) and a key from the config, and uses it with
// minio-go: an upload quarantines a message that is then listed and read.
func TestServeS3HTTPS(t *testing.T) {
	dir := shortDir(t)
	certPEM, keyPEM := selfSigned(t)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, certPEM, 0o600)
	os.WriteFile(keyFile, keyPEM, 0o600)
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

func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "lazaret test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb})
}

package s3api_test

import (
	"bytes"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/minio/minio-go/v7"
	miniocreds "github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/lazaret/lazaret"
)

func minioClient(t *testing.T, e *env, k string, secret string, tlsOn bool) *minio.Client {
	t.Helper()
	c, err := minio.New(strings.TrimPrefix(strings.TrimPrefix(e.srv.URL, "http://"), "https://"), &minio.Options{
		Creds: miniocreds.NewStaticV4(k, secret, ""), Secure: tlsOn, Transport: e.srv.Client().Transport,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// awsClient has the checksum settings config.LoadDefaultConfig gives every
// SDK program since 2025 (s3.New alone leaves them unset).
func awsClient(e *env, k, secret string) *s3.Client {
	return s3.New(s3.Options{
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenSupported,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenSupported,
		Region:                     "us-east-1", BaseEndpoint: aws.String(e.srv.URL), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(k, secret, ""),
		HTTPClient:  e.srv.Client(),
	})
}

func md5hex(b []byte) string {
	s := md5.Sum(b)
	return hex.EncodeToString(s[:])
}

// TestMinioGo runs minio-go v7 with its defaults (signed aws-chunked
// uploads over HTTP, UNSIGNED-PAYLOAD over HTTPS; GetBucketLocation first).
func TestMinioGo(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			e := newEnv(t, tlsOn, nil)
			ctx := ctxT(t)
			rng := rand.New(rand.NewPCG(1, 2))
			var stored []*lazaret.Metadata
			for i := range 5 {
				stored = append(stored, e.put(mail(rng, 1000+i*40000, "minio"), time.Time{}))
			}
			c := minioClient(t, e, rwKey.AccessKey, rwKey.Secret, tlsOn)

			var keys []string
			for o := range c.ListObjects(ctx, "quarantine", minio.ListObjectsOptions{Recursive: true}) {
				if o.Err != nil {
					t.Fatalf("ListObjects: %v", o.Err)
				}
				keys = append(keys, o.Key)
			}
			if len(keys) != 2*len(stored) || !slices.IsSorted(keys) {
				t.Fatalf("listed %d keys (sorted %v), want %d: %v", len(keys), slices.IsSorted(keys), 2*len(stored), keys)
			}
			m := stored[2]
			obj, err := c.GetObject(ctx, "quarantine", keyOf(m, ".eml"), minio.GetObjectOptions{})
			if err != nil {
				t.Fatal(err)
			}
			body, err := io.ReadAll(obj)
			if err != nil {
				t.Fatalf("GetObject: %v", err)
			}
			st, _ := obj.Stat()
			if int64(len(body)) != m.Size || st.ETag != hex.EncodeToString(m.MD5[:]) || md5hex(body) != st.ETag {
				t.Fatalf("got %d bytes etag %s, want %d bytes md5 %x", len(body), st.ETag, m.Size, m.MD5)
			}
			if st.UserMetadata["Lazaret-Id"] != string(m.ID) {
				t.Errorf("user metadata %v lacks the id", st.UserMetadata)
			}

			// A range, and a presigned URL fetched without any client.
			opts := minio.GetObjectOptions{}
			opts.SetRange(10, 99)
			obj, err = c.GetObject(ctx, "quarantine", keyOf(m, ".eml"), opts)
			if err != nil {
				t.Fatal(err)
			}
			part, err := io.ReadAll(obj)
			if err != nil || !bytes.Equal(part, body[10:100]) {
				t.Fatalf("range 10-99: %d bytes, err %v", len(part), err)
			}
			u, err := c.PresignedGetObject(ctx, "quarantine", keyOf(m, ".json"), time.Minute, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := e.srv.Client().Get(u.String())
			if err != nil {
				t.Fatal(err)
			}
			side, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || !bytes.Contains(side, []byte(string(m.ID))) {
				t.Fatalf("presigned GET: %d %s", resp.StatusCode, side)
			}

			// A new message from a body alone, under any other key.
			newBody := mail(rng, 70000, "uploaded")
			info, err := c.PutObject(ctx, "quarantine", "incoming/new.eml", bytes.NewReader(newBody), int64(len(newBody)), minio.PutObjectOptions{ContentType: "message/rfc822"})
			if err != nil {
				t.Fatalf("PutObject: %v", err)
			}
			if info.ETag != md5hex(newBody) {
				t.Errorf("PutObject etag %s, want %s", info.ETag, md5hex(newBody))
			}
			if want := map[bool]string{false: "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", true: "UNSIGNED-PAYLOAD"}[tlsOn]; !e.sawPut(want) {
				t.Errorf("minio-go did not send %s: %v", want, e.seen)
			}
			if n := e.count(); n != len(stored)+1 {
				t.Fatalf("%d messages after a put, want %d", n, len(stored)+1)
			}

			// Delete with the read key is refused, with the readwrite key works.
			ro := minioClient(t, e, roKey.AccessKey, roKey.Secret, tlsOn)
			err = ro.RemoveObject(ctx, "quarantine", keyOf(m, ".eml"), minio.RemoveObjectOptions{})
			if minio.ToErrorResponse(err).Code != "AccessDenied" {
				t.Fatalf("delete with the read key: %v", err)
			}
			if err := c.RemoveObject(ctx, "quarantine", keyOf(m, ".eml"), minio.RemoveObjectOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := c.StatObject(ctx, "quarantine", keyOf(m, ".eml"), minio.StatObjectOptions{}); minio.ToErrorResponse(err).Code != "NoSuchKey" {
				t.Fatalf("stat after delete: %v", err)
			}
		})
	}
}

// TestAWSSDKv2 runs aws-sdk-go-v2 with its default checksum settings: over
// HTTPS its PutObject sends STREAMING-UNSIGNED-PAYLOAD-TRAILER with a CRC32
// trailer; GetObject validates the response checksum.
func TestAWSSDKv2(t *testing.T) {
	for _, tlsOn := range []bool{false, true} {
		t.Run(map[bool]string{false: "http", true: "https"}[tlsOn], func(t *testing.T) {
			e := newEnv(t, tlsOn, nil)
			ctx := ctxT(t)
			rng := rand.New(rand.NewPCG(3, 4))
			c := awsClient(e, rwKey.AccessKey, rwKey.Secret)

			// Restore a message from a backup: its sidecar, then its body.
			src := e.put(mail(rng, 50000, "original"), time.Now().Add(-49*time.Hour))
			body, side := e.getBoth(c, src)
			if _, err := e.node.Delete(ctx, src.ID, "test"); err != nil {
				t.Fatal(err)
			}
			e2 := newEnvNode(t, tlsOn, nil, 2)
			c2 := awsClient(e2, rwKey.AccessKey, rwKey.Secret)
			if _, err := c2.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("quarantine"), Key: aws.String(keyOf(src, ".json")), Body: bytes.NewReader(side)}); err != nil {
				t.Fatalf("PutObject sidecar: %v", err)
			}
			// Over HTTPS a body the SDK cannot seek goes as aws-chunked
			// with a checksum trailer.
			var in io.Reader = bytes.NewReader(body)
			if tlsOn {
				in = io.MultiReader(in)
			}
			out, err := c2.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("quarantine"), Key: aws.String(keyOf(src, ".eml")), Body: in, ContentLength: aws.Int64(int64(len(body)))})
			if err != nil {
				t.Fatalf("PutObject body: %v", err)
			}
			if strings.Trim(aws.ToString(out.ETag), `"`) != md5hex(body) {
				t.Errorf("etag %s, want %s", aws.ToString(out.ETag), md5hex(body))
			}
			if want := map[bool]string{false: "hex", true: "STREAMING-UNSIGNED-PAYLOAD-TRAILER"}[tlsOn]; !e2.sawPut(want) {
				t.Errorf("aws-sdk-go-v2 did not send %s: %v", want, e2.seen)
			}
			got, err := e2.node.Stat(ctx, src.ID)
			if err != nil {
				t.Fatalf("restored message: %v", err)
			}
			if got.Sender != src.Sender || !slices.Equal(got.Recipients, src.Recipients) || !got.Received.Equal(src.Received) ||
				got.Verdict != src.Verdict || got.SHA256 != src.SHA256 || got.MD5 != src.MD5 || len(got.History) != len(src.History) {
				t.Fatalf("restored %+v\nwant %+v", got, src)
			}
			body2, side2 := e2.getBoth(c2, got)
			if !bytes.Equal(body2, body) || !bytes.Equal(side2, side) {
				t.Fatalf("restored body or sidecar differs:\n%s\n%s", side2, side)
			}

			// HeadObject, ListObjectsV2 pages, DeleteObjects.
			for range 4 {
				e2.put(mail(rng, 3000, "more"), time.Time{})
			}
			h, err := c2.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("quarantine"), Key: aws.String(keyOf(got, ".eml"))})
			if err != nil || aws.ToInt64(h.ContentLength) != got.Size {
				t.Fatalf("HeadObject: %v", err)
			}
			var keys []string
			p := s3.NewListObjectsV2Paginator(c2, &s3.ListObjectsV2Input{Bucket: aws.String("quarantine"), MaxKeys: aws.Int32(3)})
			for p.HasMorePages() {
				page, err := p.NextPage(ctx)
				if err != nil {
					t.Fatalf("ListObjectsV2: %v", err)
				}
				for _, o := range page.Contents {
					keys = append(keys, aws.ToString(o.Key))
				}
			}
			if len(keys) != 10 || !slices.IsSorted(keys) {
				t.Fatalf("listed %v", keys)
			}
			del, err := c2.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("quarantine"), Delete: &s3types.Delete{
				Objects: []s3types.ObjectIdentifier{{Key: aws.String(keys[0])}, {Key: aws.String(keys[2])}},
			}})
			if err != nil || len(del.Errors) != 0 {
				t.Fatalf("DeleteObjects: %v %+v", err, del)
			}
			if n := e2.count(); n != 3 {
				t.Fatalf("%d messages after deleting 2 of 5", n)
			}

			// Not implemented operations say so.
			_, err = c2.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("quarantine"), Key: aws.String("x")})
			var apiErr interface{ ErrorCode() string }
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "NotImplemented" {
				t.Fatalf("CreateMultipartUpload: %v", err)
			}
		})
	}
}

// getBoth fetches a message's body and sidecar with the SDK (response
// checksum validation on, as by default).
func (e *env) getBoth(c *s3.Client, m *lazaret.Metadata) (body, side []byte) {
	e.t.Helper()
	for _, ext := range []string{".eml", ".json"} {
		out, err := c.GetObject(ctxT(e.t), &s3.GetObjectInput{Bucket: aws.String("quarantine"), Key: aws.String(keyOf(m, ext)), ChecksumMode: s3types.ChecksumModeEnabled})
		if err != nil {
			e.t.Fatalf("GetObject %s: %v", ext, err)
		}
		b, err := io.ReadAll(out.Body)
		out.Body.Close()
		if err != nil {
			e.t.Fatalf("GetObject %s: %v", ext, err)
		}
		if ext == ".eml" {
			body = b
		} else {
			side = b
		}
	}
	return body, side
}

package s3api

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// Payload checks. A request body is read through a reader that verifies,
// at EOF, everything the client vouched for: the signed SHA-256, each
// aws-chunked chunk signature, Content-MD5 and x-amz-checksum-* (as a
// header or a trailer). A failed check is returned as the reader's error
// instead of io.EOF, so a consumer that commits only at a clean EOF (as
// lazaret.Quarantine.Put does) stores nothing.

// maxChunkSize bounds one aws-chunked chunk (clients use 64 KiB to 8 MiB).
const maxChunkSize = 16 << 20

// crc64NVME is the CRC-64/NVME table (reflected polynomial).
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

func newChecksum(name string) hash.Hash {
	switch name {
	case "x-amz-checksum-crc32":
		return crc32.NewIEEE()
	case "x-amz-checksum-crc32c":
		return crc32.New(crc32.MakeTable(crc32.Castagnoli))
	case "x-amz-checksum-sha1":
		return sha1.New()
	case "x-amz-checksum-sha256":
		return sha256.New()
	case "x-amz-checksum-crc64nvme":
		return crc64.New(crc64NVME)
	}
	return nil
}

// checks accumulates the digests of the decoded body.
type checks struct {
	sha256Hex  string // expected hex SHA-256, or ""
	sha        hash.Hash
	md5        hash.Hash // always: the ETag of what was uploaded
	contentMD5 []byte    // expected Content-MD5, or nil
	sums       map[string]hash.Hash
	expected   map[string]string // base64 values from headers
	n          int64
}

func newChecks(r *http.Request, a *auth) (*checks, error) {
	c := &checks{md5: md5.New(), sums: map[string]hash.Hash{}, expected: map[string]string{}}
	if isHex(a.payloadHash, 64) {
		c.sha256Hex, c.sha = a.payloadHash, sha256.New()
	}
	if v := r.Header.Get("Content-Md5"); v != "" {
		b, err := base64.StdEncoding.DecodeString(v)
		if err != nil || len(b) != md5.Size {
			return nil, errf(errInvalidDigest, "the Content-MD5 you specified is not valid")
		}
		c.contentMD5 = b
	}
	for name, vals := range r.Header {
		l := strings.ToLower(name)
		if h := newChecksum(l); h != nil {
			c.sums[l], c.expected[l] = h, vals[0]
		}
	}
	if t := r.Header.Get("X-Amz-Trailer"); t != "" {
		for _, name := range strings.Split(t, ",") {
			l := strings.ToLower(strings.TrimSpace(name))
			h := newChecksum(l)
			if h == nil {
				return nil, errf(errInvalidRequest, "unsupported trailer %q", l)
			}
			c.sums[l] = h
		}
	}
	return c, nil
}

func (c *checks) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	c.md5.Write(p)
	if c.sha != nil {
		c.sha.Write(p)
	}
	for _, h := range c.sums {
		h.Write(p)
	}
	return len(p), nil
}

// verify is called at the end of the body.
func (c *checks) verify() error {
	if c.sha != nil && hex.EncodeToString(c.sha.Sum(nil)) != c.sha256Hex {
		return errf(errContentSHA256Mismatch, "the provided x-amz-content-sha256 does not match what was computed")
	}
	if c.contentMD5 != nil && !bytes.Equal(c.md5.Sum(nil), c.contentMD5) {
		return errf(errBadDigest, "the Content-MD5 you specified did not match what we received")
	}
	for name, h := range c.sums {
		want, ok := c.expected[name]
		if !ok {
			return errf(errInvalidRequest, "the trailer %s announced in x-amz-trailer was not sent", name)
		}
		if base64.StdEncoding.EncodeToString(h.Sum(nil)) != want {
			return errf(errBadDigest, "the %s you specified did not match the calculated checksum", strings.TrimPrefix(name, "x-amz-checksum-"))
		}
	}
	return nil
}

// bodyReader returns the decoded, verified request body, and the decoded
// length when the client announced it (-1 if unknown).
func bodyReader(r *http.Request, a *auth) (io.Reader, *checks, int64, error) {
	c, err := newChecks(r, a)
	if err != nil {
		return nil, nil, 0, err
	}
	switch a.payloadHash {
	case streamingSigned, streamingSignedTrailer, streamingUnsignedTraile:
		n, err := strconv.ParseInt(r.Header.Get("X-Amz-Decoded-Content-Length"), 10, 64)
		if err != nil || n < 0 {
			return nil, nil, 0, errf(errMissingContentLength, "aws-chunked uploads need x-amz-decoded-content-length")
		}
		cr := &chunkedReader{
			br: bufio.NewReaderSize(r.Body, 64<<10), a: a, c: c, want: n,
			signed:  a.payloadHash != streamingUnsignedTraile,
			trailer: a.payloadHash != streamingSigned,
			prevSig: a.signature,
		}
		return cr, c, n, nil
	}
	return &verifyingReader{r: r.Body, c: c}, c, r.ContentLength, nil
}

// verifyingReader feeds checks and verifies them at EOF.
type verifyingReader struct {
	r    io.Reader
	c    *checks
	done error
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	if v.done != nil {
		return 0, v.done
	}
	n, err := v.r.Read(p)
	v.c.Write(p[:n])
	if err == io.EOF {
		if verr := v.c.verify(); verr != nil {
			v.done = verr
			return n, verr
		}
		v.done = io.EOF
	}
	return n, err
}

// chunkedReader decodes aws-chunked bodies:
//
//	hex-size[;chunk-signature=sig]\r\n data \r\n ... 0[;chunk-signature=sig]\r\n
//	[trailer-name:value\r\n ... [x-amz-trailer-signature:sig\r\n]] \r\n
type chunkedReader struct {
	br      *bufio.Reader
	a       *auth
	c       *checks
	signed  bool
	trailer bool
	prevSig string
	want    int64 // x-amz-decoded-content-length

	left  []byte // decoded bytes of the current chunk not yet returned
	total int64
	err   error
}

func (cr *chunkedReader) Read(p []byte) (int, error) {
	for len(cr.left) == 0 && cr.err == nil {
		cr.err = cr.nextChunk()
	}
	if len(cr.left) > 0 {
		n := copy(p, cr.left)
		cr.left = cr.left[n:]
		return n, nil
	}
	return 0, cr.err
}

func (cr *chunkedReader) line() (string, error) {
	l, err := cr.br.ReadSlice('\n')
	if err != nil {
		if err == io.EOF || err == io.ErrUnexpectedEOF {
			return "", errf(errIncompleteBody, "the aws-chunked body ended early")
		}
		if err == bufio.ErrBufferFull {
			return "", errf(errInvalidRequest, "aws-chunked framing line too long")
		}
		return "", err
	}
	return strings.TrimRight(string(l), "\r\n"), nil
}

// nextChunk reads one chunk into cr.left; io.EOF after the last one once
// everything checks out.
func (cr *chunkedReader) nextChunk() error {
	head, err := cr.line()
	if err != nil {
		return err
	}
	sizeStr, ext, _ := strings.Cut(head, ";")
	size, err := strconv.ParseInt(sizeStr, 16, 64)
	if err != nil || size < 0 || size > maxChunkSize {
		return errf(errInvalidRequest, "bad aws-chunked chunk size %q", sizeStr)
	}
	var sig string
	if cr.signed {
		v, ok := strings.CutPrefix(ext, "chunk-signature=")
		if !ok || !isHex(v, 64) {
			return errf(errSignatureDoesNotMatch, "aws-chunked chunk without a valid chunk-signature")
		}
		sig = v
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(cr.br, data); err != nil {
		return errf(errIncompleteBody, "the aws-chunked body ended inside a chunk")
	}
	if cr.signed {
		sts := "AWS4-HMAC-SHA256-PAYLOAD\n" + cr.a.amzDate + "\n" + cr.a.scope + "\n" + cr.prevSig + "\n" + emptySHA256 + "\n" + sha256Hex(data)
		if !hmacEqualHex(hmacSHA256(cr.a.signingKey, sts), sig) {
			return errf(errSignatureDoesNotMatch, "a chunk signature does not match")
		}
		cr.prevSig = sig
	}
	if size > 0 {
		if crlf, err := cr.line(); err != nil || crlf != "" {
			return errf(errIncompleteBody, "aws-chunked chunk not followed by CRLF")
		}
		cr.total += size
		if cr.total > cr.want {
			return errf(errIncompleteBody, "the aws-chunked body is longer than x-amz-decoded-content-length")
		}
		cr.c.Write(data)
		cr.left = data
		return nil
	}
	// The last chunk: optional trailers, then an empty line.
	if err := cr.readTrailers(); err != nil {
		return err
	}
	if cr.total != cr.want {
		return errf(errIncompleteBody, "the aws-chunked body has %d bytes, x-amz-decoded-content-length says %d", cr.total, cr.want)
	}
	if err := cr.c.verify(); err != nil {
		return err
	}
	return io.EOF
}

func (cr *chunkedReader) readTrailers() error {
	var canon strings.Builder
	var trailerSig string
	for {
		l, err := cr.line()
		if err != nil {
			if !cr.trailer && errorCode(err) == errIncompleteBody.code {
				return nil // some clients end right after the last chunk
			}
			return err
		}
		if l == "" {
			break
		}
		name, val, ok := strings.Cut(l, ":")
		if !ok || !cr.trailer {
			return errf(errInvalidRequest, "unexpected aws-chunked trailer line")
		}
		name = strings.ToLower(strings.TrimSpace(name))
		val = strings.TrimSpace(val)
		if name == "x-amz-trailer-signature" {
			trailerSig = val
			continue
		}
		if _, announced := cr.c.sums[name]; !announced {
			return errf(errInvalidRequest, "trailer %s was not announced in x-amz-trailer", name)
		}
		cr.c.expected[name] = val
		canon.WriteString(name + ":" + val + "\n")
	}
	if cr.signed && cr.trailer {
		sts := "AWS4-HMAC-SHA256-TRAILER\n" + cr.a.amzDate + "\n" + cr.a.scope + "\n" + cr.prevSig + "\n" + sha256Hex([]byte(canon.String()))
		if !isHex(trailerSig, 64) || !hmacEqualHex(hmacSHA256(cr.a.signingKey, sts), trailerSig) {
			return errf(errSignatureDoesNotMatch, "the trailer signature does not match")
		}
	}
	return nil
}

func hmacEqualHex(mac []byte, sig string) bool {
	b, err := hex.DecodeString(sig)
	return err == nil && hmac.Equal(mac, b)
}

func errorCode(err error) string {
	if ae, ok := err.(*apiError); ok {
		return ae.code
	}
	return ""
}

package lazaret

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on the writer-supplied fields of a PutRequest (see Validate).
const (
	// MaxAddressBytes bounds an envelope address (RFC 5321: 64-byte local
	// part, 255-byte domain, rounded up as MTAs do).
	MaxAddressBytes = 320
	// MaxHeloBytes bounds the HELO/EHLO name.
	MaxHeloBytes = 255
	// MaxScannerBytes bounds the scanner's name.
	MaxScannerBytes = 255
	// MaxReportBytes bounds the scanner's report text.
	MaxReportBytes = 64 << 10
)

// Validate checks every field a writer supplies and normalises it in place,
// so that every frontend (gRPC, SMTP, FUSE, S3, CLI) refuses the same bad
// input the same way, at once, before anything is stored. Errors wrap
// ErrInvalidArgument (ErrInvalidID for a bad id): the request can never
// succeed, so a scanner must not retry it.
//
// Normalisation: an id is checked; envelope addresses lose surrounding
// space and angle brackets; a nil recipient list becomes empty; the client
// IP is written in its canonical form ("[192.0.2.1]" and "::ffff:192.0.2.1"
// become "192.0.2.1"); a score of negative zero becomes zero.
//
// A put without recipients is accepted: a quarantine also keeps mail whose
// envelope was lost (a file handed over by a scanner, an .eml stored by
// hand). Such a message is stored with an empty recipient list and can only
// be released to recipients named in the release request.
func (r *PutRequest) Validate() error {
	if r.ID != "" {
		id, err := ParseID(string(r.ID))
		if err != nil {
			return err
		}
		r.ID = id
	}
	s, err := cleanAddress(r.Sender)
	if err != nil {
		return invalidf("sender: %v", err)
	}
	r.Sender = s
	if r.Recipients, err = CleanRecipients(r.Recipients); err != nil {
		return err
	}
	if r.ClientIP, err = cleanIP(r.ClientIP); err != nil {
		return invalidf("client IP: %v", err)
	}
	if err := checkText("helo", r.Helo, MaxHeloBytes, false); err != nil {
		return err
	}
	if err := r.Verdict.validate(); err != nil {
		return err
	}
	for _, t := range []struct {
		name string
		t    time.Time
	}{{"date", r.Date}, {"received", r.Received}} {
		// Years outside 0..9999 cannot be written as RFC 3339 (JSON) and
		// are never real.
		if !t.t.IsZero() && (t.t.Year() < 0 || t.t.Year() > 9999) {
			return invalidf("%s: year %d outside 0..9999", t.name, t.t.Year())
		}
	}
	return nil
}

// validate checks a verdict as Validate does (normalising a negative zero
// score to zero).
func (v *Verdict) validate() error {
	if v.Kind < 0 || int(v.Kind) >= len(verdictNames) {
		return invalidf("verdict: unknown kind %d", int(v.Kind))
	}
	switch {
	case math.IsNaN(v.Score):
		return invalidf("verdict: score is NaN")
	case math.IsInf(v.Score, 0):
		return invalidf("verdict: score is infinite")
	case v.Score == 0:
		v.Score = 0 // -0 compares equal to 0; store the positive one
	}
	if err := checkText("scanner", v.Scanner, MaxScannerBytes, false); err != nil {
		return err
	}
	return checkText("report", v.Report, MaxReportBytes, true)
}

// CleanRecipients checks envelope recipient addresses as Validate does and
// returns them without angle brackets (never nil). Errors wrap
// ErrInvalidArgument.
func CleanRecipients(rcpts []string) ([]string, error) {
	out := make([]string, 0, len(rcpts))
	for _, a := range rcpts {
		c, err := cleanAddress(a)
		if err != nil {
			return nil, invalidf("recipient: %v", err)
		}
		if c == "" {
			return nil, invalidf("recipient: empty address")
		}
		out = append(out, c)
	}
	return out, nil
}

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
}

// checkText refuses invalid UTF-8, control characters (but line breaks and
// tabs where multiline is true) and text longer than max bytes.
func checkText(field, s string, max int, multiline bool) error {
	if len(s) > max {
		return invalidf("%s: %d bytes, at most %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s: not valid UTF-8", field)
	}
	for _, c := range s {
		if unicode.IsControl(c) && !(multiline && (c == '\n' || c == '\r' || c == '\t')) {
			return invalidf("%s: control character %U", field, c)
		}
	}
	return nil
}

// cleanAddress strips surrounding space and angle brackets and checks that
// the address could have come from an SMTP envelope: no spaces, controls or
// brackets, at most MaxAddressBytes. "" (the null sender) is returned as is.
func cleanAddress(a string) (string, error) {
	a = strings.TrimSpace(a)
	a = strings.TrimSuffix(strings.TrimPrefix(a, "<"), ">")
	if len(a) > MaxAddressBytes {
		return "", fmt.Errorf("address longer than %d bytes", MaxAddressBytes)
	}
	if !utf8.ValidString(a) {
		return "", fmt.Errorf("%q is not valid UTF-8", a)
	}
	for _, r := range a {
		if unicode.IsSpace(r) || unicode.IsControl(r) || r == '<' || r == '>' {
			return "", fmt.Errorf("%q is not an envelope address", a)
		}
	}
	return a, nil
}

// cleanIP returns ip in canonical form, "" for "", or an error when it is not
// an IPv4 or IPv6 address. An address literal in brackets ("[192.0.2.1]",
// "[IPv6:2001:db8::1]") is accepted as SMTP writes it.
func cleanIP(ip string) (string, error) {
	ip = strings.TrimSpace(ip)
	if ip == "" {
		return "", nil
	}
	s := ip
	if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
		s = s[1 : len(s)-1]
		if len(s) > 5 && strings.EqualFold(s[:5], "IPv6:") {
			s = s[5:]
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return "", fmt.Errorf("%q is not an IP address", ip)
	}
	return a.Unmap().String(), nil
}

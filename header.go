package lazaret

import (
	"bytes"
	"encoding/base64"
	"net/mail"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/ianaindex"
)

// MaxHeaderBytes bounds how much of a message ParseHeader and HeaderCapture
// look at. Real headers are a few KiB; anything that has not ended by 256 KiB
// is junk, and reading further would only let one message cost us memory.
const MaxHeaderBytes = 256 << 10

// Caps on the parsed fields. They keep one hostile header from bloating the
// replicated metadata and the index; nobody reads or searches past them.
const (
	maxHeaderTextRunes = 1000 // Subject, From, To
	maxMessageIDBytes  = 998  // RFC 5322's line limit: no real Message-ID is longer
	maxDateTokens      = 16   // a Date with more words than this is garbage, not a date
)

// HeaderInfo is what Lazaret reads from a message header. Every field is valid
// UTF-8 without control characters other than tab; a field the header lacks,
// or that could not be read, is empty (zero for Date).
type HeaderInfo struct {
	From      string    // decoded From value as displayed, e.g. "Alice <a@example.com>"
	To        string    // decoded To value as displayed
	Subject   string    // decoded Subject
	MessageID string    // Message-ID as given, angle brackets included
	Date      time.Time // Date, in the sender's UTC offset; zero if unparseable
}

// ParseHeader parses the header section at the start of msg: up to the first
// empty line, or all of msg if there is none, but never more than
// MaxHeaderBytes. Quarantined mail is often malformed, so ParseHeader never
// fails: it returns what it could read and leaves the rest empty.
//
// Header lines may end in CRLF or bare LF. Continuation lines are unfolded,
// names match case-insensitively, and the first occurrence of a field wins.
// Subject, From and To are decoded per RFC 2047 (B and Q encodings, any
// charset golang.org/x/text knows; words in unknown charsets or with broken
// encodings are kept as written). Raw 8-bit bytes are kept if they are UTF-8
// and otherwise read as Windows-1252. Date is parsed by net/mail.ParseDate and,
// failing that, by a lenient parser for the broken forms mailers send.
func ParseHeader(msg []byte) HeaderInfo {
	if len(msg) > MaxHeaderBytes {
		msg = msg[:MaxHeaderBytes]
	}
	var sc headerEndScanner
	if end := sc.scan(msg); end >= 0 {
		msg = msg[:end]
	}
	raw := splitHeaderFields(msg)
	return HeaderInfo{
		From:      cleanHeaderText(decodeEncodedWords(bytesToUTF8(raw[hdrFrom])), maxHeaderTextRunes, 0),
		To:        cleanHeaderText(decodeEncodedWords(bytesToUTF8(raw[hdrTo])), maxHeaderTextRunes, 0),
		Subject:   cleanHeaderText(decodeEncodedWords(bytesToUTF8(raw[hdrSubject])), maxHeaderTextRunes, 0),
		MessageID: cleanHeaderText(bytesToUTF8(raw[hdrMessageID]), 0, maxMessageIDBytes),
		Date:      parseHeaderDate(cleanHeaderText(bytesToUTF8(raw[hdrDate]), 0, 0)),
	}
}

// HeaderCapture is an io.Writer that keeps the first bytes written to it, up
// to the end of the header (the first empty line) or MaxHeaderBytes, whichever
// comes first, and discards the rest without looking at it. Put streams a body
// through one (io.TeeReader, io.MultiWriter) so that the header is parsed
// without buffering the message or reading it twice.
//
// Header returns exactly what ParseHeader returns for the bytes written so
// far, however they were split into writes. The zero value is ready to use.
// A HeaderCapture is not safe for concurrent use.
type HeaderCapture struct {
	buf  []byte
	sc   headerEndScanner
	done bool // header end seen or buf full: later writes are discarded
}

// Write keeps what it needs of p. It never fails and always reports len(p),
// so that it cannot break the stream it taps.
func (c *HeaderCapture) Write(p []byte) (int, error) {
	if c.done {
		return len(p), nil
	}
	q := p
	if room := MaxHeaderBytes - len(c.buf); len(q) > room {
		q = q[:room]
	}
	if end := c.sc.scan(q); end >= 0 {
		q = q[:end]
		c.done = true
	}
	c.buf = append(c.buf, q...)
	if len(c.buf) >= MaxHeaderBytes {
		c.done = true
	}
	return len(p), nil
}

// Header parses the captured bytes, as ParseHeader does.
func (c *HeaderCapture) Header() HeaderInfo { return ParseHeader(c.buf) }

// headerEndScanner finds the empty line that ends a header. It keeps its state
// between calls so that HeaderCapture can find the end across any split of the
// stream and agree exactly with ParseHeader.
type headerEndScanner struct{ state uint8 }

const (
	scanLineStart   = iota // at the start of a line
	scanLineStartCR        // the line so far is a single CR
	scanMidLine            // inside a line that is not empty
)

// scan consumes p and returns the offset in p just past the empty line ("\n"
// or "\r\n" at the start of a line) that ends the header, or -1 if the header
// has not ended within p.
func (s *headerEndScanner) scan(p []byte) int {
	for i := 0; i < len(p); {
		switch s.state {
		case scanMidLine:
			// Skip whole lines at memchr speed: only line starts matter.
			j := bytes.IndexByte(p[i:], '\n')
			if j < 0 {
				return -1
			}
			i += j + 1
			s.state = scanLineStart
		case scanLineStart:
			switch p[i] {
			case '\n':
				return i + 1
			case '\r':
				s.state = scanLineStartCR
			default:
				s.state = scanMidLine
			}
			i++
		default: // scanLineStartCR
			if p[i] == '\n' {
				return i + 1
			}
			s.state = scanMidLine
			i++
		}
	}
	return -1
}

// Indexes of the fields ParseHeader reads, and their names.
const (
	hdrFrom = iota
	hdrTo
	hdrSubject
	hdrMessageID
	hdrDate
	hdrCount
)

var headerFieldNames = [hdrCount]string{"From", "To", "Subject", "Message-ID", "Date"}

// splitHeaderFields returns the unfolded raw value of the first occurrence of
// each field ParseHeader reads. Lines that are not "name: value" (an mbox
// "From " line, garbage) end the field before them and are skipped.
func splitHeaderFields(hdr []byte) [hdrCount][]byte {
	var vals [hdrCount][]byte
	var seen, owned [hdrCount]bool // owned: vals[f] is a copy, safe to append to
	cur := -1                      // field that continuation lines append to, or -1
	for len(hdr) > 0 {
		line := hdr
		if i := bytes.IndexByte(hdr, '\n'); i >= 0 {
			line, hdr = hdr[:i], hdr[i+1:]
		} else {
			hdr = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			// Unfold as net/textproto does: the line break and the
			// continuation's leading blanks become one space.
			if cur >= 0 {
				if rest := bytes.TrimLeft(line, " \t"); len(rest) > 0 {
					v := bytes.TrimRight(vals[cur], " \t")
					if !owned[cur] {
						// Copy once, so msg is never written and a field
						// folded into thousands of lines costs linear time.
						v, owned[cur] = append([]byte(nil), v...), true
					}
					v = append(v, ' ')
					vals[cur] = append(v, rest...)
				}
			}
			continue
		}
		cur = -1
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		name := bytes.TrimRight(line[:colon], " \t") // "Subject :" is common enough
		if !ValidHeaderName(name) {
			continue
		}
		for f, fn := range headerFieldNames {
			if !seen[f] && len(name) == len(fn) && strings.EqualFold(string(name), fn) {
				seen[f], cur = true, f
				vals[f] = line[colon+1:]
				break
			}
		}
	}
	return vals
}

// ValidHeaderName reports whether name is an RFC 5322 field name (printable
// ASCII, no space or colon). It rejects the mbox "From sender date" line.
func ValidHeaderName(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	for _, b := range name {
		if b <= ' ' || b >= 0x7f || b == ':' {
			return false
		}
	}
	return true
}

// bytesToUTF8 returns b as a string, reading it as Windows-1252 if it is not
// valid UTF-8: that is what unlabelled 8-bit mail almost always is.
func bytesToUTF8(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	var sb strings.Builder
	sb.Grow(len(b) + len(b)/2)
	for _, c := range b {
		// Windows-1252 is Latin-1 with printable characters in place of
		// most C1 controls. Its five undefined bytes stay C1 controls (as
		// WHATWG decodes them), which cleaning drops.
		r := charmap.Windows1252.DecodeByte(c)
		if r == utf8.RuneError {
			r = rune(c)
		}
		sb.WriteRune(r)
	}
	return sb.String()
}

// cleanHeaderText makes a decoded value fit for metadata: line breaks become
// spaces (they separated words), other control characters except tab are
// removed, surrounding white space is trimmed, and the result is cut to at
// most maxRunes runes and maxBytes bytes (0 means no limit) on a rune boundary.
func cleanHeaderText(s string, maxRunes, maxBytes int) string {
	var sb strings.Builder
	sb.Grow(len(s))
	n := 0
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '\r' || r == '\n':
			r = ' '
		case r != '\t' && unicode.IsControl(r):
			continue
		}
		if (maxRunes > 0 && n >= maxRunes) || (maxBytes > 0 && sb.Len()+utf8.RuneLen(r) > maxBytes) {
			break
		}
		sb.WriteRune(r)
		n++
	}
	return strings.TrimSpace(sb.String())
}

// decodeEncodedWords decodes the RFC 2047 encoded-words in s. Unlike
// mime.WordDecoder it never fails: a word with a broken encoding or an unknown
// charset is kept as written. Adjacent words in the same charset are decoded
// together, because mailers split multi-byte characters across words.
func decodeEncodedWords(s string) string {
	if !strings.Contains(s, "=?") {
		return s
	}
	var out strings.Builder
	var run encodedWordRun
	// Offsets of the next "?=" and "=?" after some point, cached so that
	// hostile input like "=?a?q?=?a?q?=?..." is decoded in linear time.
	cache := wordScanCache{closeAt: -1, openAt: -1}
	lastOK := false // the previous run was decoded (so blanks after it may go)
	lit := 0        // start of the text not yet written
	for pos := 0; ; {
		k := strings.Index(s[pos:], "=?")
		if k < 0 {
			break
		}
		start := pos + k
		w, end := parseEncodedWord(s, start, &cache)
		if end < 0 {
			break // no "?=" left: no later word can be complete either
		}
		if end == 0 {
			pos = start + 2 // not a word: it stays part of the literal text
			continue
		}
		between := s[lit:start]
		blank := strings.Trim(between, " \t") == ""
		if run.active && blank && strings.EqualFold(run.charset, w.charset) {
			run.data = append(run.data, w.data...)
		} else {
			lead := ""
			if run.active && blank {
				lead = between // dropped if the runs on both sides decode (RFC 2047 §6.2)
			}
			if run.active {
				lastOK = run.flush(&out, s, lastOK)
			}
			if lead == "" {
				out.WriteString(between)
				lastOK = false
			}
			run = encodedWordRun{active: true, charset: w.charset, data: append(run.data[:0], w.data...), start: start, lead: lead}
		}
		run.end = end
		lit, pos = end, end
	}
	if run.active {
		run.flush(&out, s, lastOK)
	}
	out.WriteString(s[lit:])
	return out.String()
}

// encodedWordRun accumulates adjacent encoded-words in one charset.
type encodedWordRun struct {
	active     bool
	charset    string
	data       []byte // decoded bytes of all the run's words, in charset
	start, end int    // the run's raw span in the header value
	lead       string // blanks between the previous run and this one
}

// flush writes the decoded run, or its raw text if the charset is unknown,
// and reports whether it decoded. prevOK says whether the run before did.
func (r *encodedWordRun) flush(out *strings.Builder, s string, prevOK bool) bool {
	text, ok := decodeCharset(r.charset, r.data)
	if !ok || !prevOK {
		out.WriteString(r.lead)
	}
	if ok {
		out.WriteString(text)
	} else {
		out.WriteString(s[r.start:r.end])
	}
	return ok
}

// wordScanCache remembers the offsets of the next "?=" and "=?" found by
// parseEncodedWord; -1 means not searched yet, len(s) means none.
type wordScanCache struct{ closeAt, openAt int }

// encodedWord is one decoded "=?charset?enc?text?=" before charset conversion.
type encodedWord struct {
	charset string
	data    []byte
}

// parseEncodedWord parses the encoded-word at s[start:], which begins with
// "=?". It returns the word and the offset just past it; end 0 means s[start:]
// is not a valid word, and -1 that no "?=" follows so nothing later can be.
func parseEncodedWord(s string, start int, c *wordScanCache) (encodedWord, int) {
	const maxCharset = 64 // real charset names are short; bounding keeps the scan linear
	cur := start + 2
	window := s[cur:min(len(s), cur+maxCharset+1)]
	q := strings.IndexByte(window, '?')
	if q <= 0 || strings.ContainsAny(window[:q], " \t\r\n=") {
		return encodedWord{}, 0
	}
	charset := window[:q]
	if i := strings.IndexByte(charset, '*'); i >= 0 { // RFC 2231 language: "utf-8*en"
		charset = charset[:i]
	}
	cur += q + 1
	if cur+2 > len(s) || s[cur+1] != '?' {
		return encodedWord{}, 0
	}
	enc := s[cur] | 0x20 // ASCII lower case
	cur += 2
	if c.closeAt < cur {
		c.closeAt = indexFrom(s, cur, "?=")
	}
	if c.closeAt == len(s) {
		return encodedWord{}, -1
	}
	if c.openAt < cur {
		c.openAt = indexFrom(s, cur, "=?")
	}
	if c.openAt+1 < c.closeAt {
		// Encoded text never contains "=?" (base64 padding before "?=" only
		// looks like it); this "?=" belongs to a later word.
		return encodedWord{}, 0
	}
	text := s[cur:c.closeAt]
	var data []byte
	var ok bool
	switch enc {
	case 'b':
		data, ok = decodeBase64Word(text)
	case 'q':
		data, ok = decodeQWord(text), true
	}
	if !ok {
		return encodedWord{}, 0
	}
	return encodedWord{charset: charset, data: data}, c.closeAt + 2
}

// indexFrom returns the offset of the first sub in s at or after from, or
// len(s) if there is none.
func indexFrom(s string, from int, sub string) int {
	if i := strings.Index(s[from:], sub); i >= 0 {
		return from + i
	}
	return len(s)
}

// decodeBase64Word decodes B-encoded text, with or without padding.
func decodeBase64Word(text string) ([]byte, bool) {
	text = strings.TrimSpace(text)
	if b, err := base64.StdEncoding.DecodeString(text); err == nil {
		return b, true
	}
	if b, err := base64.RawStdEncoding.DecodeString(strings.TrimRight(text, "=")); err == nil {
		return b, true
	}
	return nil, false
}

// decodeQWord decodes Q-encoded text. It is lenient: an "=" not followed by
// two hex digits is kept literally rather than rejecting the word.
func decodeQWord(text string) []byte {
	b := make([]byte, 0, len(text))
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case c == '_':
			b = append(b, ' ')
		case c == '=' && i+2 < len(text) && isHexDigit(text[i+1]) && isHexDigit(text[i+2]):
			b = append(b, hexValue(text[i+1])<<4|hexValue(text[i+2]))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b
}

func isHexDigit(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func hexValue(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	default:
		return c - 'a' + 10
	}
}

// decodeCharset converts data from the named charset to UTF-8. It reports
// false if the charset is unknown, so the caller can keep the raw word.
func decodeCharset(charset string, data []byte) (string, bool) {
	name := strings.ToLower(strings.Trim(charset, `"' `))
	switch name {
	case "utf-8", "utf8", "us-ascii", "ascii", "unknown-8bit", "x-unknown", "unknown":
		// Labels that promise UTF-8 or ASCII are often lies about 8-bit text;
		// "unknown-8bit" is what gateways write when they do not know.
		return bytesToUTF8(data), true
	}
	enc, err := htmlindex.Get(name) // WHATWG labels: what mail clients really use
	if err != nil || enc == nil {
		if enc, err = ianaindex.MIME.Encoding(name); err != nil || enc == nil {
			if enc, err = ianaindex.IANA.Encoding(name); err != nil {
				enc = nil
			}
		}
	}
	if enc == nil || enc == encoding.Replacement {
		// The replacement encoding would turn the whole word into U+FFFD.
		return "", false
	}
	b, err := enc.NewDecoder().Bytes(data)
	if err != nil {
		return "", false
	}
	return strings.ToValidUTF8(string(b), "\uFFFD"), true
}

// parseHeaderDate parses a Date value: with net/mail.ParseDate when the value is
// well-formed, otherwise leniently. It returns the zero time if neither works.
// Results are in a fixed zone of the sender's offset so that they do not
// depend on the local time zone of the node that parsed them.
func parseHeaderDate(v string) time.Time {
	s := strings.Join(strings.Fields(stripDateComments(v)), " ")
	if s == "" {
		return time.Time{}
	}
	d, ok := scanDate(s)
	// Only trust net/mail when the zone is numeric and the year has four
	// digits: it resolves named zones through time.Local, and reads two-digit
	// years with a different pivot than RFC 5322.
	if ok && d.numericZone && !d.namedZone && d.year4 {
		if t, err := mail.ParseDate(s); err == nil {
			if t, ok := inFixedZone(t); ok {
				return t
			}
		}
	}
	if ok {
		if t, ok := d.time(); ok {
			return t
		}
	}
	for _, layout := range [...]string{time.RFC3339, "2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05", "2006-01-02T15:04:05"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t, ok := inFixedZone(t); ok {
				return t
			}
		}
	}
	return time.Time{}
}

// inFixedZone returns t in a fixed zone of its offset, if t is in the range
// time.Time.MarshalJSON accepts (and metadata is stored as JSON).
func inFixedZone(t time.Time) (time.Time, bool) {
	_, off := t.Zone()
	if off <= -24*3600 || off >= 24*3600 || t.Year() < 1900 || t.Year() > 9999 {
		return time.Time{}, false
	}
	// Header dates have whole seconds; net/mail keeps a stray fraction.
	t = t.Truncate(time.Second)
	if off == 0 {
		return t.In(time.UTC), true
	}
	return t.In(time.FixedZone("", off)), true
}

// stripDateComments replaces RFC 5322 comments ("(CET)", nested, with
// escapes) by a space; an unclosed comment runs to the end.
func stripDateComments(s string) string {
	if !strings.ContainsAny(s, "()") {
		return s
	}
	var sb strings.Builder
	depth := 0
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '(':
			if depth == 0 {
				sb.WriteByte(' ')
			}
			depth++
		case c == ')':
			if depth > 0 {
				depth--
			}
		case depth > 0:
			if c == '\\' {
				i++
			}
		default:
			sb.WriteByte(c)
		}
	}
	return sb.String()
}

// dateParts is what scanDate found in a Date value.
type dateParts struct {
	year, month, day, hour, min, sec, offset int

	haveYear, haveMonth, haveDay, haveTime bool
	year4                                  bool // the year was written with four digits
	numericZone, namedZone                 bool
	pm, am                                 bool
}

// Month and weekday names, and zone abbreviations mailers write. Numeric
// zones are preferred when both appear; an unknown name means UTC, as
// RFC 5322 says of obsolete zones it does not define.
var (
	dateMonthNames   = [...]string{"january", "february", "march", "april", "may", "june", "july", "august", "september", "october", "november", "december"}
	dateWeekdayNames = [...]string{"sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"}
	dateZoneOffsets  = map[string]int{ // minutes east of UTC
		"UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0,
		"EST": -5 * 60, "EDT": -4 * 60, "CST": -6 * 60, "CDT": -5 * 60,
		"MST": -7 * 60, "MDT": -6 * 60, "PST": -8 * 60, "PDT": -7 * 60,
		"AKST": -9 * 60, "AKDT": -8 * 60, "HST": -10 * 60, "AST": -4 * 60, "ADT": -3 * 60,
		"NST": -(3*60 + 30), "NDT": -(2*60 + 30),
		"BST": 60, "WEST": 60, "CET": 60, "MET": 60, "MEZ": 60,
		"CEST": 2 * 60, "MEST": 2 * 60, "MESZ": 2 * 60, "EET": 2 * 60, "EEST": 3 * 60, "MSK": 3 * 60,
		"SGT": 8 * 60, "HKT": 8 * 60, "AWST": 8 * 60, "JST": 9 * 60, "KST": 9 * 60,
		"ACST": 9*60 + 30, "AEST": 10 * 60, "AEDT": 11 * 60, "NZST": 12 * 60, "NZDT": 13 * 60,
	}
)

// scanDate reads a Date value word by word, in any order mailers use:
// "[Mon,] 2 Jan 2006 15:04[:05] [zone]", "Mon Jan 2 15:04:05 MST 2006",
// "02-Jan-2006 15:04:05 +0100", two- and three-digit years, am/pm.
func scanDate(s string) (dateParts, bool) {
	var d dateParts
	words := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '\t' })
	if len(words) > maxDateTokens {
		return d, false
	}
	var toks []string
	for _, w := range words {
		// "02-Jan-2006" (IMAP style), but not "-0700".
		if '0' <= w[0] && w[0] <= '9' && strings.Contains(w, "-") && strings.ContainsFunc(w, isASCIILetter) {
			toks = append(toks, strings.Split(w, "-")...)
		} else {
			toks = append(toks, w)
		}
	}
	for _, tok := range toks {
		if tok == "" {
			continue
		}
		switch {
		case tok[0] == '+' || tok[0] == '-':
			if off, ok := parseNumericZone(tok); ok && !d.numericZone {
				d.offset, d.numericZone = off, true
			}
		case strings.Contains(tok, ":"):
			// "15:04:05", possibly with a zone glued on: "15:04:05+0100".
			if i := strings.IndexAny(tok, "+-"); i > 0 {
				if off, ok := parseNumericZone(tok[i:]); ok && !d.numericZone {
					d.offset, d.numericZone = off, true
				}
				tok = tok[:i]
			}
			if !d.haveTime {
				d.hour, d.min, d.sec, d.haveTime = parseClock(tok)
			}
		case isAllDigits(tok):
			n := atoiSmall(tok)
			switch {
			case len(tok) == 4 && !d.haveYear:
				d.year, d.haveYear, d.year4 = n, true, true
			case len(tok) <= 2 && !d.haveDay && n >= 1 && n <= 31:
				d.day, d.haveDay = n, true
			case len(tok) <= 2 && !d.haveYear:
				// RFC 5322 §4.3: 00-49 are 2000-2049, 50-99 are 1950-1999.
				if n < 50 {
					n += 2000
				} else {
					n += 1900
				}
				d.year, d.haveYear = n, true
			case len(tok) == 3 && !d.haveYear:
				d.year, d.haveYear = 1900+n, true
			}
		default:
			d.scanWord(tok)
		}
	}
	return d, d.haveYear && d.haveMonth && d.haveDay
}

// scanWord handles a non-numeric Date word: month, weekday, zone, am/pm.
func (d *dateParts) scanWord(tok string) {
	lower := strings.ToLower(tok)
	if len(lower) >= 3 {
		for i, m := range dateMonthNames {
			if strings.HasPrefix(m, lower) {
				if !d.haveMonth {
					d.month, d.haveMonth = i+1, true
				}
				return
			}
		}
		for _, w := range dateWeekdayNames {
			if strings.HasPrefix(w, lower) {
				return
			}
		}
	}
	switch lower {
	case "am":
		d.am = true
		return
	case "pm":
		d.pm = true
		return
	}
	upper := strings.ToUpper(tok)
	// "GMT+0100", "UTC-5".
	for _, p := range [...]string{"UTC", "GMT", "UT"} {
		if rest, ok := strings.CutPrefix(upper, p); ok && rest != "" {
			if off, ok := parseNumericZone(rest); ok && !d.numericZone {
				d.offset, d.numericZone = off, true
			}
			return
		}
	}
	if off, ok := dateZoneOffsets[upper]; ok {
		if !d.numericZone && !d.namedZone {
			d.offset = off * 60
		}
		d.namedZone = true
	} else if strings.IndexFunc(tok, func(r rune) bool { return !isASCIILetter(r) }) < 0 && len(tok) <= 5 {
		d.namedZone = true // an unknown zone name: UTC, but keep net/mail away from it
	}
}

// time assembles d into a time, checking every part's range.
func (d *dateParts) time() (time.Time, bool) {
	if d.haveTime {
		if d.pm && d.hour < 12 {
			d.hour += 12
		} else if d.am && d.hour == 12 {
			d.hour = 0
		}
		if d.sec == 60 {
			d.sec = 59 // a leap second; time.Date would roll the minute over
		}
		if d.hour > 23 || d.min > 59 || d.sec > 59 {
			return time.Time{}, false
		}
	}
	if d.month < 1 || d.month > 12 || d.year < 1900 || d.year > 9999 {
		return time.Time{}, false
	}
	// Day 0 of the next month is the last day of this one.
	if last := time.Date(d.year, time.Month(d.month)+1, 0, 0, 0, 0, 0, time.UTC).Day(); d.day > last {
		return time.Time{}, false
	}
	loc := time.UTC
	if d.offset != 0 {
		loc = time.FixedZone("", d.offset)
	}
	return inFixedZone(time.Date(d.year, time.Month(d.month), d.day, d.hour, d.min, d.sec, 0, loc))
}

// parseNumericZone parses "+hhmm", "+hh:mm", "+hh" or "+h" into seconds east
// of UTC. Offsets of 24 hours or more are rejected: no zone has them, and
// time.Time.MarshalJSON cannot write them.
func parseNumericZone(z string) (int, bool) {
	if len(z) < 2 || (z[0] != '+' && z[0] != '-') {
		return 0, false
	}
	digits := strings.Replace(z[1:], ":", "", 1)
	if !isAllDigits(digits) {
		return 0, false
	}
	var h, m int
	switch len(digits) {
	case 1, 2:
		h = atoiSmall(digits)
	case 4:
		h, m = atoiSmall(digits[:2]), atoiSmall(digits[2:])
	default:
		return 0, false
	}
	if h > 23 || m > 59 {
		return 0, false
	}
	off := (h*60 + m) * 60
	if z[0] == '-' {
		off = -off
	}
	return off, true
}

// parseClock parses "15:04", "15:04:05" or "15:04:05.999".
func parseClock(s string) (h, m, sec int, ok bool) {
	if i := strings.IndexByte(s, '.'); i >= 0 {
		s = s[:i]
	}
	parts := strings.Split(s, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return 0, 0, 0, false
	}
	var n [3]int
	for i, p := range parts {
		if len(p) == 0 || len(p) > 2 || !isAllDigits(p) {
			return 0, 0, 0, false
		}
		n[i] = atoiSmall(p)
	}
	return n[0], n[1], n[2], true
}

func isAllDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// atoiSmall converts a string of at most four ASCII digits.
func atoiSmall(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		n = n*10 + int(s[i]-'0')
	}
	return n
}

func isASCIILetter(r rune) bool { return 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' }

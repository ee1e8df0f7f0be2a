package smtpfilter

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/lazaret/lazaret"
)

// VerdictConfig says how scanner headers become a verdict.
type VerdictConfig struct {
	// HighSpamScore: spam scoring at least this is high spam.
	HighSpamScore float64
	// Rules are extra header rules, checked before the built-in ones.
	Rules []HeaderRule
}

// HeaderRule maps a header to a verdict.
type HeaderRule struct {
	// Header is a regular expression matched against the whole header
	// name, case-insensitively, e.g. `X-Acme-Verdict`.
	Header string `toml:"header"`
	// Value is a regular expression the unfolded value must match
	// (case-insensitively); empty matches any value. A capture group named
	// "score" gives the score, e.g. `^spam score=(?P<score>[0-9.]+)`.
	Value string `toml:"value"`
	// Verdict is spam, highspam, virus, policy or other.
	Verdict string `toml:"verdict"`
	// Scanner names the scanner in the verdict; default "rule".
	Scanner string `toml:"scanner"`
}

// DefaultVerdictConfig returns the defaults: high spam from score 15.
func DefaultVerdictConfig() VerdictConfig { return VerdictConfig{HighSpamScore: 15} }

// Caps that keep hostile headers cheap to look at.
const (
	maxHeaderFields = 2000
	maxFieldValue   = 16 << 10
	maxReport       = 1000
)

// VerdictReader reads a verdict from a message header. It is safe for
// concurrent use.
type VerdictReader struct {
	high  float64
	rules []compiledRule
}

type compiledRule struct {
	header, value *regexp.Regexp
	kind          lazaret.VerdictKind
	scanner       string
	scoreGroup    int
}

// NewVerdictReader compiles cfg.
func NewVerdictReader(cfg VerdictConfig) (*VerdictReader, error) {
	if math.IsNaN(cfg.HighSpamScore) || math.IsInf(cfg.HighSpamScore, 0) {
		return nil, fmt.Errorf("high spam score: must be a number")
	}
	v := &VerdictReader{high: cfg.HighSpamScore}
	for i, r := range cfg.Rules {
		if r.Header == "" {
			return nil, fmt.Errorf("header rule %d: header: must not be empty", i+1)
		}
		h, err := regexp.Compile(`(?i)^(?:` + r.Header + `)$`)
		if err != nil {
			return nil, fmt.Errorf("header rule %d: header %q: %v", i+1, r.Header, err)
		}
		cr := compiledRule{header: h, scanner: r.Scanner, scoreGroup: -1}
		if r.Value != "" {
			if cr.value, err = regexp.Compile(`(?i)` + r.Value); err != nil {
				return nil, fmt.Errorf("header rule %d: value %q: %v", i+1, r.Value, err)
			}
			cr.scoreGroup = cr.value.SubexpIndex("score")
		}
		if cr.kind, err = lazaret.ParseVerdictKind(r.Verdict); err != nil {
			return nil, fmt.Errorf("header rule %d: verdict: %v", i+1, err)
		}
		if cr.scanner == "" {
			cr.scanner = "rule"
		}
		v.rules = append(v.rules, cr)
	}
	return v, nil
}

// Field is one header field, unfolded.
type Field struct {
	Name, Value string
}

// HeaderFields splits the header section at the start of msg (up to the
// first empty line, CRLF or bare LF) into unfolded fields, in order. Lines
// that are not fields are skipped. It keeps at most 2000 fields of at most
// 16 KiB each.
func HeaderFields(msg []byte) []Field {
	var out []Field
	var cur []byte // value of the last field, while continuation lines may follow
	open := false
	done := func() {
		if open {
			out[len(out)-1].Value = string(cur)
			open = false
		}
	}
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' || line[0] == '\t' {
			if rest := bytes.TrimSpace(line); open && len(rest) > 0 && len(cur) < maxFieldValue {
				cur = append(cur, ' ')
				cur = append(cur, rest[:min(len(rest), maxFieldValue-len(cur))]...)
			}
			continue
		}
		done()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !lazaret.ValidHeaderName(bytes.TrimRight(line[:colon], " \t")) {
			continue
		}
		if len(out) == maxHeaderFields {
			break
		}
		out = append(out, Field{Name: string(bytes.TrimRight(line[:colon], " \t"))})
		v := bytes.TrimSpace(line[colon+1:])
		cur, open = append(cur[:0:0], v[:min(len(v), maxFieldValue)]...), true
	}
	done()
	return out
}

// finding is one header's opinion.
type finding struct {
	kind     lazaret.VerdictKind
	flagged  bool // says spam/virus/policy, not just a score
	score    float64
	hasScore bool
	scanner  string
	report   string
	prio     int // lower wins among scores
}

var (
	reSAStatus    = regexp.MustCompile(`(?i)^(yes|no)\b`)
	reSAScore     = regexp.MustCompile(`(?i)\b(?:score|hits)=(-?[0-9]+(?:\.[0-9]+)?)`)
	reSATests     = regexp.MustCompile(`(?i)\btests=(.*?)(?:\s+autolearn=|\s+version=|$)`)
	reRspamd      = regexp.MustCompile(`(?i)^(?:[a-z0-9_-]+:\s*)?(true|false)\s*\[\s*(-?[0-9]+(?:\.[0-9]+)?)\s*/\s*(-?[0-9]+(?:\.[0-9]+)?)\s*\]\s*;?\s*(.*)$`)
	reNumber      = regexp.MustCompile(`^\s*(-?[0-9]+(?:\.[0-9]+)?)`)
	reVirusStatus = regexp.MustCompile(`(?i)^infected\b\s*(?:\((.*?)\))?`)
	reAmavisAlert = regexp.MustCompile(`(?i)^(infected|banned)\b[^:]*(?::\s*(.*))?$`)
	reMSVirus     = regexp.MustCompile(`(?i)^x-(?:.+-)?mailscanner$`)
	reMSSpam      = regexp.MustCompile(`(?i)^x-(?:.+-)?mailscanner-spamcheck$`)
	reMSSpamScore = regexp.MustCompile(`(?i)^x-(?:.+-)?mailscanner-spamscore$`)
	reMSScore     = regexp.MustCompile(`(?i)\bscore=(-?[0-9]+(?:\.[0-9]+)?)`)
)

// Verdict reads the verdict from the header at the start of msg. Without any
// scanner header it returns kind other. Virus beats policy beats spam; spam
// scoring at least HighSpamScore is high spam. Score is the spam score of
// the most specific header (SpamAssassin's X-Spam-Status, rspamd's
// X-Spamd-Result, MailScanner, then X-Spam-Score and star levels).
func (v *VerdictReader) Verdict(msg []byte) lazaret.Verdict {
	return v.FromFields(HeaderFields(msg))
}

// FromFields is Verdict over fields already split by HeaderFields.
func (v *VerdictReader) FromFields(fields []Field) lazaret.Verdict {
	var fs []finding
	for _, f := range fields {
		fs = v.rulesFor(fs, f)
		fs = builtin(fs, f)
	}
	return v.combine(fs)
}

func (v *VerdictReader) rulesFor(fs []finding, f Field) []finding {
	for _, r := range v.rules {
		if !r.header.MatchString(f.Name) {
			continue
		}
		fd := finding{kind: r.kind, flagged: true, scanner: r.scanner, report: f.Value, prio: 0}
		if r.value != nil {
			m := r.value.FindStringSubmatch(f.Value)
			if m == nil {
				continue
			}
			if r.scoreGroup > 0 {
				fd.score, fd.hasScore = parseScore(m[r.scoreGroup])
			}
		}
		fs = append(fs, fd)
	}
	return fs
}

func builtin(fs []finding, f Field) []finding {
	name, val := f.Name, f.Value
	switch strings.ToLower(name) {
	case "x-spam-status":
		m := reSAStatus.FindStringSubmatch(val)
		if m == nil {
			return fs
		}
		fd := finding{flagged: strings.EqualFold(m[1], "yes"), kind: lazaret.VerdictSpam, scanner: "spamassassin", prio: 1}
		if s := reSAScore.FindStringSubmatch(val); s != nil {
			fd.score, fd.hasScore = parseScore(s[1])
		}
		if t := reSATests.FindStringSubmatch(val); t != nil {
			fd.report = "tests=" + strings.Join(strings.Fields(t[1]), "")
		}
		return append(fs, fd)
	case "x-spam-flag":
		if strings.EqualFold(strings.TrimSpace(val), "yes") {
			return append(fs, finding{kind: lazaret.VerdictSpam, flagged: true, scanner: "spamassassin", prio: 9})
		}
	case "x-spam-score", "x-rspamd-score":
		if m := reNumber.FindStringSubmatch(val); m != nil {
			fd := finding{kind: lazaret.VerdictSpam, scanner: "spamassassin", prio: 4}
			if strings.EqualFold(name, "x-rspamd-score") {
				fd.scanner = "rspamd"
			}
			fd.score, fd.hasScore = parseScore(m[1])
			return append(fs, fd)
		}
	case "x-spam-level":
		if n := strings.Count(val, "*"); n > 0 && n == len(strings.TrimSpace(val)) {
			return append(fs, finding{kind: lazaret.VerdictSpam, scanner: "spamassassin", score: float64(n), hasScore: true, prio: 6})
		}
	case "x-spamd-result":
		m := reRspamd.FindStringSubmatch(val)
		if m == nil {
			return fs
		}
		fd := finding{kind: lazaret.VerdictSpam, flagged: strings.EqualFold(m[1], "true"), scanner: "rspamd", report: m[4], prio: 2}
		fd.score, fd.hasScore = parseScore(m[2])
		return append(fs, fd)
	case "x-spam":
		if strings.EqualFold(strings.TrimSpace(val), "yes") {
			return append(fs, finding{kind: lazaret.VerdictSpam, flagged: true, scanner: "rspamd", prio: 9})
		}
	case "x-virus-status":
		if m := reVirusStatus.FindStringSubmatch(val); m != nil {
			return append(fs, finding{kind: lazaret.VerdictVirus, flagged: true, scanner: "clamav", report: m[1], prio: 9})
		}
	case "x-amavis-alert":
		if m := reAmavisAlert.FindStringSubmatch(val); m != nil {
			kind := lazaret.VerdictVirus
			if strings.EqualFold(m[1], "banned") {
				kind = lazaret.VerdictPolicy
			}
			return append(fs, finding{kind: kind, flagged: true, scanner: "amavis", report: or(m[2], val), prio: 9})
		}
	}
	switch {
	case reMSVirus.MatchString(name):
		if strings.Contains(strings.ToLower(val), "found to be infected") {
			return append(fs, finding{kind: lazaret.VerdictVirus, flagged: true, scanner: "mailscanner", report: val, prio: 9})
		}
	case reMSSpam.MatchString(name):
		low := strings.ToLower(strings.TrimSpace(val))
		fd := finding{kind: lazaret.VerdictSpam, flagged: strings.HasPrefix(low, "spam"), scanner: "mailscanner", report: val, prio: 3}
		if m := reMSScore.FindStringSubmatch(val); m != nil {
			fd.score, fd.hasScore = parseScore(m[1])
		}
		if fd.flagged || fd.hasScore {
			return append(fs, fd)
		}
	case reMSSpamScore.MatchString(name):
		t := strings.TrimSpace(val)
		if n := len(t); n > 0 && strings.Count(strings.ToLower(t), "s") == n {
			return append(fs, finding{kind: lazaret.VerdictSpam, scanner: "mailscanner", score: float64(n), hasScore: true, prio: 7})
		}
	}
	return fs
}

// severity ranks kinds for combining findings.
func severity(k lazaret.VerdictKind) int {
	switch k {
	case lazaret.VerdictVirus:
		return 4
	case lazaret.VerdictPolicy:
		return 3
	case lazaret.VerdictHighSpam:
		return 2
	case lazaret.VerdictSpam:
		return 1
	}
	return 0
}

func (v *VerdictReader) combine(fs []finding) lazaret.Verdict {
	var out lazaret.Verdict
	var best *finding
	scorePrio := math.MaxInt
	for i := range fs {
		f := &fs[i]
		if f.hasScore && f.prio < scorePrio {
			out.Score, scorePrio = f.score, f.prio
		}
		if f.flagged && (best == nil || severity(f.kind) > severity(best.kind)) {
			best = f
		}
	}
	if best == nil {
		// A score alone is not a verdict; keep it, with its scanner.
		for i := range fs {
			if fs[i].hasScore && fs[i].prio == scorePrio {
				out.Scanner = fs[i].scanner
				out.Report = clean(fs[i].report)
				break
			}
		}
		return out
	}
	out.Kind, out.Scanner, out.Report = best.kind, best.scanner, clean(best.report)
	if best.kind == lazaret.VerdictSpam && scorePrio != math.MaxInt && out.Score >= v.high {
		out.Kind = lazaret.VerdictHighSpam
	}
	if out.Report == "" {
		// Prefer a report that says more, e.g. SpamAssassin's tests.
		for i := range fs {
			if fs[i].report != "" && fs[i].kind == best.kind {
				out.Report = clean(fs[i].report)
				break
			}
		}
	}
	return out
}

// parseScore parses a finite score.
func parseScore(s string) (float64, bool) {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e9 {
		return 0, false
	}
	return f, true
}

// clean makes report text safe to store: valid UTF-8 (8-bit bytes read as
// Latin-1), no controls, at most maxReport bytes.
func clean(s string) string {
	if !utf8.ValidString(s) {
		var b strings.Builder
		for i := 0; i < len(s); i++ {
			b.WriteRune(rune(s[i]))
		}
		s = b.String()
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.TrimSpace(s))
	if len(s) > maxReport {
		cut := maxReport
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut]
	}
	return s
}

func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

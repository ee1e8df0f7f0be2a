package smtpfilter

import (
	"math"
	"net/netip"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/lazaret/lazaret"
)

func TestVerdict(t *testing.T) {
	v, err := NewVerdictReader(VerdictConfig{HighSpamScore: 15, Rules: []HeaderRule{
		{Header: `X-Acme-Filter`, Value: `^blocked attachment`, Verdict: "policy", Scanner: "acme"},
		{Header: `X-Acme-Score`, Value: `^spam score=(?P<score>-?[0-9.]+)`, Verdict: "spam", Scanner: "acme"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, header string
		want         lazaret.Verdict
	}{
		{"none", "Subject: hi\r\n\r\nbody", lazaret.Verdict{}},
		{"spamassassin yes", "X-Spam-Status: Yes, score=12.3 required=5.0 tests=BAYES_99,\r\n\tURIBL_BLACK autolearn=no\r\n  autolearn_force=no version=3.4.6\r\n\r\n",
			lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 12.3, Scanner: "spamassassin", Report: "tests=BAYES_99,URIBL_BLACK"}},
		{"spamassassin high", "X-Spam-Status: Yes, score=22.0 required=5.0 tests=A\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictHighSpam, Score: 22, Scanner: "spamassassin", Report: "tests=A"}},
		{"spamassassin no, score kept", "X-Spam-Status: No, score=1.2 required=5.0 tests=NONE\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictOther, Score: 1.2, Scanner: "spamassassin", Report: "tests=NONE"}},
		{"flag and score", "X-Spam-Flag: YES\nX-Spam-Score: 16.5\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictHighSpam, Score: 16.5, Scanner: "spamassassin"}},
		{"spam level only with flag", "X-Spam-Flag: YES\nX-Spam-Level: *******\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 7, Scanner: "spamassassin"}},
		{"rspamd", "X-Spamd-Result: default: True [15.20 / 15.00];\r\n\tBAYES_SPAM(5.10)[99.99%]; R_DKIM_NA(0.00)[]\r\nX-Spam: Yes\r\n\r\n",
			lazaret.Verdict{Kind: lazaret.VerdictHighSpam, Score: 15.2, Scanner: "rspamd", Report: "BAYES_SPAM(5.10)[99.99%]; R_DKIM_NA(0.00)[]"}},
		{"rspamd false, X-Spam yes", "X-Spamd-Result: default: False [6.00 / 15.00]; A(6)\nX-Spam: Yes\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 6, Scanner: "rspamd", Report: "A(6)"}},
		{"clamav", "X-Virus-Scanned: clamav-milter 0.103.8 at mx\nX-Virus-Status: Infected (Eicar-Test-Signature)\nX-Spam-Flag: YES\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictVirus, Scanner: "clamav", Report: "Eicar-Test-Signature"}},
		{"clamav clean", "X-Virus-Status: Clean\n\n", lazaret.Verdict{}},
		{"amavis banned", "X-Amavis-Alert: BANNED, message contains text/x-msdos-batch,.exe,a.exe\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictPolicy, Scanner: "amavis", Report: "BANNED, message contains text/x-msdos-batch,.exe,a.exe"}},
		{"mailscanner virus", "X-Acme-MailScanner: Found to be infected\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictVirus, Scanner: "mailscanner", Report: "Found to be infected"}},
		{"mailscanner clean", "X-MailScanner: Found to be clean\n\n", lazaret.Verdict{}},
		{"mailscanner spam", "X-Acme-MailScanner-SpamCheck: spam, SpamAssassin (not cached,\n\tscore=9.5, required 5, BAYES_99 3.50)\nX-Acme-MailScanner-SpamScore: sssssssss\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictSpam, Score: 9.5, Scanner: "mailscanner", Report: "spam, SpamAssassin (not cached, score=9.5, required 5, BAYES_99 3.50)"}},
		{"mailscanner not spam", "X-Acme-MailScanner-SpamCheck: not spam, SpamAssassin (score=1.5, required 5)\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictOther, Score: 1.5, Scanner: "mailscanner", Report: "not spam, SpamAssassin (score=1.5, required 5)"}},
		{"rule policy", "x-acme-filter: blocked attachment a.exe\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictPolicy, Scanner: "acme", Report: "blocked attachment a.exe"}},
		{"rule score", "X-Acme-Score: spam score=31.5\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictHighSpam, Score: 31.5, Scanner: "acme", Report: "spam score=31.5"}},
		{"rule value mismatch", "X-Acme-Score: ham score=1\n\n", lazaret.Verdict{}},
		{"virus beats spam", "X-Spam-Status: Yes, score=30 required=5 tests=X\nX-Virus-Status: Infected (W32.Foo)\n\n",
			lazaret.Verdict{Kind: lazaret.VerdictVirus, Score: 30, Scanner: "clamav", Report: "W32.Foo"}},
		{"header ends at empty line", "Subject: x\n\nX-Spam-Flag: YES\n", lazaret.Verdict{}},
		{"NaN score ignored", "X-Spam-Flag: YES\nX-Spam-Score: NaN\n\n", lazaret.Verdict{Kind: lazaret.VerdictSpam, Scanner: "spamassassin"}},
	} {
		if got := v.Verdict([]byte(tc.header)); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

func TestVerdictConfigErrors(t *testing.T) {
	for _, c := range []VerdictConfig{
		{HighSpamScore: math.NaN()},
		{Rules: []HeaderRule{{Header: "", Verdict: "spam"}}},
		{Rules: []HeaderRule{{Header: "(", Verdict: "spam"}}},
		{Rules: []HeaderRule{{Header: "X", Value: "[", Verdict: "spam"}}},
		{Rules: []HeaderRule{{Header: "X", Verdict: "nasty"}}},
	} {
		if _, err := NewVerdictReader(c); err == nil {
			t.Errorf("NewVerdictReader(%+v) succeeded", c)
		}
	}
}

func TestReceivedClient(t *testing.T) {
	for _, tc := range []struct {
		value, ip, helo string
		ok              bool
	}{
		{"from mx.example.org (mail.example.org [192.0.2.7])\tby gw.example.com (Postfix) with ESMTP id 4Zx; Tue, 1 Jul 2025 10:00:00 +0000", "192.0.2.7", "mx.example.org", true},
		{"from unknown (unknown [IPv6:2001:db8::5]) by gw (Postfix) with ESMTP id 1", "2001:db8::5", "unknown", true},
		{"from rdns.example ([198.51.100.9] helo=liar.example) by mx with esmtp (Exim 4.96) id 1abcde-000000-AB", "198.51.100.9", "liar.example", true},
		{"from [203.0.113.4] (helo=box) by mx with smtp (Exim 4.96)", "203.0.113.4", "box", true},
		{"from mail.example ([203.0.113.5]:40000) by mx with esmtps", "203.0.113.5", "mail.example", true},
		{"by gw.example.com (Postfix, from userid 0) id 4Zx; Tue, 1 Jul 2025", "", "", false},
		{"from localhost by gw with local", "", "", false},
		{"from x ([not.an.ip]) by y", "", "", false},
	} {
		ip, helo, ok := ReceivedClient(tc.value)
		if ok != tc.ok || (ok && (ip != netip.MustParseAddr(tc.ip) || helo != tc.helo)) {
			t.Errorf("ReceivedClient(%q) = %v, %q, %v; want %s, %q, %v", tc.value, ip, helo, ok, tc.ip, tc.helo, tc.ok)
		}
	}
}

func TestHeaderFields(t *testing.T) {
	fs := HeaderFields([]byte("A: 1\r\n\tcont\r\nnot a field\r\nB :2\r\n c\r\n\r\nC: 3\r\n"))
	want := []Field{{"A", "1 cont"}, {"B", "2 c"}}
	if len(fs) != len(want) || fs[0] != want[0] || fs[1] != want[1] {
		t.Errorf("HeaderFields = %+v, want %+v", fs, want)
	}
	long := "X: " + strings.Repeat("a", 100<<10) + "\n" + strings.Repeat(" b\n", 10000) + "\n"
	if fs := HeaderFields([]byte(long)); len(fs) != 1 || len(fs[0].Value) > maxFieldValue {
		t.Errorf("a huge field was not capped: %d fields, %d bytes", len(fs), len(fs[0].Value))
	}
}

// FuzzVerdictHeaders checks that no header makes the rules panic or produce
// a verdict that could not be stored: kind in range, finite score, report
// valid UTF-8 without controls and within its cap.
func FuzzVerdictHeaders(f *testing.F) {
	for _, s := range []string{
		"X-Spam-Status: Yes, score=12.3 required=5.0 tests=A,B\r\n\r\n",
		"X-Spamd-Result: default: True [15.20 / 15.00]; A(1)\n\n",
		"X-Virus-Status: Infected (Eicar)\n\n",
		"X-Org-MailScanner-SpamCheck: spam, SpamAssassin (score=99, required 5)\n\n",
		"X-Spam-Score: 1e400\nX-Spam-Flag: YES\n\n",
		"X-Acme: spam score=NaN\n\n",
		"X-Spam-Level: ****\xff\n\n",
	} {
		f.Add([]byte(s))
	}
	v, err := NewVerdictReader(VerdictConfig{HighSpamScore: 15, Rules: []HeaderRule{
		{Header: `X-Acme`, Value: `score=(?P<score>\S+)`, Verdict: "spam"},
	}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, hdr []byte) {
		got := v.Verdict(hdr)
		if got.Kind < lazaret.VerdictOther || got.Kind > lazaret.VerdictPolicy {
			t.Fatalf("kind %v out of range", got.Kind)
		}
		if math.IsNaN(got.Score) || math.IsInf(got.Score, 0) {
			t.Fatalf("score %v", got.Score)
		}
		if !utf8.ValidString(got.Report) || len(got.Report) > maxReport || strings.ContainsFunc(got.Report, func(r rune) bool { return r < ' ' }) {
			t.Fatalf("report %q", got.Report)
		}
		if got.Kind == lazaret.VerdictSpam && got.Score >= 15 {
			t.Fatalf("spam scoring %v is not high spam", got.Score)
		}
		ReceivedClient(string(hdr))
	})
}

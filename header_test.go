package lazaret

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// hdrSameInfo reports whether two HeaderInfos are equal, comparing dates as
// instants with the same UTC offset (Location pointers differ between calls).
func hdrSameInfo(a, b HeaderInfo) bool {
	_, ao := a.Date.Zone()
	_, bo := b.Date.Zone()
	return a.From == b.From && a.To == b.To && a.Subject == b.Subject && a.MessageID == b.MessageID &&
		a.Date.Equal(b.Date) && ao == bo && a.Date.IsZero() == b.Date.IsZero()
}

func TestParseHeaderSubjectDecoding(t *testing.T) {
	tests := []struct {
		name, raw, want string
	}{
		{"plain", "Hello world", "Hello world"},
		{"utf8 B", "=?UTF-8?B?SGVsbG8gV29ybGQ=?=", "Hello World"},
		{"lower-case b and q", "=?utf-8?b?aGk=?= =?utf-8?q?_there?=", "hi there"},
		{"B without padding", "=?utf-8?B?aGk?=", "hi"},
		{"Q underscores", "=?iso-8859-1?Q?Caf=E9_cr=E8me_br=FBl=E9e?=", "Café crème brûlée"},
		{"latin1 label means windows-1252", "=?ISO-8859-1?Q?=93quoted=94?=", "“quoted”"},
		{"iso-8859-2 B", "=?iso-8859-2?B?WmG/87PmIGfqtmyxIGphvPE=?=", "Zażółć gęślą jaźń"},
		{"iso-8859-2 Q", "=?ISO-8859-2?Q?Za=BF=F3=B3=E6_g=EA=B6l=B1_ja=BC=F1?=", "Zażółć gęślą jaźń"},
		{"windows-1251 B", "=?windows-1251?B?z/Do4uXyLCDs6PA=?=", "Привет, мир"},
		{"windows-1251 Q", "=?Windows-1251?Q?=CF=F0=E8=E2=E5=F2,_=EC=E8=F0?=", "Привет, мир"},
		{"koi8-r B", "=?KOI8-R?B?88vJxMvJIMTM0SDXwdM=?=", "Скидки для вас"},
		{"koi8-r Q", "=?koi8-r?Q?=F3=CB=C9=C4=CB=C9_=C4=CC=D1_=D7=C1=D3?=", "Скидки для вас"},
		{"gb2312 B", "=?GB2312?B?xOO6w8rAvec=?=", "你好世界"},
		{"gb2312 Q", "=?gb2312?Q?=C4=E3=BA=C3=CA=C0=BD=E7?=", "你好世界"},
		{"gbk B", "=?GBK?B?t6LGscfrsunK1Q==?=", "发票请查收"},
		{"shift_jis B", "=?Shift_JIS?B?grGC8YLJgr+CzZCiikU=?=", "こんにちは世界"},
		{"shift_jis Q", "=?shift_jis?Q?=82=B1=82=F1=82=C9=82=BF=82=CD=90=A2=8AE?=", "こんにちは世界"},
		{"iso-2022-jp B", "=?ISO-2022-JP?B?GyRCJCpDTiRpJDsbKEI=?=", "お知らせ"},
		{"euc-kr B", "=?euc-kr?B?vsiz58fPvLy/5A==?=", "안녕하세요"},
		{"big5 Q", "=?big5?Q?=B1z=A6n?=", "您好"},
		{"RFC 2231 language", "=?utf-8*en?Q?hi?=", "hi"},
		{"adjacent words joined", "=?utf-8?Q?Hel?= =?utf-8?Q?lo?=  \t =?utf-8?B?IFdvcmxk?=", "Hello World"},
		{"text between words kept", "=?utf-8?Q?a?= - =?utf-8?Q?b?=", "a - b"},
		{"text around words kept", "Re: =?utf-8?Q?caf=C3=A9?= now", "Re: café now"},
		{"no space before word", "Re:=?utf-8?Q?hi?=!", "Re:hi!"},
		{"words in different charsets", "=?iso-8859-2?Q?=B1?= =?koi8-r?Q?=C1?=", "ąа"},
		{"character split across words", "=?utf-8?B?Y2Fmww==?= =?utf-8?B?qQ==?=", "café"},
		{"bad base64 kept raw", "=?utf-8?B?!!!not*base64?=", "=?utf-8?B?!!!not*base64?="},
		{"bad base64 next to good word", "=?utf-8?B?%%%?= =?utf-8?Q?ok?=", "=?utf-8?B?%%%?= ok"},
		{"unknown charset kept raw", "=?x-klingon?Q?qapla=27?=", "=?x-klingon?Q?qapla=27?="},
		{"unknown charset then good word", "=?x-klingon?Q?a?= =?utf-8?Q?b?=", "=?x-klingon?Q?a?= b"},
		{"replacement charset kept raw", "=?iso-2022-kr?Q?abc?=", "=?iso-2022-kr?Q?abc?="},
		{"unknown encoding kept raw", "=?utf-8?X?abc?=", "=?utf-8?X?abc?="},
		{"unterminated word kept raw", "=?utf-8?Q?abc", "=?utf-8?Q?abc"},
		{"stray =? then word", "a =? b =?utf-8?Q?c?=", "a =? b c"},
		{"Q with spaces (broken mailer)", "=?utf-8?Q?hello world?=", "hello world"},
		{"Q with lone =", "=?utf-8?Q?100=_=ZZ?=", "100= =ZZ"},
		{"encoded line break", "=?utf-8?Q?a=0D=0Ab?=", "a  b"},
		{"encoded controls stripped", "=?utf-8?Q?a=00=07=1Bb=09c?=", "ab\tc"},
		{"invalid utf-8 in utf-8 word", "=?utf-8?Q?caf=E9?=", "café"},
		{"unknown-8bit", "=?unknown-8bit?Q?caf=E9?=", "café"},
		{"empty encoded text", "a=?utf-8?Q??=b", "ab"},
		{"raw latin1", "Caf\xe9 cr\xe8me", "Café crème"},
		{"raw windows-1252", "\x93smart\x94 quotes \x80", "“smart” quotes €"},
		{"raw utf-8 kept", "Grüße aus Köln", "Grüße aus Köln"},
		{"raw 8-bit and encoded word", "Caf\xe9 =?utf-8?Q?=E2=82=AC?=", "Café €"},
		{"controls stripped, tab kept", "a\x00b\x07c\td\x7f\u0085e", "abc\tde"},
		{"trimmed", "  \t padded \t ", "padded"},
		{"undefined windows-1252 byte", "a\x81b\xff", "abÿ"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseHeader([]byte("Subject: " + tt.raw + "\r\n\r\nbody")).Subject
			if got != tt.want {
				t.Errorf("Subject %q: got %q, want %q", tt.raw, got, tt.want)
			}
		})
	}
}

func TestParseHeaderAddresses(t *testing.T) {
	msg := "From: =?utf-8?Q?Ren=C3=A9_Dupont?= <rene@example.com>\n" +
		"To: \"=?iso-8859-1?Q?J=F6rg?=\" <joerg@example.de>,\n\tbob@example.org\n" +
		"\n"
	h := ParseHeader([]byte(msg))
	if want := "René Dupont <rene@example.com>"; h.From != want {
		t.Errorf("From = %q, want %q", h.From, want)
	}
	if want := `"Jörg" <joerg@example.de>, bob@example.org`; h.To != want {
		t.Errorf("To = %q, want %q", h.To, want)
	}
}

func TestParseHeaderStructure(t *testing.T) {
	date := time.Date(2024, 3, 5, 9, 8, 7, 0, time.FixedZone("", 3600))
	full := HeaderInfo{
		From:      "Alice <alice@example.com>",
		To:        "bob@example.org",
		Subject:   "Hello World",
		MessageID: "<abc.123@example.com>",
		Date:      date,
	}
	tests := []struct {
		name string
		msg  string
		want HeaderInfo
	}{
		{"CRLF", "From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: Hello World\r\n" +
			"Message-ID: <abc.123@example.com>\r\nDate: Tue, 5 Mar 2024 09:08:07 +0100\r\n\r\nbody\r\n", full},
		{"bare LF", "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hello World\n" +
			"Message-ID: <abc.123@example.com>\nDate: Tue, 5 Mar 2024 09:08:07 +0100\n\nbody\n", full},
		{"mixed line ends, odd case, space before colon",
			"FROM: Alice <alice@example.com>\nto : bob@example.org\r\nsUbJeCt:Hello World\n" +
				"message-id:   <abc.123@example.com>  \r\nDATE: Tue, 5 Mar 2024 09:08:07 +0100\n\n", full},
		{"folded", "From: Alice\r\n <alice@example.com>\r\nTo:\r\n\tbob@example.org\r\nSubject: Hello\r\n   \t World\r\n" +
			"Message-ID:\r\n <abc.123@example.com>\r\nDate: Tue, 5 Mar 2024\r\n 09:08:07 +0100\r\n\r\n", full},
		{"no body separator, no final newline", "From: Alice <alice@example.com>\nTo: bob@example.org\nSubject: Hello World\n" +
			"Message-ID: <abc.123@example.com>\nDate: Tue, 5 Mar 2024 09:08:07 +0100", full},
		{"first occurrence wins", "Subject: Hello World\nSubject: second\nsubject: third\n\n", HeaderInfo{Subject: "Hello World"}},
		{"empty first occurrence wins", "Subject:\nSubject: second\n\n", HeaderInfo{}},
		{"blank line ends header", "To: bob@example.org\n\nSubject: in the body\n", HeaderInfo{To: "bob@example.org"}},
		{"CRLF blank line ends header", "To: bob@example.org\r\n\r\nSubject: in the body\r\n", HeaderInfo{To: "bob@example.org"}},
		{"leading blank line: empty header", "\r\nSubject: in the body\r\n", HeaderInfo{}},
		{"mbox From line skipped", "From alice@example.com Tue Mar  5 09:08:07 2024\nSubject: Hello World\n\n", HeaderInfo{Subject: "Hello World"}},
		{"garbage lines skipped, continuations of other fields ignored",
			"X-Junk: a\n Subject: not me\nthis is no header\n\x00\xff:\nSubject: Hello World\n\n", HeaderInfo{Subject: "Hello World"}},
		{"continuation before any field ignored", " Subject: no\nSubject: Hello World\n", HeaderInfo{Subject: "Hello World"}},
		{"whitespace-only line is a continuation", "Subject: Hello\n \n World\n\n", HeaderInfo{Subject: "Hello World"}},
		{"line with only CR in the middle of a line", "Subject: a\rb\n\n", HeaderInfo{Subject: "a b"}},
		{"empty message", "", HeaderInfo{}},
		{"8-bit Message-ID", "Message-ID: <caf\xe9@x>\n", HeaderInfo{MessageID: "<café@x>"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ParseHeader([]byte(tt.msg))
			if !hdrSameInfo(got, tt.want) {
				t.Errorf("ParseHeader(%q)\n got %+v\nwant %+v", tt.msg, got, tt.want)
			}
		})
	}
}

func TestParseHeaderCaps(t *testing.T) {
	long := strings.Repeat("é", 3000)
	h := ParseHeader([]byte("Subject: " + long + "\nFrom: " + long + "\nTo: " + long +
		"\nMessage-ID: <" + strings.Repeat("x", 5000) + ">\n\n"))
	for name, v := range map[string]string{"Subject": h.Subject, "From": h.From, "To": h.To} {
		if n := utf8.RuneCountInString(v); n != maxHeaderTextRunes || !utf8.ValidString(v) {
			t.Errorf("%s: %d runes (valid %v), want %d", name, n, utf8.ValidString(v), maxHeaderTextRunes)
		}
	}
	if len(h.MessageID) != maxMessageIDBytes {
		t.Errorf("MessageID: %d bytes, want %d", len(h.MessageID), maxMessageIDBytes)
	}
	// A multi-byte rune straddling the byte cap is dropped, not cut.
	h = ParseHeader([]byte("Message-ID: <" + strings.Repeat("é", 1000) + ">\n"))
	if len(h.MessageID) > maxMessageIDBytes || !utf8.ValidString(h.MessageID) {
		t.Errorf("MessageID: %d bytes, valid %v", len(h.MessageID), utf8.ValidString(h.MessageID))
	}
}

func TestParseHeaderMaxHeaderBytes(t *testing.T) {
	junk := strings.Repeat("X-Junk: "+strings.Repeat("j", 70)+"\r\n", MaxHeaderBytes/80+100)
	// Fields before the limit are read, fields after it are not.
	h := ParseHeader([]byte("Subject: early\r\n" + junk + "From: late@example.com\r\n\r\nbody"))
	if h.Subject != "early" || h.From != "" {
		t.Errorf("got Subject %q From %q, want early and nothing", h.Subject, h.From)
	}
	// One enormous header line: its value is capped, not lost.
	h = ParseHeader([]byte("Subject: " + strings.Repeat("s", 2*MaxHeaderBytes)))
	if len(h.Subject) != maxHeaderTextRunes {
		t.Errorf("huge Subject: %d bytes, want %d", len(h.Subject), maxHeaderTextRunes)
	}
	// A field that straddles the limit is read as far as the limit.
	pad := "X-Pad: " + strings.Repeat("p", MaxHeaderBytes-7-1-len("Subject: ab")) + "\n"
	h = ParseHeader([]byte(pad + "Subject: abcdef\n"))
	if h.Subject != "ab" {
		t.Errorf("straddling Subject = %q, want %q", h.Subject, "ab")
	}
}

func TestParseHeaderDate(t *testing.T) {
	zone := func(h, m int) *time.Location { return time.FixedZone("", (h*60+m)*60) }
	utc := time.UTC
	tests := []struct {
		raw  string
		want time.Time // zero: unparseable
	}{
		{"Mon, 02 Jan 2006 15:04:05 -0700", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(-7, 0))},
		{"Mon, 2 Jan 2006 15:04:05 +0100 (CET)", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon, 2 Jan 2006 15:04:05 +0100 (added (nested) comment)", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"  Mon,  2 Jan 2006  15:04:05  +0000 ", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"2 Jan 2006 15:04:05 +0530", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(5, 30))},
		{"Mon, 2 Jan 06 15:04:05 +0100", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Sat, 2 Jan 99 15:04:05 +0100", time.Date(1999, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon, 2 Jan 60 15:04:05 +0100", time.Date(1960, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon, 2 Jan 106 15:04:05 +0100", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon, 2 Jan 2006 15:04 +0100", time.Date(2006, 1, 2, 15, 4, 0, 0, zone(1, 0))},
		{"Mon, 2 Jan 2006 15:04:05", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"Mon, 2 Jan 2006", time.Date(2006, 1, 2, 0, 0, 0, 0, utc)},
		{"Mon, 2 Jan 2006 15:04:05 CET", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon, 2 Jan 2006 15:04:05 EST", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(-5, 0))},
		{"Mon, 2 Jan 2006 15:04:05 pdt", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(-7, 0))},
		{"Mon, 2 Jan 2006 15:04:05 GMT", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"Mon, 2 Jan 2006 15:04:05 UT", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"Mon, 2 Jan 2006 15:04:05 XYZT", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"Mon, 2 Jan 2006 15:04:05 +0200 EET", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(2, 0))},
		{"Mon, 2 Jan 2006 15:04:05 CET +0200", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(2, 0))},
		{"Mon, 2 Jan 2006 15:04:05 GMT+0100", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon, 2 Jan 2006 15:04:05 UTC-5", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(-5, 0))},
		{"Mon, 2 Jan 2006 15:04:05 +01:00", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon, 2 Jan 2006 15:04:05+0100", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Mon Jan  2 15:04:05 2006", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"Mon Jan 2 15:04:05 MST 2006", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(-7, 0))},
		{"02-Jan-2006 15:04:05 +0100", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"Monday, January 2, 2006 3:04:05 PM -0700", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(-7, 0))},
		{"Thurs, 5 Sept 2024 12:00:00 AM +0000", time.Date(2024, 9, 5, 0, 0, 0, 0, utc)},
		{"Tue, 31 Dec 2024 23:59:60 +0000", time.Date(2024, 12, 31, 23, 59, 59, 0, utc)},
		{"Mon, 2 Jan 2006 15:04:05.123 +0000", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"2006-01-02T15:04:05Z", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"2006-01-02T15:04:05+01:00", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(1, 0))},
		{"2006-01-02 15:04:05 -0700", time.Date(2006, 1, 2, 15, 4, 5, 0, zone(-7, 0))},
		{"2006-01-02 15:04:05", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)},
		{"Mon, 2 Jan 2006 15:04:05 +9900", time.Date(2006, 1, 2, 15, 4, 5, 0, utc)}, // impossible zone ignored
		{"", time.Time{}},
		{"yesterday", time.Time{}},
		{"(only a comment)", time.Time{}},
		{"Mon, 32 Jan 2006 15:04:05 +0000", time.Time{}},
		{"Thu, 30 Feb 2006 15:04:05 +0000", time.Time{}},
		{"Mon, 2 Jan 2006 25:04:05 +0000", time.Time{}},
		{"Mon, 2 Jan 1066 15:04:05 +0000", time.Time{}},
		{"Mon, 2 Foo 2006 15:04:05 +0000", time.Time{}},
		{strings.Repeat("1 ", 100) + "Jan 2006", time.Time{}},
	}
	for _, tt := range tests {
		got := ParseHeader([]byte("Date: " + tt.raw + "\n\n")).Date
		_, gotOff := got.Zone()
		_, wantOff := tt.want.Zone()
		if !got.Equal(tt.want) || gotOff != wantOff || got.IsZero() != tt.want.IsZero() {
			t.Errorf("Date %q: got %v, want %v", tt.raw, got, tt.want)
		}
		if !got.IsZero() && got.Location() == time.Local && time.Local != time.UTC {
			t.Errorf("Date %q: result depends on the local zone", tt.raw)
		}
		if _, err := json.Marshal(got); err != nil {
			t.Errorf("Date %q: %v", tt.raw, err)
		}
	}
}

// hdrTestMessages are the messages the capture tests and the fuzz corpus use.
func hdrTestMessages() []string {
	return []string{
		"",
		"\n",
		"\r\n",
		"\r",
		"Subject: x",
		"Subject: x\r",
		"Subject: x\r\n\r",
		"Subject: x\r\n\r\n",
		"Subject: x\n\r\nSubject: y\n",
		"Subject: a\r\r\nSubject: b\n\n",
		"From: Alice <alice@example.com>\r\nTo: bob@example.org\r\nSubject: =?utf-8?Q?Hello?=\r\n =?utf-8?B?IFdvcmxk?=\r\n" +
			"Message-ID: <abc.123@example.com>\r\nDate: Tue, 5 Mar 2024 09:08:07 +0100 (CET)\r\n\r\nbody\r\n\r\nmore\r\n",
		"Subject: Caf\xe9\nFrom: =?koi8-r?B?88vJxMvJIMTM0SDXwdM=?= <x@y>\nDate: 2 Jan 06 15:04 EST\n\nbody",
		"From x@y Mon Jan  2 15:04:05 2006\nSubject: mbox\n\n",
		"Subject: =?utf-8?B?!!!?= =?shift_jis?Q?=82=B1?= =?x-unknown?Q?a?=\n\n",
		"Date: =?utf-8?Q?x?=\nMessage-ID: \x00<\xff>\n\n",
		"Subject: =?=?=?=?=?utf-8?q?=?=?=\n",
		"Subject: " + strings.Repeat("=?a?q?", 50) + "\n",
		"Subject: " + strings.Repeat("x", MaxHeaderBytes) + "\nFrom: late\n",
		strings.Repeat("X-Junk: j\n", MaxHeaderBytes/10+10) + "Subject: late\n\n",
		strings.Repeat("X: y\n", MaxHeaderBytes/5-1) + "S:\n\n", // the blank line straddles the limit
	}
}

// hdrCaptureChunks writes msg to a new HeaderCapture in chunks whose sizes
// next returns, checking that every Write reports success.
func hdrCaptureChunks(t testing.TB, msg []byte, next func() int) HeaderInfo {
	var c HeaderCapture
	for len(msg) > 0 {
		n := min(max(next(), 0), len(msg))
		if w, err := c.Write(msg[:n]); err != nil || w != n {
			t.Fatalf("Write of %d bytes = %d, %v", n, w, err)
		}
		msg = msg[n:]
	}
	if len(c.buf) > MaxHeaderBytes {
		t.Fatalf("capture kept %d bytes, more than MaxHeaderBytes", len(c.buf))
	}
	return c.Header()
}

func TestHeaderCaptureMatchesParseHeader(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i, m := range hdrTestMessages() {
		msg := []byte(m)
		want := ParseHeader(msg)
		splits := map[string]func() int{
			"byte by byte": func() int { return 1 },
			"all at once":  func() int { return len(msg) },
			"random small": func() int { return rng.IntN(8) }, // includes empty writes
			"random large": func() int { return rng.IntN(64 << 10) },
		}
		for name, next := range splits {
			if got := hdrCaptureChunks(t, msg, next); !hdrSameInfo(got, want) {
				t.Errorf("message %d, %s:\n got %+v\nwant %+v", i, name, got, want)
			}
		}
	}
}

func TestHeaderCaptureStopsAtHeaderEnd(t *testing.T) {
	var c HeaderCapture
	hdr := "Subject: hi\r\n\r\n"
	n, err := c.Write([]byte(hdr + "body that is not kept"))
	if n != len(hdr)+21 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	if _, err := c.Write(bytes.Repeat([]byte("more body\r\n"), 1000)); err != nil {
		t.Fatal(err)
	}
	if string(c.buf) != hdr {
		t.Errorf("kept %q, want %q", c.buf, hdr)
	}
	if got := c.Header().Subject; got != "hi" {
		t.Errorf("Subject = %q", got)
	}
}

func FuzzParseHeader(f *testing.F) {
	for i, m := range hdrTestMessages() {
		if len(m) < 4096 { // keep the corpus small so the fuzzer mutates fast
			f.Add([]byte(m), uint64(i))
		}
	}
	for _, s := range []string{"=?utf-8?B?Y2Fmww==?= =?utf-8?B?qQ==?=", "=?iso-2022-jp?B?GyRCJCpDTiRpJDsbKEI=?=", "\x93q\x94"} {
		f.Add([]byte("Subject: "+s+"\r\nTo: "+s+"\r\n\r\n"), uint64(len(s)))
	}
	for _, d := range []string{"Mon, 2 Jan 2006 15:04:05 +0100 (CET)", "Mon Jan 2 15:04:05 MST 2006", "2006-01-02T15:04:05Z", "31 Dec 9999 23:59:59 -2359"} {
		f.Add([]byte("Date: "+d+"\n\n"), uint64(len(d)))
	}
	f.Fuzz(func(t *testing.T, msg []byte, seed uint64) {
		h := ParseHeader(msg)
		for name, v := range map[string]string{"From": h.From, "To": h.To, "Subject": h.Subject, "MessageID": h.MessageID} {
			if !utf8.ValidString(v) {
				t.Fatalf("%s not valid UTF-8: %q", name, v)
			}
			if strings.IndexFunc(v, func(r rune) bool { return r != '\t' && unicode.IsControl(r) }) >= 0 {
				t.Fatalf("%s has control characters: %q", name, v)
			}
			if v != strings.TrimSpace(v) {
				t.Fatalf("%s not trimmed: %q", name, v)
			}
		}
		if _, err := json.Marshal(h.Date); err != nil {
			t.Fatalf("Date %v: %v", h.Date, err)
		}
		rng := rand.New(rand.NewPCG(seed, seed>>32))
		maxChunk := 1 + int(seed%97)
		if got := hdrCaptureChunks(t, msg, func() int { return rng.IntN(maxChunk + 1) }); !hdrSameInfo(got, h) {
			t.Fatalf("capture split differs:\n got %+v\nwant %+v", got, h)
		}
	})
}

// TestParseHeaderWorstCaseIsFast guards against inputs that once took
// quadratic time: a field folded into many lines, and runs of "=?".
func TestParseHeaderWorstCaseIsFast(t *testing.T) {
	inputs := map[string]string{
		"many continuations": "Subject: a\n" + strings.Repeat(" b\n", MaxHeaderBytes/3),
		"many open marks":    "Subject: " + strings.Repeat("=?", MaxHeaderBytes/2),
		"many bad words":     "Subject: " + strings.Repeat("=?a?q?", MaxHeaderBytes/6) + "?=",
		"many short words":   "Subject: " + strings.Repeat("=?koi8-r?Q?=C1?= x ", MaxHeaderBytes/19),
		"many date words":    "Date: " + strings.Repeat("Jan ", MaxHeaderBytes/4),
		"many comments":      "Date: " + strings.Repeat("(((", MaxHeaderBytes/3),
	}
	for name, msg := range inputs {
		start := time.Now()
		h := ParseHeader([]byte(msg))
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("%s: took %v", name, d)
		}
		if !utf8.ValidString(h.Subject) {
			t.Errorf("%s: invalid Subject", name)
		}
	}
}

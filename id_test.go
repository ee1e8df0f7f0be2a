package lazaret_test

import (
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret"
)

// The patterns legacy tools match ids with (MailWatch's Exim alternatives,
// anchored); every id we issue must match the one of its format.
var (
	exim16RE = regexp.MustCompile(`^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$`)
	exim23RE = regexp.MustCompile(`^[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}$`)
)

// newTestAllocator returns an allocator over a fresh in-memory lease with
// its clock at t.
func newTestAllocator(t *testing.T, node int, f lazaret.IDFormat, at time.Time) (*lazaret.Allocator, *lazaret.ManualClock) {
	t.Helper()
	clk := lazaret.NewManualClock(at)
	a, err := lazaret.NewAllocator(lazaret.AllocatorConfig{Node: node, Format: f, Clock: clk, Lease: &lazaret.MemIDLease{}})
	if err != nil {
		t.Fatalf("NewAllocator(node %d, %v): %v", node, f, err)
	}
	return a, clk
}

// nth returns the n-th id (from 0) a fresh allocator issues at a fixed time,
// which has sequence number n.
func nth(t *testing.T, node int, f lazaret.IDFormat, at time.Time, n int) lazaret.ID {
	t.Helper()
	a, _ := newTestAllocator(t, node, f, at)
	var id lazaret.ID
	for range n + 1 {
		var err error
		if id, err = a.Next(); err != nil {
			t.Fatalf("Next: %v", err)
		}
	}
	return id
}

func TestIDEncoding(t *testing.T) {
	t0 := time.Unix(1780000000, 0) // "1wShJQ"
	tests := []struct {
		name   string
		node   int
		format lazaret.IDFormat
		at     time.Time
		n      int
		want   lazaret.ID
	}{
		{"16 first", 1, lazaret.IDFormatExim16, t0, 0, "1wShJQ-000000-01"},
		{"16 sub-second wall time truncates", 1, lazaret.IDFormatExim16, t0.Add(999 * time.Millisecond), 0, "1wShJQ-000000-01"},
		{"16 seq 1", 1, lazaret.IDFormatExim16, t0, 1, "1wShJQ-000001-01"},
		{"16 seq 61 is z", 0, lazaret.IDFormatExim16, t0, 61, "1wShJQ-00000z-00"},
		{"16 seq 62 carries a digit", 0, lazaret.IDFormatExim16, t0, 62, "1wShJQ-000010-00"},
		{"16 node 10 is A", 10, lazaret.IDFormatExim16, t0, 0, "1wShJQ-000000-0A"},
		{"16 node 36 is a", 36, lazaret.IDFormatExim16, t0, 0, "1wShJQ-000000-0a"},
		{"16 node 62", 62, lazaret.IDFormatExim16, t0, 0, "1wShJQ-000000-10"},
		{"16 max node", lazaret.MaxNode16, lazaret.IDFormatExim16, t0, 0, "1wShJQ-000000-zz"},
		{"16 second 1", 7, lazaret.IDFormatExim16, time.Unix(1, 0), 0, "000001-000000-07"},
		{"16 last second", 7, lazaret.IDFormatExim16, time.Unix(lazaret.MaxIDSecond, 0), 0, "zzzzzz-000000-07"},
		{"23 first", 1, lazaret.IDFormatExim23, t0, 0, "1wShJQ-00000000000-0001"},
		{"23 seq 1 node 61539", 61539, lazaret.IDFormatExim23, t0, 1, "1wShJQ-00000000001-0G0Z"},
		{"23 seq 62", 5, lazaret.IDFormatExim23, t0, 62, "1wShJQ-00000000010-0005"},
		{"23 max node", lazaret.MaxNode23, lazaret.IDFormatExim23, t0, 0, "1wShJQ-00000000000-zzzz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := nth(t, tt.node, tt.format, tt.at, tt.n)
			if got != tt.want {
				t.Fatalf("id = %q, want %q", got, tt.want)
			}
			if got.String() != string(tt.want) {
				t.Errorf("String() = %q", got.String())
			}
			if got.Node() != tt.node {
				t.Errorf("Node() = %d, want %d", got.Node(), tt.node)
			}
			if want := time.Unix(tt.at.Unix(), 0).UTC(); !got.Time().Equal(want) || got.Time().Location() != time.UTC {
				t.Errorf("Time() = %v, want %v", got.Time(), want)
			}
			if got.Format() != tt.format {
				t.Errorf("Format() = %v, want %v", got.Format(), tt.format)
			}
			re := exim16RE
			if tt.format == lazaret.IDFormatExim23 {
				re = exim23RE
			}
			if !re.MatchString(string(got)) {
				t.Errorf("%q does not match %v", got, re)
			}
			parsed, err := lazaret.ParseID(string(got))
			if err != nil || parsed != got {
				t.Errorf("ParseID(%q) = %q, %v", got, parsed, err)
			}
		})
	}
}

func TestParseIDValid(t *testing.T) {
	tests := []struct {
		in     string
		format lazaret.IDFormat
		node   int
		unix   int64
	}{
		{"000000-000000-00", lazaret.IDFormatExim16, 0, 0},
		{"zzzzzz-zzzzzz-zz", lazaret.IDFormatExim16, lazaret.MaxNode16, lazaret.MaxIDSecond},
		{"1ABCDE-FGHIJK-zz", lazaret.IDFormatExim16, 3843, 1066564748},
		// Ids real Exim ≥ 4.97 wrote (Exim spec; MailWatch#1293): Lazaret
		// reads their fields with its own meaning, which is fine for the
		// time and harmless for the node.
		{"16VDhn-000000001bo-D342", lazaret.IDFormatExim23, 3110046, 1012231703},
		{"1r6Bwm-000000002h3-2n4V", lazaret.IDFormatExim23, 665291, 1700754536},
		{"zzzzzz-zzzzzzzzzzz-zzzz", lazaret.IDFormatExim23, lazaret.MaxNode23, lazaret.MaxIDSecond},
	}
	for _, tt := range tests {
		id, err := lazaret.ParseID(tt.in)
		if err != nil {
			t.Errorf("ParseID(%q): %v", tt.in, err)
			continue
		}
		if string(id) != tt.in || id.Format() != tt.format || id.Node() != tt.node || id.Time().Unix() != tt.unix {
			t.Errorf("ParseID(%q) = %q: format %v node %d time %d, want %v %d %d",
				tt.in, id, id.Format(), id.Node(), id.Time().Unix(), tt.format, tt.node, tt.unix)
		}
	}
}

func TestParseIDInvalid(t *testing.T) {
	tests := []struct {
		in      string
		wantMsg string // substring of the error
	}{
		{"", "0 bytes long"},
		{"1wShJQ-000000-0", "15 bytes long"},
		{"1wShJQ-000000-001", "17 bytes long"},
		{"1wShJQ-00000000000-000", "22 bytes long"},
		{"1wShJQ-00000000000-00000", "24 bytes long"},
		{strings.Repeat("x", 1000), "1000 bytes long"},
		{"1wShJQ_000000-01", `"_" at offset 6, want "-"`},
		{"1wShJQ-000000_01", `"_" at offset 13, want "-"`},
		{"1wShJ-Q000000-01", `"-" at offset 5, want a digit`},
		{"1wShJQ0-00000-01", `"0" at offset 6, want "-"`},
		{"1wShJQ-0000000-1", `"0" at offset 13, want "-"`},
		{"1wShJQ-000000-0-", `"-" at offset 15`},
		{"1wShJQ-000000001-0001-", "22 bytes long"},
		{"1wShJQ-000000-000000000", `"-" at offset 13, want a digit`}, // 23 bytes, 16-byte dashes
		{"1wShJQ-000000000000-01", "22 bytes long"},
		{"1wShJQ-0000000000-0001", "22 bytes long"},
		{"1wShJQ-0000000000-00001", `"-" at offset 17`}, // 23 bytes, dash one early
		{"1wShJQ-000000-0\xff", `"\xff" at offset 15`},
		{"1wShJ\x00-000000-01", `"\x00" at offset 5`},
		{"1wShJQ-00 000-01", `" " at offset 9`},
		{"1wShJQ-000000-0é", "17 bytes long"},
		{"+wShJQ-000000-01", `"+" at offset 0`},
		{"1wShJQ-00000000000-000/", `"/" at offset 22`},
		{"E1wShJQ-000000-01", "17 bytes long"}, // Exim's Message-ID form
	}
	for _, tt := range tests {
		id, err := lazaret.ParseID(tt.in)
		if err == nil {
			t.Errorf("ParseID(%q) = %q, want error", tt.in, id)
			continue
		}
		if !errors.Is(err, lazaret.ErrInvalidID) {
			t.Errorf("ParseID(%q): %v does not wrap ErrInvalidID", tt.in, err)
		}
		var e *lazaret.Error
		if !errors.As(err, &e) || e.Op != "parse id" {
			t.Errorf("ParseID(%q): %v is not an *Error with Op \"parse id\"", tt.in, err)
		}
		if !strings.Contains(err.Error(), tt.wantMsg) {
			t.Errorf("ParseID(%q) error %q does not say %q", tt.in, err, tt.wantMsg)
		}
		if len(err.Error()) > 300 {
			t.Errorf("ParseID(%q) error is %d bytes long", tt.in[:20], len(err.Error()))
		}
		if id != "" {
			t.Errorf("ParseID(%q) returned %q with its error", tt.in, id)
		}
		// An ID built without ParseID answers with out-of-band values.
		bad := lazaret.ID(tt.in)
		if bad.Node() != -1 || !bad.Time().IsZero() || bad.Format() != -1 {
			t.Errorf("ID(%q): Node %d, Time %v, Format %v; want -1, zero, -1", tt.in, bad.Node(), bad.Time(), bad.Format())
		}
	}
}

func TestIDFormatMethods(t *testing.T) {
	tests := []struct {
		f       lazaret.IDFormat
		s       string
		len     int
		maxNode int
	}{
		{lazaret.IDFormatExim16, "exim16", 16, 3843},
		{lazaret.IDFormatExim23, "exim23", 23, 14776335},
		{lazaret.IDFormat(7), "IDFormat(7)", 0, -1},
	}
	for _, tt := range tests {
		if tt.f.String() != tt.s || tt.f.Len() != tt.len || tt.f.MaxNode() != tt.maxNode {
			t.Errorf("%d: String %q Len %d MaxNode %d, want %q %d %d", int(tt.f), tt.f, tt.f.Len(), tt.f.MaxNode(), tt.s, tt.len, tt.maxNode)
		}
	}
	if lazaret.IDFormat(0) != lazaret.IDFormatExim16 {
		t.Error("the zero IDFormat is not IDFormatExim16")
	}
}

// TestIDsMatchLegacyPatterns issues ids at many times, nodes and sequence
// numbers and checks each against its legacy pattern and round trip.
func TestIDsMatchLegacyPatterns(t *testing.T) {
	for _, f := range []lazaret.IDFormat{lazaret.IDFormatExim16, lazaret.IDFormatExim23} {
		re := map[lazaret.IDFormat]*regexp.Regexp{lazaret.IDFormatExim16: exim16RE, lazaret.IDFormatExim23: exim23RE}[f]
		for _, node := range []int{0, 1, 61, 62, 3843, f.MaxNode()} {
			for _, unix := range []int64{0, 1, 61, 62, 1e9, 1780000000, 62 * 62 * 62 * 62 * 62, lazaret.MaxIDSecond - 5} {
				a, clk := newTestAllocator(t, node, f, time.Unix(unix, 0))
				var prev lazaret.ID
				for i := range 200 {
					if i%50 == 49 {
						clk.Advance(time.Second)
					}
					id, err := a.Next()
					if err != nil {
						t.Fatalf("%v node %d at %d: Next: %v", f, node, unix, err)
					}
					if !re.MatchString(string(id)) {
						t.Fatalf("%q does not match %v", id, re)
					}
					if id.Node() != node || id.Format() != f || id.Time().Unix() < unix {
						t.Fatalf("%q: node %d format %v time %d; want %d %v ≥%d", id, id.Node(), id.Format(), id.Time().Unix(), node, f, unix)
					}
					if p, err := lazaret.ParseID(id.String()); err != nil || p != id {
						t.Fatalf("ParseID(%q) = %q, %v", id, p, err)
					}
					if id <= prev {
						t.Fatalf("%q issued after %q: ids of one allocator must increase", id, prev)
					}
					prev = id
				}
			}
		}
	}
}

func FuzzParseID(f *testing.F) {
	for _, s := range []string{
		"1wShJQ-000000-01", "zzzzzz-zzzzzz-zz", "000000-000000-00",
		"1wShJQ-00000000001-0G0Z", "16VDhn-000000001bo-D342",
		"", "-", "1wShJQ-000000-0", "1wShJQ_000000-01", "1wShJQ-000000-0\xff",
		"1wShJQ-000000-000000000", "1wShJQ-0000000000-00001", "E1wShJQ-000000-01",
		"------------------------", "1wShJQ-000000-0é",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		id, err := lazaret.ParseID(s)
		if err != nil {
			if !errors.Is(err, lazaret.ErrInvalidID) {
				t.Fatalf("ParseID(%q): %v does not wrap ErrInvalidID", s, err)
			}
			if exim16RE.MatchString(s) || exim23RE.MatchString(s) {
				t.Fatalf("ParseID(%q) rejected an id matching the legacy pattern: %v", s, err)
			}
			return
		}
		if id.String() != s {
			t.Fatalf("ParseID(%q) = %q, want it unchanged", s, id)
		}
		if !exim16RE.MatchString(s) && !exim23RE.MatchString(s) {
			t.Fatalf("ParseID accepted %q, which matches neither legacy pattern", s)
		}
		// Re-format the parsed fields the way an allocator would and compare
		// the parts that the fields determine.
		f := id.Format()
		if f.Len() != len(s) || id.Node() < 0 || id.Node() > f.MaxNode() {
			t.Fatalf("%q: format %v node %d", s, f, id.Node())
		}
		sec := id.Time().Unix()
		if sec < 0 || sec > lazaret.MaxIDSecond {
			t.Fatalf("%q: second %d out of range", s, sec)
		}
		if got := encode62(sec, 6) + s[6:len(s)-len(encode62(0, nodeWidth(f)))] + encode62(int64(id.Node()), nodeWidth(f)); got != s {
			t.Fatalf("%q re-formats as %q", s, got)
		}
	})
}

// encode62 is an independent rendering of v as w base-62 digits, to check
// ParseID's field values against the documented encoding.
func encode62(v int64, w int) string {
	const digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	b := make([]byte, w)
	for i := w - 1; i >= 0; i-- {
		b[i] = digits[v%62]
		v /= 62
	}
	return string(b)
}

func nodeWidth(f lazaret.IDFormat) int {
	if f == lazaret.IDFormatExim16 {
		return 2
	}
	return 4
}

func TestMakeID(t *testing.T) {
	id, err := lazaret.MakeID(lazaret.IDFormatExim16, 1_780_000_000, 61, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lazaret.ParseID(string(id)); err != nil || id.Node() != 7 || id.Time().Unix() != 1_780_000_000 {
		t.Errorf("MakeID = %s: parse %v, node %d, time %d", id, err, id.Node(), id.Time().Unix())
	}
	for _, bad := range []struct {
		sec  int64
		seq  uint64
		node int
	}{{-1, 0, 1}, {62 * 62 * 62 * 62 * 62 * 62, 0, 1}, {0, 62 * 62 * 62 * 62 * 62 * 62, 1}, {0, 0, lazaret.MaxNode16 + 1}, {0, 0, -1}} {
		if id, err := lazaret.MakeID(lazaret.IDFormatExim16, bad.sec, bad.seq, bad.node); !errors.Is(err, lazaret.ErrInvalidID) {
			t.Errorf("MakeID(%d, %d, %d) = %q, %v; want lazaret.ErrInvalidID", bad.sec, bad.seq, bad.node, id, err)
		}
	}
}

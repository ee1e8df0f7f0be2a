package lazaret

import (
	"errors"
	"math"
	"testing"
	"time"
)

func TestListQueryMatch(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	base := func() *Metadata {
		return &Metadata{
			ID: "1aBcDe-000001-01", Node: 2, Received: t0,
			Sender:     "Alice@Example.ORG",
			Recipients: []string{"bob@example.com", "carol@Sub.Example.net"},
			Subject:    "Your INVOICE for November 2026",
			Verdict:    Verdict{Kind: VerdictSpam, Score: 6.5},
			State:      StateQuarantined,
		}
	}
	f := func(v float64) *float64 { return &v }
	n := func(v int) *int { return &v }
	for _, tc := range []struct {
		name string
		q    ListQuery
		edit func(*Metadata)
		want bool
	}{
		{"zero query", ListQuery{}, nil, true},
		{"zero query released", ListQuery{}, func(m *Metadata) { m.State = StateReleased }, true},
		{"zero query skips deleted", ListQuery{}, func(m *Metadata) { m.State = StateDeleted }, false},
		{"states deleted", ListQuery{States: []State{StateDeleted}}, func(m *Metadata) { m.State = StateDeleted }, true},
		{"states deleted only", ListQuery{States: []State{StateDeleted}}, nil, false},
		{"states any of", ListQuery{States: []State{StateReleased, StateQuarantined}}, nil, true},

		{"sender exact case-insensitive", ListQuery{Sender: "alice@example.org"}, nil, true},
		{"sender exact other", ListQuery{Sender: "alice@example.com"}, nil, false},
		{"sender is not a substring", ListQuery{Sender: "lice@example.org"}, nil, false},
		{"sender domain", ListQuery{Sender: "@EXAMPLE.org"}, nil, true},
		{"sender domain is exact, not suffix", ListQuery{Sender: "@ample.org"}, nil, false},
		{"sender domain not parent", ListQuery{Sender: "@org"}, nil, false},
		{"sender domain uses last @", ListQuery{Sender: "@b.example"}, func(m *Metadata) { m.Sender = `"a@x"@b.example` }, true},
		{"null sender has no domain", ListQuery{Sender: "@example.org"}, func(m *Metadata) { m.Sender = "" }, false},
		{"null sender not selectable", ListQuery{Sender: ""}, func(m *Metadata) { m.Sender = "" }, true},
		{"sender not trimmed", ListQuery{Sender: " alice@example.org"}, nil, false},

		{"recipient exact any", ListQuery{Recipient: "CAROL@sub.example.net"}, nil, true},
		{"recipient domain any", ListQuery{Recipient: "@example.com"}, nil, true},
		{"recipient domain subdomain no", ListQuery{Recipient: "@example.net"}, nil, false},
		{"recipient is sender no", ListQuery{Recipient: "alice@example.org"}, nil, false},
		{"recipient none", ListQuery{Recipient: "@example.com"}, func(m *Metadata) { m.Recipients = nil }, false},

		{"domain of sender", ListQuery{Domain: "example.org"}, nil, true},
		{"domain of recipient", ListQuery{Domain: "SUB.example.NET"}, nil, true},
		{"domain with @", ListQuery{Domain: "@example.com"}, nil, true},
		{"domain no", ListQuery{Domain: "example.de"}, nil, false},
		{"domain suffix no", ListQuery{Domain: "example.net"}, nil, false},
		{"domain @ alone does not filter", ListQuery{Domain: "@"}, nil, true},

		{"subject words any order", ListQuery{Subject: "november invoice"}, nil, true},
		{"subject substring of word", ListQuery{Subject: "voic 202"}, nil, true},
		{"subject extra spaces", ListQuery{Subject: "  invoice\t\n2026 "}, nil, true},
		{"subject all words needed", ListQuery{Subject: "invoice december"}, nil, false},
		{"subject only spaces", ListQuery{Subject: "   "}, nil, true},
		{"subject unicode case", ListQuery{Subject: "ÜBER"}, func(m *Metadata) { m.Subject = "Gebühr über alles" }, true},

		{"verdicts any of", ListQuery{Verdicts: []VerdictKind{VerdictVirus, VerdictSpam}}, nil, true},
		{"verdicts none", ListQuery{Verdicts: []VerdictKind{VerdictHighSpam}}, nil, false},
		{"min score inclusive", ListQuery{MinScore: f(6.5)}, nil, true},
		{"min score above", ListQuery{MinScore: f(6.51)}, nil, false},
		{"max score inclusive", ListQuery{MaxScore: f(6.5)}, nil, true},
		{"max score below", ListQuery{MaxScore: f(6.49)}, nil, false},
		{"score range", ListQuery{MinScore: f(-1), MaxScore: f(10)}, nil, true},
		{"score NaN never matches a bound", ListQuery{MinScore: f(0)}, func(m *Metadata) { m.Verdict.Score = math.NaN() }, false},

		{"node", ListQuery{Node: n(2)}, nil, true},
		{"node other", ListQuery{Node: n(0)}, nil, false},

		{"since inclusive", ListQuery{Since: t0}, nil, true},
		{"since after", ListQuery{Since: t0.Add(time.Nanosecond)}, nil, false},
		{"until exclusive", ListQuery{Until: t0}, nil, false},
		{"until after", ListQuery{Until: t0.Add(time.Nanosecond)}, nil, true},
		{"since until other zone", ListQuery{Since: t0.In(time.FixedZone("x", 3600)), Until: t0.Add(time.Hour)}, nil, true},

		{"all filters", ListQuery{
			Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour), Sender: "@example.org",
			Recipient: "bob@example.com", Domain: "sub.example.net", Subject: "invoice",
			Verdicts: []VerdictKind{VerdictSpam}, MinScore: f(5), MaxScore: f(7),
			States: []State{StateQuarantined}, Node: n(2),
		}, nil, true},
		{"all filters one fails", ListQuery{
			Since: t0.Add(-time.Hour), Until: t0.Add(time.Hour), Sender: "@example.org",
			Recipient: "bob@example.com", Domain: "sub.example.net", Subject: "invoice",
			Verdicts: []VerdictKind{VerdictSpam}, MinScore: f(5), MaxScore: f(7),
			States: []State{StateQuarantined}, Node: n(3),
		}, nil, false},
		{"limit and cursor ignored", ListQuery{Limit: 1, Cursor: "x"}, nil, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := base()
			if tc.edit != nil {
				tc.edit(m)
			}
			if got := tc.q.Match(m); got != tc.want {
				t.Fatalf("Match = %v, want %v", got, tc.want)
			}
		})
	}
	if (&ListQuery{}).Match(nil) {
		t.Fatal("Match(nil) = true")
	}
}

func TestListQueryNormalize(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	f := func(v float64) *float64 { return &v }
	for _, tc := range []struct {
		name      string
		q         ListQuery
		wantLimit int
		wantErr   bool
	}{
		{"default limit", ListQuery{}, DefaultListLimit, false},
		{"limit kept", ListQuery{Limit: 7}, 7, false},
		{"limit max", ListQuery{Limit: MaxListLimit}, MaxListLimit, false},
		{"limit capped", ListQuery{Limit: 5000}, MaxListLimit, false},
		{"negative limit", ListQuery{Limit: -1}, 0, true},
		{"until before since", ListQuery{Since: t0, Until: t0.Add(-1)}, 0, true},
		{"until equals since", ListQuery{Since: t0, Until: t0}, DefaultListLimit, false},
		{"min above max", ListQuery{MinScore: f(5), MaxScore: f(4)}, 0, true},
		{"min equals max", ListQuery{MinScore: f(5), MaxScore: f(5)}, DefaultListLimit, false},
		{"NaN score", ListQuery{MinScore: f(math.NaN())}, 0, true},
		{"unknown verdict", ListQuery{Verdicts: []VerdictKind{VerdictPolicy + 1}}, 0, true},
		{"unknown state", ListQuery{States: []State{-1}}, 0, true},
		{"sender @", ListQuery{Sender: "@"}, 0, true},
		{"recipient @", ListQuery{Recipient: "@"}, 0, true},
		{"domain with @ inside", ListQuery{Domain: "a@b"}, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			err := q.Normalize()
			if tc.wantErr {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("Normalize = %v, want ErrInvalidArgument", err)
				}
				return
			}
			if err != nil || q.Limit != tc.wantLimit {
				t.Fatalf("Normalize = %v, limit %d; want nil, %d", err, q.Limit, tc.wantLimit)
			}
		})
	}
	q := ListQuery{Domain: "@example.com"}
	if err := q.Normalize(); err != nil || q.Domain != "example.com" {
		t.Fatalf("Normalize domain = %q, %v", q.Domain, err)
	}
}

// TestListQueryMatchLowerNotFold pins the ToLower semantics: "ſ" (long s)
// case-folds to "s" but does not lower-case to it.
func TestListQueryMatchLowerNotFold(t *testing.T) {
	m := &Metadata{Sender: "ſam@example.org", Received: time.Unix(1, 0)}
	if (&ListQuery{Sender: "sam@example.org"}).Match(m) {
		t.Fatal("Match folded ſ to s")
	}
	if !(&ListQuery{Sender: "ſAM@EXAMPLE.org"}).Match(m) {
		t.Fatal("Match is not case-insensitive")
	}
}

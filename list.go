package lazaret

import (
	"fmt"
	"math"
	"strings"
)

// List page sizes.
const (
	// DefaultListLimit is the page size when ListQuery.Limit is 0.
	DefaultListLimit = 100
	// MaxListLimit caps ListQuery.Limit.
	MaxListLimit = 1000
)

// Normalize validates q and fills in defaults: a Limit of 0 becomes
// DefaultListLimit and a larger one than MaxListLimit becomes MaxListLimit.
// It returns an error wrapping ErrInvalidArgument for a negative Limit, an
// Until before Since, a MinScore above MaxScore or a NaN score, an unknown
// verdict kind or state, a Sender or Recipient of just "@", or a Domain with
// an "@" in it other than one leading "@" (which is accepted and removed).
// Match does not depend on Normalize having run.
func (q *ListQuery) Normalize() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: list query: %s", ErrInvalidArgument, fmt.Sprintf(format, args...))
	}
	switch {
	case q.Limit < 0:
		return bad("negative limit %d", q.Limit)
	case q.Limit == 0:
		q.Limit = DefaultListLimit
	case q.Limit > MaxListLimit:
		q.Limit = MaxListLimit
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && q.Until.Before(q.Since) {
		return bad("until %v before since %v", q.Until, q.Since)
	}
	if q.MinScore != nil && math.IsNaN(*q.MinScore) || q.MaxScore != nil && math.IsNaN(*q.MaxScore) {
		return bad("score bound is NaN")
	}
	if q.MinScore != nil && q.MaxScore != nil && *q.MinScore > *q.MaxScore {
		return bad("min score %v above max score %v", *q.MinScore, *q.MaxScore)
	}
	for _, v := range q.Verdicts {
		if v < VerdictOther || v > VerdictPolicy {
			return bad("unknown verdict %v", v)
		}
	}
	for _, s := range q.States {
		if s < StateQuarantined || s > StateDeleted {
			return bad("unknown state %v", s)
		}
	}
	if q.Sender == "@" || q.Recipient == "@" {
		return bad("address pattern \"@\" names no domain")
	}
	q.Domain = strings.TrimPrefix(q.Domain, "@")
	if strings.Contains(q.Domain, "@") {
		return bad("domain %q contains \"@\"", q.Domain)
	}
	return nil
}

// Match reports whether m satisfies every filter of q. It ignores Limit and
// Cursor. The rules, which any other index (such as PostgreSQL) must
// reproduce exactly:
//
//   - Case-insensitive means equal after strings.ToLower (Unicode lower-case
//     mapping) of both sides; nothing is trimmed or otherwise normalised.
//   - The domain of an address is what follows its last "@"; an address
//     without "@" (including the null sender "") has no domain.
//   - Sender: if it starts with "@", the domain of m.Sender equals the rest
//     case-insensitively; otherwise m.Sender equals it case-insensitively.
//     An empty Sender does not filter (so the null sender cannot be selected).
//   - Recipient: as Sender, satisfied by any one of m.Recipients.
//   - Domain (one leading "@" is ignored; "" and "@" do not filter): the domain of m.Sender or of any of
//     m.Recipients equals it case-insensitively.
//   - Subject: every word of it (split with strings.Fields) occurs as a
//     substring of m.Subject, case-insensitively ("invoice 2024" matches
//     "Your INVOICE for 20245"). A Subject of only spaces does not filter.
//   - Verdicts: m.Verdict.Kind is one of them.
//   - MinScore, MaxScore: inclusive bounds on m.Verdict.Score.
//   - States: m.State is one of them; empty means quarantined or released.
//   - Node: m.Node equals it.
//   - Since (inclusive) and Until (exclusive) bound m.Received; zero times do
//     not filter.
func (q *ListQuery) Match(m *Metadata) bool {
	if m == nil {
		return false
	}
	if !q.Since.IsZero() && m.Received.Before(q.Since) {
		return false
	}
	if !q.Until.IsZero() && !m.Received.Before(q.Until) {
		return false
	}
	if len(q.States) == 0 {
		if m.State != StateQuarantined && m.State != StateReleased {
			return false
		}
	} else if !contains(q.States, m.State) {
		return false
	}
	if q.Node != nil && m.Node != *q.Node {
		return false
	}
	if len(q.Verdicts) > 0 && !contains(q.Verdicts, m.Verdict.Kind) {
		return false
	}
	if q.MinScore != nil && !(m.Verdict.Score >= *q.MinScore) {
		return false
	}
	if q.MaxScore != nil && !(m.Verdict.Score <= *q.MaxScore) {
		return false
	}
	if q.Sender != "" && !matchAddress(q.Sender, m.Sender) {
		return false
	}
	if q.Recipient != "" && !anyAddress(q.Recipient, m.Recipients) {
		return false
	}
	if d := strings.ToLower(strings.TrimPrefix(q.Domain, "@")); d != "" {
		ok := addressDomain(m.Sender) == d
		for _, r := range m.Recipients {
			ok = ok || addressDomain(r) == d
		}
		if !ok {
			return false
		}
	}
	if words := strings.Fields(q.Subject); len(words) > 0 {
		subject := strings.ToLower(m.Subject)
		for _, w := range words {
			if !strings.Contains(subject, strings.ToLower(w)) {
				return false
			}
		}
	}
	return true
}

func contains[T comparable](list []T, v T) bool {
	for _, x := range list {
		if x == v {
			return true
		}
	}
	return false
}

// addressDomain returns the lower-cased domain of addr, or "\x00" (which
// equals no query domain) if addr has no "@".
func addressDomain(addr string) string {
	i := strings.LastIndexByte(addr, '@')
	if i < 0 {
		return "\x00"
	}
	return strings.ToLower(addr[i+1:])
}

// matchAddress matches one address against a Sender/Recipient pattern.
func matchAddress(pattern, addr string) bool {
	if d, ok := strings.CutPrefix(pattern, "@"); ok {
		return addressDomain(addr) == strings.ToLower(d)
	}
	// Not strings.EqualFold: its simple folding also equates characters
	// that lower() in SQL keeps apart (such as "ſ" and "s"), and Match must
	// agree with SQL indexes.
	//lint:ignore SA6005 lower-case comparison is the documented semantics
	return strings.ToLower(addr) == strings.ToLower(pattern)
}

func anyAddress(pattern string, addrs []string) bool {
	for _, a := range addrs {
		if matchAddress(pattern, a) {
			return true
		}
	}
	return false
}

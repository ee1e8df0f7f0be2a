package lazaret

import (
	"fmt"
	"math"
	"time"
)

// ID is a cluster-unique message id shaped like an Exim message id, so that
// legacy quarantine tools (MailScanner, MailWatch, Baruwa, MailCleaner, ...)
// accept it unchanged. Ids are issued by an [Allocator] and checked by [ParseID].
//
// An id is three fixed-width base-62 numbers joined by dashes:
//
//	IDFormatExim16, 16 chars: tttttt-ssssss-nn
//	IDFormatExim23, 23 chars: tttttt-sssssssssss-nnnn
//
// Digits are 0-9, A-Z, a-z with values 0 to 61 ('0' = 0, '9' = 9, 'A' = 10,
// 'Z' = 35, 'a' = 36, 'z' = 61). Each field is written most significant digit
// first and left-padded with '0' to its width.
//
//   - t (6 digits): the id's logical second, in seconds since the Unix epoch,
//     0 to 62^6-1 = 56,800,235,583 (3769-12-05T03:13:03Z). It is the wall-clock
//     second the id was issued in, except that it may run ahead of the wall
//     clock, by a few seconds after a restart or by as much as the clock
//     stepped back (see [Allocator]); it is never behind the second of an
//     earlier id from the same node. As in Exim, the 6th character is the
//     split-spool digit, and tools that read the arrival time from an id work.
//   - s (6 or 11 digits): a sequence number counting the ids issued by one
//     node within one logical second, from 0. The 16-char form holds
//     0 to 62^6-1, i.e. 56,800,235,584 ids per second per node; the 23-char
//     form's field could hold 62^11-1, but the allocator counts only to
//     2^64-1 (1.8e19 ids per second per node).
//     Where Exim puts a process id, Lazaret puts this counter.
//   - n (2 or 4 digits): the number of the node that issued the id,
//     0 to [MaxNode16] (3,843) or 0 to [MaxNode23] (14,776,335).
//
// Two ids of the same format compare, byte by byte, in the order of
// (t, s, n), because the alphabet is in ASCII order and the fields have fixed
// width. Hence the ids one allocator issues increase strictly.
//
// Examples: "1wShJQ-000000-01" is the first id of second 1,780,000,000
// (2026-05-28T20:26:40Z) on node 1; "1wShJQ-00000000001-0G0Z" is the second
// id of that second on node 62*62*16+35 = 61,539 in the long form.
type ID string

// IDFormat selects the textual form of ids. The 16-char form is the only one
// every legacy tool accepts (Baruwa and goexim know no other), hence the
// default; the 23-char form, which MailWatch, MailCleaner and MailScanner
// (in its Exim ≥ 4.97 mode) accept, is for clusters with more than 3,844
// node numbers.
type IDFormat int

// Id formats.
const (
	// IDFormatExim16 is tttttt-ssssss-nn, as Exim ≤ 4.96 writes ids; it matches
	// ^[0-9A-Za-z]{6}-[0-9A-Za-z]{6}-[0-9A-Za-z]{2}$. It is the default.
	IDFormatExim16 IDFormat = iota
	// IDFormatExim23 is tttttt-sssssssssss-nnnn, as Exim ≥ 4.97 writes ids; it
	// matches ^[0-9A-Za-z]{6}-[0-9A-Za-z]{11}-[0-9A-Za-z]{4}$. It allows far
	// more node numbers.
	IDFormatExim23
)

// Capacity of the id fields.
const (
	// MaxNode16 is the largest node number an IDFormatExim16 id holds (62^2-1).
	MaxNode16 = 62*62 - 1
	// MaxNode23 is the largest node number an IDFormatExim23 id holds (62^4-1).
	MaxNode23 = 62*62*62*62 - 1
	// MaxIDSecond is the last second, in Unix time, an id of either format can
	// carry (62^6-1, in December 3769).
	MaxIDSecond = 62*62*62*62*62*62 - 1
)

// base62Digits is the Exim alphabet; a digit's value is its index.
const base62Digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Field widths in digits. The dash positions follow from them: 16-char ids
// have dashes at byte offsets 6 and 13, 23-char ids at 6 and 18.
const (
	idTimeWidth  = 6
	idSeq16Width = 6
	idSeq23Width = 11
	idNode16Wide = 2
	idNode23Wide = 4
	idLen16      = idTimeWidth + 1 + idSeq16Width + 1 + idNode16Wide
	idLen23      = idTimeWidth + 1 + idSeq23Width + 1 + idNode23Wide
)

// String returns "exim16" or "exim23".
func (f IDFormat) String() string {
	switch f {
	case IDFormatExim16:
		return "exim16"
	case IDFormatExim23:
		return "exim23"
	}
	return fmt.Sprintf("IDFormat(%d)", int(f))
}

// Len returns the length in bytes of ids of format f (16 or 23), or 0 if f is
// not a known format.
func (f IDFormat) Len() int {
	switch f {
	case IDFormatExim16:
		return idLen16
	case IDFormatExim23:
		return idLen23
	}
	return 0
}

// MaxNode returns the largest node number ids of format f can carry, or -1
// if f is not a known format.
func (f IDFormat) MaxNode() int {
	switch f {
	case IDFormatExim16:
		return MaxNode16
	case IDFormatExim23:
		return MaxNode23
	}
	return -1
}

// maxSeq is the largest sequence number the allocator puts into ids of
// format f. The 23-char field could hold more than a uint64, but 2^64 ids per
// second per node is beyond any need, and a uint64 keeps Next cheap.
func (f IDFormat) maxSeq() uint64 {
	if f == IDFormatExim16 {
		return 62*62*62*62*62*62 - 1
	}
	return math.MaxUint64
}

// widths returns the digit widths of the sequence and node fields of f.
func (f IDFormat) widths() (seq, node int) {
	if f == IDFormatExim16 {
		return idSeq16Width, idNode16Wide
	}
	return idSeq23Width, idNode23Wide
}

// formatID renders the fields of an id; the caller guarantees that each
// value fits its field. It writes into a stack array so that the string
// conversion is the only allocation on the allocator's hot path.
func formatID(f IDFormat, sec int64, seq uint64, node int) ID {
	seqW, nodeW := f.widths()
	var buf [idLen23]byte
	n := f.Len()
	putBase62(buf[:idTimeWidth], uint64(sec))
	buf[idTimeWidth] = '-'
	putBase62(buf[idTimeWidth+1:idTimeWidth+1+seqW], seq)
	buf[idTimeWidth+1+seqW] = '-'
	putBase62(buf[n-nodeW:n], uint64(node))
	return ID(buf[:n])
}

// MakeID returns the id of format f that node issues as its seq-th id of
// second sec (Unix time), as an allocator would; simulations and tests use
// it to make realistic ids without an allocator. It fails with
// [ErrInvalidID] when a value does not fit its field.
func MakeID(f IDFormat, sec int64, seq uint64, node int) (ID, error) {
	const maxSec = 62*62*62*62*62*62 - 1
	if f.MaxNode() < 0 || sec < 0 || sec > maxSec || seq > f.maxSeq() || node < 0 || node > f.MaxNode() {
		return "", &Error{Op: "make id", Err: fmt.Errorf("%w: format %v, second %d, sequence %d, node %d out of range", ErrInvalidID, f, sec, seq, node)}
	}
	return formatID(f, sec, seq, node), nil
}

// putBase62 writes v into dst as len(dst) base-62 digits, most significant
// first, zero-padded. Digits beyond len(dst) are dropped; callers check range.
func putBase62(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = base62Digits[v%62]
		v /= 62
	}
}

// base62Value returns the value of digit c, or -1 if c is not in the alphabet.
func base62Value(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'Z':
		return int(c-'A') + 10
	case 'a' <= c && c <= 'z':
		return int(c-'a') + 36
	}
	return -1
}

// idFields is an id taken apart. seq is not kept: an 11-digit field may
// exceed a uint64, and nothing outside the allocator needs its value.
type idFields struct {
	format IDFormat
	sec    int64
	node   int
}

// parseID checks s and takes it apart. Its error says what is wrong in
// words a person pasting an id into a CLI can act on.
func parseID(s string) (idFields, error) {
	var f IDFormat
	switch len(s) {
	case idLen16:
		f = IDFormatExim16
	case idLen23:
		f = IDFormatExim23
	default:
		return idFields{}, fmt.Errorf("%q is %d bytes long, want 16 (tttttt-ssssss-nn) or 23 (tttttt-sssssssssss-nnnn)",
			clip(s), len(s))
	}
	seqW, nodeW := f.widths()
	dash1, dash2 := idTimeWidth, idTimeWidth+1+seqW
	var sec int64
	node := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if i == dash1 || i == dash2 {
			if c != '-' {
				return idFields{}, fmt.Errorf("%q has %q at offset %d, want \"-\" (a %d-byte id has dashes at offsets %d and %d)",
					s, s[i:i+1], i, len(s), dash1, dash2)
			}
			continue
		}
		v := base62Value(c)
		if v < 0 {
			return idFields{}, fmt.Errorf("%q has %q at offset %d, want a digit or an ASCII letter", s, s[i:i+1], i)
		}
		switch {
		case i < dash1:
			sec = sec*62 + int64(v)
		case i >= len(s)-nodeW:
			node = node*62 + v
		}
	}
	return idFields{format: f, sec: sec, node: node}, nil
}

// clip shortens s for an error message, so that a megabyte of garbage
// handed to ParseID does not end up in a log line.
func clip(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	return s[:limit] + "..."
}

// ParseID checks that s is an id of either format and returns it as an ID.
// The error wraps [ErrInvalidID] and says what is wrong with s. ParseID
// accepts every string of the right shape, including ids Exim itself wrote;
// it does not check that an allocator issued it.
func ParseID(s string) (ID, error) {
	if _, err := parseID(s); err != nil {
		return "", &Error{Op: "parse id", Err: fmt.Errorf("%w: %w", ErrInvalidID, err)}
	}
	return ID(s), nil
}

// String returns the id as text.
func (id ID) String() string { return string(id) }

// Format returns the id's format, or -1 if id is not valid (ParseID would
// reject it).
func (id ID) Format() IDFormat {
	f, err := parseID(string(id))
	if err != nil {
		return -1
	}
	return f.format
}

// Node returns the number of the node that issued the id, or -1 if id is not
// valid (ParseID would reject it).
func (id ID) Node() int {
	f, err := parseID(string(id))
	if err != nil {
		return -1
	}
	return f.node
}

// Time returns the id's logical second, in UTC. It is when the id was issued
// to within the allocator's lease (a few seconds at most; see [Allocator]),
// good enough to find a message by day but not its exact arrival time, which
// Metadata.Received keeps. Time returns the zero time if id is not valid.
func (id ID) Time() time.Time {
	f, err := parseID(string(id))
	if err != nil {
		return time.Time{}
	}
	return time.Unix(f.sec, 0).UTC()
}

package reconcile

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Mode says what a [Range] of a [Message] carries.
type Mode uint8

// Range modes.
const (
	// ModeSkip: nothing to do for this range (settled, or not in question).
	ModeSkip Mode = iota
	// ModeFingerprint: the sender's fingerprint of its items in the range.
	// The receiver answers with ModeSkip if its own fingerprint matches,
	// else with sub-range fingerprints or an id list.
	ModeFingerprint
	// ModeIDList: the 64-bit hash prefixes of all of the sender's items in
	// the range, in key order. The receiver answers with ModeIDReply.
	ModeIDList
	// ModeIDReply: the answer to the receiver's ModeIDList for the same
	// range: a Code per listed item (does the sender hold that very item?)
	// and the keys of the sender's items in the range that the list lacked.
	// The receiver answers with ModeIDKeys if it has unmatched items.
	ModeIDReply
	// ModeIDKeys: the keys of the sender's listed items that the peer's id
	// reply said it lacks. Needs no answer.
	ModeIDKeys
	numModes
)

func (m Mode) String() string {
	switch m {
	case ModeSkip:
		return "skip"
	case ModeFingerprint:
		return "fingerprint"
	case ModeIDList:
		return "idlist"
	case ModeIDReply:
		return "idreply"
	case ModeIDKeys:
		return "idkeys"
	}
	return fmt.Sprintf("Mode(%d)", uint8(m))
}

// Bound is the exclusive upper end of a range: keys < Key, or every key
// when Infinite. The lower end of a range is the previous range's bound
// (the empty key, the smallest, for the first range).
type Bound struct {
	Key      string
	Infinite bool
}

// above reports whether key k falls below b.
func (b Bound) above(k string) bool { return b.Infinite || k < b.Key }

// less reports whether bound b is strictly below bound c.
func (b Bound) less(c Bound) bool {
	switch {
	case b.Infinite:
		return false
	case c.Infinite:
		return true
	}
	return b.Key < c.Key
}

// Range is one range of a [Message]. The fields used depend on Mode.
type Range struct {
	Upper       Bound
	Mode        Mode
	Fingerprint Fingerprint // ModeFingerprint
	// Shorts are the first 8 bytes (little-endian) of the Hash of each of
	// the sender's items in the range, in key order (ModeIDList).
	Shorts []uint64
	// Match says, per entry of the answered id list, whether the sender
	// holds an item with that hash in the range (ModeIDReply).
	Match []bool
	// Keys are ascending keys in the range: the sender's items that the
	// answered list lacked (ModeIDReply), or the sender's listed items that
	// the peer lacks (ModeIDKeys).
	Keys []string
}

// Message is one step of a reconciliation. Its ranges partition the key
// space in ascending order; whatever lies above the last range's bound is
// skipped. A message with no ranges settles everything.
type Message struct {
	Ranges []Range
}

// Wire format constants.
const (
	// ProtocolVersion is the first byte of every encoded message.
	ProtocolVersion = 1
	// MaxKeyLen is the longest key a message may carry.
	MaxKeyLen = 1024
)

// ErrBadMessage is wrapped by every decoding and protocol error.
var ErrBadMessage = errors.New("reconcile: bad message")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadMessage}, args...)...)
}

// empty reports whether m settles everything: only skipped ranges.
func (m *Message) empty() bool {
	for _, r := range m.Ranges {
		if r.Mode != ModeSkip {
			return false
		}
	}
	return true
}

// needsAnswer reports whether the peer must answer m.
func (m *Message) needsAnswer() bool {
	for _, r := range m.Ranges {
		switch r.Mode {
		case ModeFingerprint, ModeIDList:
			return true
		case ModeIDReply:
			// Listed items the sender lacks are named in an id keys answer.
			for _, ok := range r.Match {
				if !ok {
					return true
				}
			}
		}
	}
	return false
}

// MarshalBinary encodes m:
//
//	message = version(1 byte) range*
//	range   = uvarint(0<<3 | mode) payload                            (infinite bound)
//	        | uvarint((shared+1)<<3 | mode) uvarint(len) suffix payload
//	          (bound = the previous bound's first shared bytes + suffix)
//	payload = ""                                          (skip)
//	        | fingerprint(16 bytes)                       (fingerprint)
//	        | uvarint(n) n*short(8 bytes LE)              (idlist)
//	        | uvarint(n) match(ceil(n/8) bytes, bit i = entry i, low bit first)
//	          keys                                        (idreply)
//	        | keys                                        (idkeys)
//	keys    = uvarint(m) m*(uvarint(shared) uvarint(len) suffix)
//	          (each key shares its first shared bytes with the previous key of the list)
//
// MarshalBinary checks m as UnmarshalBinary would and fails on a message
// UnmarshalBinary would refuse.
func (m *Message) MarshalBinary() ([]byte, error) {
	if err := m.validate(); err != nil {
		return nil, err
	}
	return m.AppendBinary(make([]byte, 0, 64))
}

// AppendBinary appends the encoding of m to b; see MarshalBinary. It does
// not validate m.
func (m *Message) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, ProtocolVersion)
	prev := ""
	for _, r := range m.Ranges {
		if r.Upper.Infinite {
			b = binary.AppendUvarint(b, uint64(r.Mode))
		} else {
			sh := shared(prev, r.Upper.Key)
			b = binary.AppendUvarint(b, uint64(sh+1)<<3|uint64(r.Mode))
			b = binary.AppendUvarint(b, uint64(len(r.Upper.Key)-sh))
			b = append(b, r.Upper.Key[sh:]...)
			prev = r.Upper.Key
		}
		switch r.Mode {
		case ModeFingerprint:
			b = append(b, r.Fingerprint[:]...)
		case ModeIDList:
			b = binary.AppendUvarint(b, uint64(len(r.Shorts)))
			for _, v := range r.Shorts {
				b = binary.LittleEndian.AppendUint64(b, v)
			}
		case ModeIDReply:
			b = binary.AppendUvarint(b, uint64(len(r.Match)))
			var acc byte
			for i, ok := range r.Match {
				if ok {
					acc |= 1 << (i % 8)
				}
				if i%8 == 7 || i == len(r.Match)-1 {
					b = append(b, acc)
					acc = 0
				}
			}
			b = appendKeys(b, r.Keys)
		case ModeIDKeys:
			b = appendKeys(b, r.Keys)
		}
	}
	return b, nil
}

func appendKeys(b []byte, keys []string) []byte {
	b = binary.AppendUvarint(b, uint64(len(keys)))
	prev := ""
	for _, k := range keys {
		sh := shared(prev, k)
		b = binary.AppendUvarint(b, uint64(sh))
		b = binary.AppendUvarint(b, uint64(len(k)-sh))
		b = append(b, k[sh:]...)
		prev = k
	}
	return b
}

func shared(a, b string) int {
	n := min(len(a), len(b))
	for i := 0; i < n; i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}

// decoder reads a message; every read checks the bytes left.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint(what string, limit uint64) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = badf("truncated or overlong varint in %s", what)
		return 0
	}
	if v > limit {
		d.err = badf("%s %d exceeds %d", what, v, limit)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes(what string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = badf("truncated %s", what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// keys reads a prefix-compressed key list.
func (d *decoder) keys() []string {
	// Each key takes at least 2 bytes.
	n := d.uvarint("key count", uint64(len(d.b)/2))
	if d.err != nil || n == 0 {
		return nil
	}
	keys := make([]string, 0, n)
	prev := ""
	for range n {
		sh := d.uvarint("key shared prefix", uint64(len(prev)))
		l := d.uvarint("key length", uint64(MaxKeyLen)-sh)
		suf := d.bytes("key", int(l))
		if d.err != nil {
			return nil
		}
		prev = prev[:sh] + string(suf)
		keys = append(keys, prev)
	}
	return keys
}

// UnmarshalBinary decodes a message that MarshalBinary encoded, checking it
// entirely: bounds ascending, keys of each list ascending and inside their
// range, codes valid, nothing left over. It never panics, whatever data
// holds; errors wrap ErrBadMessage.
func (m *Message) UnmarshalBinary(data []byte) error {
	*m = Message{}
	if len(data) == 0 {
		return badf("empty")
	}
	if data[0] != ProtocolVersion {
		return badf("protocol version %d, want %d", data[0], ProtocolVersion)
	}
	d := &decoder{b: data[1:]}
	var ranges []Range
	prev := ""
	for len(d.b) > 0 && d.err == nil {
		var r Range
		h := d.uvarint("range header", uint64(MaxKeyLen+1)<<3|7)
		r.Mode = Mode(h & 7)
		if tag := h >> 3; tag == 0 {
			r.Upper.Infinite = true
		} else if tag-1 > uint64(len(prev)) {
			d.err = badf("bound shares %d bytes with a %d-byte key", tag-1, len(prev))
		} else {
			n := d.uvarint("bound length", uint64(MaxKeyLen)-(tag-1))
			suf := d.bytes("bound", int(n))
			r.Upper.Key = prev[:tag-1] + string(suf)
			prev = r.Upper.Key
		}
		if d.err != nil {
			break
		}
		switch r.Mode {
		case ModeSkip:
		case ModeFingerprint:
			copy(r.Fingerprint[:], d.bytes("fingerprint", FingerprintSize))
		case ModeIDList:
			n := d.uvarint("id list length", uint64(len(d.b)/8))
			raw := d.bytes("id list", int(n)*8)
			if d.err == nil && n > 0 {
				r.Shorts = make([]uint64, n)
				for i := range r.Shorts {
					r.Shorts[i] = binary.LittleEndian.Uint64(raw[8*i:])
				}
			}
		case ModeIDReply:
			n := d.uvarint("match count", uint64(len(d.b))*8)
			packed := d.bytes("match bits", int((n+7)/8))
			if d.err != nil {
				break
			}
			if n > 0 {
				r.Match = make([]bool, n)
			}
			for i := range r.Match {
				r.Match[i] = packed[i/8]>>(i%8)&1 == 1
			}
			if n%8 != 0 && packed[len(packed)-1]>>(n%8) != 0 {
				d.err = badf("stray bits after the last match bit")
			}
			r.Keys = d.keys()
		case ModeIDKeys:
			r.Keys = d.keys()
		default:
			d.err = badf("unknown mode %d", r.Mode)
		}
		ranges = append(ranges, r)
	}
	if d.err != nil {
		return d.err
	}
	msg := Message{Ranges: ranges}
	if err := msg.validate(); err != nil {
		return err
	}
	*m = msg
	return nil
}

// validate checks what UnmarshalBinary checks.
func (m *Message) validate() error {
	lower := Bound{}
	for i, r := range m.Ranges {
		if !lower.less(r.Upper) {
			return badf("range %d: bound %q not above the previous one", i, r.Upper.Key)
		}
		if !r.Upper.Infinite && len(r.Upper.Key) > MaxKeyLen {
			return badf("range %d: bound of %d bytes", i, len(r.Upper.Key))
		}
		if r.Mode >= numModes {
			return badf("range %d: unknown mode %d", i, r.Mode)
		}
		inRange := func(k string) bool { return k >= lower.Key && r.Upper.above(k) && len(k) <= MaxKeyLen }
		for j, k := range r.Keys {
			if !inRange(k) || (j > 0 && k <= r.Keys[j-1]) {
				return badf("range %d: key %q out of order or outside the range", i, k)
			}
		}
		if (r.Mode != ModeIDList && len(r.Shorts) > 0) || (r.Mode != ModeIDReply && len(r.Match) > 0) ||
			(r.Mode != ModeIDReply && r.Mode != ModeIDKeys && len(r.Keys) > 0) ||
			(r.Mode != ModeFingerprint && r.Fingerprint != (Fingerprint{})) {
			return badf("range %d: fields that mode %s does not carry", i, r.Mode)
		}
		lower = r.Upper
		if r.Upper.Infinite && i != len(m.Ranges)-1 {
			return badf("range %d: infinite bound before the last range", i)
		}
	}
	return nil
}

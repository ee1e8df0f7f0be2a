package reconcile

import (
	"bytes"
	"errors"
	"reflect"
	"testing"
)

func sampleMessages() []*Message {
	var fp Fingerprint
	for i := range fp {
		fp[i] = byte(i)
	}
	return []*Message{
		{},
		{Ranges: []Range{{Upper: Bound{Infinite: true}, Mode: ModeFingerprint, Fingerprint: fp}}},
		{Ranges: []Range{
			{Upper: Bound{Key: "1wShJQ-0"}, Mode: ModeSkip},
			{Upper: Bound{Key: "1wShJR"}, Mode: ModeFingerprint, Fingerprint: fp},
			{Upper: Bound{Key: "1wShK"}, Mode: ModeIDList, Shorts: []uint64{1, 1 << 63}},
			{Upper: Bound{Key: "1wShKz"}, Mode: ModeIDReply, Match: []bool{true, false, true, true, true, true, true, true, false}, Keys: []string{"1wShK0-000000-01", "1wShK0-000001-01"}},
			{Upper: Bound{Infinite: true}, Mode: ModeIDKeys, Keys: []string{"1wShKz-000000-02"}},
		}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for i, m := range sampleMessages() {
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		var got Message
		if err := got.UnmarshalBinary(b); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !reflect.DeepEqual(&got, m) && !(len(got.Ranges) == 0 && len(m.Ranges) == 0) {
			t.Fatalf("message %d: round trip\n got %+v\nwant %+v", i, got, *m)
		}
	}
}

func TestMessageRejects(t *testing.T) {
	bad := []*Message{
		{Ranges: []Range{{Upper: Bound{Key: "b"}}, {Upper: Bound{Key: "a"}}}},                     // bounds not ascending
		{Ranges: []Range{{Upper: Bound{Infinite: true}}, {Upper: Bound{Infinite: true}}}},         // infinite twice
		{Ranges: []Range{{Upper: Bound{Key: "m"}, Mode: ModeIDKeys, Keys: []string{"z"}}}},        // key outside range
		{Ranges: []Range{{Upper: Bound{Key: "m"}, Mode: ModeIDKeys, Keys: []string{"b", "a"}}}},   // keys not ascending
		{Ranges: []Range{{Upper: Bound{Key: "m"}, Mode: ModeSkip, Shorts: []uint64{1}}}},          // field of another mode
		{Ranges: []Range{{Upper: Bound{Key: "m"}, Mode: Mode(9)}}},                                // unknown mode
		{Ranges: []Range{{Upper: Bound{Key: ""}}}},                                                // empty first range
		{Ranges: []Range{{Upper: Bound{Key: string(make([]byte, MaxKeyLen+1))}, Mode: ModeSkip}}}, // bound too long
	}
	for i, m := range bad {
		if _, err := m.MarshalBinary(); !errors.Is(err, ErrBadMessage) {
			t.Errorf("message %d: MarshalBinary error %v, want ErrBadMessage", i, err)
		}
	}
	for _, b := range [][]byte{nil, {2}, {1, 0x07}, {1, 0x01, 1, 2}, {1, 0x0a, 5}, {1, 0x03, 0x01}} {
		var m Message
		if err := m.UnmarshalBinary(b); !errors.Is(err, ErrBadMessage) {
			t.Errorf("UnmarshalBinary(%x) = %v, want ErrBadMessage", b, err)
		}
	}
}

// FuzzReconcileMessage: the decoder never panics, and whatever it accepts
// encodes again to bytes that decode to the same message.
func FuzzReconcileMessage(f *testing.F) {
	for _, m := range sampleMessages() {
		b, err := m.MarshalBinary()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte{1, 0x0a, 1, 'a', 0x12, 1, 'b'})
	f.Fuzz(func(t *testing.T, data []byte) {
		var m Message
		if err := m.UnmarshalBinary(data); err != nil {
			if !errors.Is(err, ErrBadMessage) {
				t.Fatalf("error %v does not wrap ErrBadMessage", err)
			}
			return
		}
		b, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		var again Message
		if err := again.UnmarshalBinary(b); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
		b2, _ := again.MarshalBinary()
		if !bytes.Equal(b, b2) {
			t.Fatalf("encoding not stable: %x vs %x", b, b2)
		}
		// A session must not panic on it either.
		s, _ := NewSession(NewMemSet([]Item{testItem(1, 0), testItem(2, 0)}), DefaultConfig())
		_, _ = s.Handle(&m)
	})
}

package lazaret

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// JSON forms. Enums travel as their names and checksums as hex, so that the
// CLI's --json output, the stored records and anything else reading them
// need no lookup tables.

// MarshalText returns the kind's name.
func (k VerdictKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText parses a kind's name.
func (k *VerdictKind) UnmarshalText(b []byte) error {
	v, err := ParseVerdictKind(string(b))
	*k = v
	return err
}

// MarshalText returns the state's name.
func (s State) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText parses a state's name.
func (s *State) UnmarshalText(b []byte) error {
	v, err := ParseState(string(b))
	*s = v
	return err
}

// MarshalText returns the learn kind's name ("" for none).
func (l LearnKind) MarshalText() ([]byte, error) { return []byte(l.String()), nil }

// UnmarshalText parses a learn kind's name.
func (l *LearnKind) UnmarshalText(b []byte) error {
	for i, n := range learnNames {
		if n == string(b) {
			*l = LearnKind(i)
			return nil
		}
	}
	return fmt.Errorf("%w: unknown learn kind %q", ErrInvalidArgument, b)
}

// hexSum is a SHA-256 sum in JSON: a hex string.
type hexSum [32]byte

func (h hexSum) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

func (h *hexSum) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("%w: sha256 %q is not 64 hex digits", ErrInvalidArgument, b)
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// hexMD5 is an MD5 sum in JSON: a hex string; the zero sum is omitted.
type hexMD5 [16]byte

func (h hexMD5) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

func (h *hexMD5) UnmarshalText(b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("%w: md5 %q is not 32 hex digits", ErrInvalidArgument, b)
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// MarshalJSON writes m with its checksums in hex.
func (m Metadata) MarshalJSON() ([]byte, error) {
	type plain Metadata // no methods: avoids recursion
	if m.Recipients == nil {
		m.Recipients = []string{} // a message without recipients lists none, not null
	}
	return json.Marshal(struct {
		plain
		SHA256 hexSum `json:"sha256"`
		MD5    hexMD5 `json:"md5,omitzero"`
	}{plain(m), hexSum(m.SHA256), hexMD5(m.MD5)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (m *Metadata) UnmarshalJSON(b []byte) error {
	type plain Metadata
	var v struct {
		*plain
		SHA256 hexSum `json:"sha256"`
		MD5    hexMD5 `json:"md5,omitzero"`
	}
	v.plain = (*plain)(m)
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m.SHA256, m.MD5 = v.SHA256, v.MD5
	return nil
}

// MarshalJSON writes s with its checksum in hex.
func (s ShardLoc) MarshalJSON() ([]byte, error) {
	type plain ShardLoc
	return json.Marshal(struct {
		plain
		SHA256 hexSum `json:"sha256"`
	}{plain(s), hexSum(s.SHA256)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *ShardLoc) UnmarshalJSON(b []byte) error {
	type plain ShardLoc
	var v struct {
		*plain
		SHA256 hexSum `json:"sha256"`
	}
	v.plain = (*plain)(s)
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.SHA256 = v.SHA256
	return nil
}

// MarshalJSON writes s with Retention as "retention_seconds": a duration in
// nanoseconds means nothing to the people and scripts reading it.
func (s NodeStatus) MarshalJSON() ([]byte, error) {
	type plain NodeStatus
	return json.Marshal(struct {
		plain
		RetentionSeconds int64 `json:"retention_seconds"`
	}{plain(s), int64(s.Retention / time.Second)})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *NodeStatus) UnmarshalJSON(b []byte) error {
	type plain NodeStatus
	var v struct {
		*plain
		RetentionSeconds int64 `json:"retention_seconds"`
	}
	v.plain = (*plain)(s)
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.Retention = time.Duration(v.RetentionSeconds) * time.Second
	return nil
}

// MarshalJSON writes s with BacklogAge as "backlog_age_seconds".
func (s IndexStatus) MarshalJSON() ([]byte, error) {
	type plain IndexStatus
	return json.Marshal(struct {
		plain
		BacklogAgeSeconds float64 `json:"backlog_age_seconds"`
	}{plain(s), s.BacklogAge.Seconds()})
}

// UnmarshalJSON reads what MarshalJSON writes.
func (s *IndexStatus) UnmarshalJSON(b []byte) error {
	type plain IndexStatus
	var v struct {
		*plain
		BacklogAgeSeconds float64 `json:"backlog_age_seconds"`
	}
	v.plain = (*plain)(s)
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	s.BacklogAge = time.Duration(v.BacklogAgeSeconds * float64(time.Second))
	return nil
}

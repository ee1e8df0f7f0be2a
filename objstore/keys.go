package objstore

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/lazaret/lazaret"
)

// layoutVersion is the second byte of every key. Bump it (and add a
// migration) when the layout in doc.go changes.
const layoutVersion = 1

// Key namespaces; see the layout table in doc.go.
const (
	nsMeta      = 'm'
	nsTime      = 't'
	nsHeader    = 'h'
	nsChunk     = 'c'
	nsPending   = 'p'
	nsShardTime = 'x'
	nsRecord    = 's'
	nsOutbox    = 'o'
)

// maxIDLen bounds ids so keys stay small.
const maxIDLen = 128

// checkID rejects ids the key layout cannot hold.
func checkID(op string, id lazaret.ID) error {
	if id == "" || len(id) > maxIDLen || strings.IndexByte(string(id), 0) >= 0 {
		return &lazaret.Error{Op: op, ID: id, Err: fmt.Errorf("%w: id must be 1..%d bytes without NUL", lazaret.ErrInvalidID, maxIDLen)}
	}
	return nil
}

func prefix(ns byte) []byte { return []byte{ns, layoutVersion} }

// encTime encodes t as Unix nanoseconds with the sign bit flipped, so that
// byte order is time order for all representable times.
func encTime(b []byte, t time.Time) []byte {
	return binary.BigEndian.AppendUint64(b, uint64(t.UnixNano())^(1<<63))
}

func decTime(b []byte) time.Time {
	return time.Unix(0, int64(binary.BigEndian.Uint64(b)^(1<<63)))
}

func metaKey(id lazaret.ID) []byte { return append(prefix(nsMeta), id...) }

func timeKey(t time.Time, id lazaret.ID) []byte {
	return append(encTime(prefix(nsTime), t), id...)
}

// splitTimeKey returns the time and id of a time-index key.
func splitTimeKey(k []byte) (time.Time, lazaret.ID, bool) {
	if len(k) < 2+8+1 || k[0] != nsTime || k[1] != layoutVersion {
		return time.Time{}, "", false
	}
	return decTime(k[2:10]), lazaret.ID(k[10:]), true
}

// idPrefix is ns, version, id, 0x00: the prefix of all per-shard keys of id.
func idPrefix(ns byte, id lazaret.ID) []byte {
	b := append(prefix(ns), id...)
	return append(b, 0)
}

func headerKey(id lazaret.ID, shard int) []byte {
	return binary.BigEndian.AppendUint16(idPrefix(nsHeader, id), uint16(shard))
}

// genSuffix is id 0x00 shard(2) gen(8): shared by pending markers and the
// chunk keys they guard.
func genSuffix(id lazaret.ID, shard int, gen uint64) []byte {
	b := append([]byte(id), 0)
	b = binary.BigEndian.AppendUint16(b, uint16(shard))
	return binary.BigEndian.AppendUint64(b, gen)
}

func pendingKey(id lazaret.ID, shard int, gen uint64) []byte {
	return append(prefix(nsPending), genSuffix(id, shard, gen)...)
}

func chunkPrefix(id lazaret.ID, shard int, gen uint64) []byte {
	return append(prefix(nsChunk), genSuffix(id, shard, gen)...)
}

func chunkKey(id lazaret.ID, shard int, gen uint64, n int) []byte {
	return binary.BigEndian.AppendUint32(chunkPrefix(id, shard, gen), uint32(n))
}

func shardTimeKey(t time.Time, id lazaret.ID, shard int) []byte {
	b := append(encTime(prefix(nsShardTime), t), id...)
	b = append(b, 0)
	return binary.BigEndian.AppendUint16(b, uint16(shard))
}

// splitShardTimeKey returns the time, id and shard of a shard commit-time key.
func splitShardTimeKey(k []byte) (time.Time, lazaret.ID, int, bool) {
	if len(k) < 2+8+1+1+2 || k[0] != nsShardTime || k[1] != layoutVersion || k[len(k)-3] != 0 {
		return time.Time{}, "", 0, false
	}
	return decTime(k[2:10]), lazaret.ID(k[10 : len(k)-3]), int(binary.BigEndian.Uint16(k[len(k)-2:])), true
}

func recordKey(name string) []byte { return append(prefix(nsRecord), name...) }

// prefixLimit returns the smallest key after every key of namespace ns, the
// starting point of a reverse scan of the whole namespace.
func prefixLimit(ns byte) []byte { return []byte{ns, layoutVersion + 1} }

package objstore

import (
	"bufio"
	"bytes"
	"os"
	"strconv"
)

// deviceWriteBytes is write_bytes of /proc/self/io: bytes this process
// caused to be sent to the storage layer; -1 if unreadable.
func deviceWriteBytes() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		if v, ok := bytes.CutPrefix(sc.Bytes(), []byte("write_bytes: ")); ok {
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

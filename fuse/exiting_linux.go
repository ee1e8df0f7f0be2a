package fuse

import (
	"os"
	"strconv"
	"strings"
)

// pfExiting is the kernel's PF_EXITING task flag: set while a task closes
// its files on the way out.
const pfExiting = 0x4

// killedWriter reports whether pid is a task that is exiting because of a
// signal: its descriptors are being closed by the kernel, not by the
// program, so what it wrote is unfinished. It reads /proc/PID/stat (field 9,
// flags; field 52, exit_code, readable by root and the task's owner).
// Anything unreadable counts as not killed.
func killedWriter(pid uint32) bool {
	if pid == 0 {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return false
	}
	f := strings.Fields(s[i+1:]) // f[0] is field 3 (state)
	if len(f) < 50 {
		return false
	}
	flags, err1 := strconv.ParseUint(f[6], 10, 64)
	code, err2 := strconv.ParseInt(f[49], 10, 64)
	if err1 != nil || err2 != nil {
		return false
	}
	return flags&pfExiting != 0 && code&0x7f != 0
}

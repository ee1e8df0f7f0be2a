package objstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// mountTmpfs mounts a tmpfs of size bytes on a new directory and returns it;
// it is unmounted when the test ends. Mounting needs root: without it the
// test is skipped (make test runs as root).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root): %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// tryPut stores data as a whole-copy message, returning the first error.
func tryPut(s *objstore.Store, id lazaret.ID, data []byte) (*lazaret.Metadata, error) {
	w, err := s.NewShardWriter(id, objstore.ShardSpec{K: 1, BodySize: -1})
	if err != nil {
		return nil, err
	}
	defer w.Abort()
	if _, err := w.Write(data); err != nil {
		return nil, err
	}
	if _, err := w.Finish(); err != nil {
		return nil, err
	}
	m := testMeta(id, t0, int64(len(data)))
	m.SHA256 = sha256.Sum256(data)
	return m, s.Commit(context.Background(), m, w)
}

// A store on a full file system refuses writes with a temporary error
// instead of dying of SIGBUS in badger's mmap'd files (issue 16), keeps
// serving reads, lets deletes through, and takes writes again once space is
// freed; nothing stored is damaged, also after a reopen.
func TestDiskFull(t *testing.T) {
	mnt := mountTmpfs(t, "24m")
	cfg := objstore.DefaultConfig(filepath.Join(mnt, "db"))
	cfg.ChunkSize = 64 << 10
	cfg.MemTableSize = 1 << 20
	cfg.NumMemtables = 1
	cfg.NumLevelZeroTables, cfg.NumLevelZeroTablesStall = 1, 2
	cfg.BlockCacheSize, cfg.IndexCacheSize = 1<<20, 1<<20
	cfg.ValueLogFileSize = 2 << 20
	cfg.ValueThreshold = 1 << 10
	clock := lazaret.NewManualClock(t0)
	s, err := objstore.Open(cfg, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if s != nil {
			_ = s.Close()
		}
	}()

	// A shard write that a crash interrupts: swept at the next Open.
	pending, err := s.NewShardWriter(testID(900), objstore.ShardSpec{K: 1, BodySize: -1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pending.Write(body(3*cfg.ChunkSize, 900)); err != nil {
		t.Fatal(err)
	}

	// Take most of the space with another file, as another tenant of the
	// file system would.
	filler := filepath.Join(mnt, "filler")
	if err := os.WriteFile(filler, make([]byte, 12<<20), 0o600); err != nil {
		t.Fatal(err)
	}

	stored := map[lazaret.ID][]byte{}
	var full error
	for i := 0; i < 200 && full == nil; i++ {
		data := body(150<<10+i, uint64(i))
		if _, err := tryPut(s, testID(i), data); err != nil {
			full = err
			break
		}
		stored[testID(i)] = data
	}
	if full == nil {
		t.Fatal("200 puts of 150 KiB fitted on a 24 MiB file system")
	}
	if !errors.Is(full, lazaret.ErrDiskFull) || !errors.Is(full, lazaret.ErrUnavailable) {
		t.Fatalf("put on a full disk: %v, want ErrDiskFull (temporary)", full)
	}
	if len(stored) < 5 {
		t.Fatalf("only %d puts before the disk was full", len(stored))
	}
	t.Logf("%d puts, then: %v", len(stored), full)
	sp := s.Space()
	if sp.FullSince.IsZero() || sp.Refused == 0 || sp.Free < 0 || sp.Free >= sp.Reserve+150<<10 {
		t.Errorf("Space = %+v after a refused put", sp)
	}
	// Other writes that add data are refused too, and nothing partial shows.
	if _, err := s.NewShardWriter(testID(999), objstore.ShardSpec{K: 1, BodySize: -1}); err != nil {
		t.Fatal(err) // a writer stores nothing until its first chunk
	}
	if _, err := tryPut(s, testID(998), body(150<<10, 998)); !errors.Is(err, lazaret.ErrDiskFull) {
		t.Errorf("second put on a full disk: %v", err)
	}
	if _, err := s.Meta(testID(998)); !errors.Is(err, lazaret.ErrNotFound) {
		t.Errorf("refused put is visible: %v", err)
	}
	// Reads go on.
	for id, data := range stored {
		mustRead(t, s, id, 0, data)
	}
	// Deletes may use half the reserve.
	var victim lazaret.ID
	for id := range stored {
		victim = id
		break
	}
	if err := s.DeleteShards(victim); err != nil {
		t.Errorf("delete on a full disk: %v", err)
	}
	delete(stored, victim)

	// A restart on a disk full to the last block comes up (the unfinished
	// write stays for later) and serves reads.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filler, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = f.Write(make([]byte, 64<<10))
	}
	f.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the file system: %v", err)
	}
	// With not one block free badger cannot even write its LOCK file:
	// Open fails, plainly.
	if s, err = objstore.Open(cfg, nil, clock); err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("Open with no block free: %v", err)
	}
	// With less than half the reserve free, it comes up.
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, fi.Size()-1<<20); err != nil {
		t.Fatal(err)
	}
	if s, err = objstore.Open(cfg, nil, clock); err != nil {
		t.Fatalf("Open on a full disk: %v", err)
	}
	if n := s.KeyCount(objstore.NSPending); n != 1 {
		t.Errorf("%d unfinished writes after Open on a full disk, want the 1 left for later", n)
	}
	for id, data := range stored {
		mustRead(t, s, id, 0, data)
	}

	// Space comes back: writes resume by themselves.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	data := body(150<<10, 4242)
	if _, err := tryPut(s, testID(500), data); err != nil {
		t.Fatalf("put after space was freed: %v", err)
	}
	stored[testID(500)] = data
	if sp := s.Space(); !sp.FullSince.IsZero() {
		t.Errorf("Space = %+v after a put succeeded again", sp)
	}

	// Nothing stored was damaged, also across a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = objstore.Open(cfg, nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	for id, want := range stored {
		got, err := readShard(s, id, 0)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("after reopen %s: %d bytes, %v", id, len(got), err)
		}
	}
	if n := s.KeyCount(objstore.NSPending); n != 0 {
		t.Errorf("%d unfinished writes left after a reopen with space", n)
	}
}

// A second Open of the same directory names the process holding it rather
// than badger's lock error (issue 16).
func TestOpenInUse(t *testing.T) {
	_, _, cfg := newStore(t)
	_, err := objstore.Open(cfg, nil, nil)
	if !errors.Is(err, objstore.ErrInUse) || !strings.Contains(err.Error(), fmt.Sprintf("data directory in use by pid %d", os.Getpid())) {
		t.Errorf("second Open: %v", err)
	}
}

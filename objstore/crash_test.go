package objstore_test

import (
	"context"
	"os"
	"os/exec"
	"testing"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/objstore"
)

// crashDirEnv tells a re-executed test binary to play the crashing process.
const crashDirEnv = "OBJSTORE_TEST_CRASH_DIR"

// TestCrashKill runs a child process that commits one message, writes most
// of a second one and exits without closing the store (as after kill -9);
// reopening must show the first message whole and no trace of the second.
func TestCrashKill(t *testing.T) {
	if dir := os.Getenv(crashDirEnv); dir != "" {
		crashChild(dir)
		return
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashKill$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashDirEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	s := openStore(t, testConfig(dir), lazaret.NewManualClock(t0))
	mustRead(t, s, testID(1), 0, body(3*testChunk+1, 1))
	if infos, err := s.ShardInfos(testID(2)); err != nil || len(infos) != 0 {
		t.Fatalf("half-written message visible: %v, %v", infos, err)
	}
	if n := s.KeyCount(objstore.NSChunk); n != 4 {
		t.Fatalf("%d chunks after crash, want the committed message's 4", n)
	}
	if n := s.KeyCount(objstore.NSPending); n != 0 {
		t.Fatalf("%d pending markers after crash", n)
	}
	if st := stats(t, s); st.Messages != 1 || st.Shards != 1 {
		t.Fatalf("Stats after crash = %+v", st)
	}
}

func crashChild(dir string) {
	fail := func(err error) {
		os.Stderr.WriteString(err.Error())
		os.Exit(2)
	}
	s, err := objstore.Open(testConfig(dir), nil, lazaret.NewManualClock(t0))
	if err != nil {
		fail(err)
	}
	data := body(3*testChunk+1, 1)
	w, err := s.NewShardWriter(testID(1), objstore.ShardSpec{K: 1, BodySize: -1})
	if err != nil {
		fail(err)
	}
	if _, err := w.Write(data); err != nil {
		fail(err)
	}
	if _, err := w.Finish(); err != nil {
		fail(err)
	}
	if err := s.Commit(context.Background(), testMeta(testID(1), t0, int64(len(data))), w); err != nil {
		fail(err)
	}
	w2, err := s.NewShardWriter(testID(2), objstore.ShardSpec{K: 1, BodySize: -1})
	if err != nil {
		fail(err)
	}
	if _, err := w2.Write(body(10*testChunk, 2)); err != nil {
		fail(err)
	}
	if s.KeyCount(objstore.NSPending) != 1 || s.KeyCount(objstore.NSChunk) < 10 {
		fail(os.ErrInvalid)
	}
	os.Exit(0) // no Close, no Commit: the process dies mid-put
}

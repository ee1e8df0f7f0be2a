package test

// The fault soak (issue 10, item 2): five real nodes in network namespaces
// (3+2), writers putting the mail-size mix through random nodes, deleting,
// releasing (to an SMTP sink) and learning, while a schedule of faults
// runs: kill -9 of random nodes (never more than m = 2 down at once) and
// restarts, partitions (a node isolated, one-way cuts, a 2/3 split),
// a node cut off from PostgreSQL only, one node's disk (a tmpfs) filled up
// and emptied and remounted read-only, slowed links, clock steps of
// minutes on one node, and paused (SIGSTOP) processes. After a bounded
// settle every acknowledged message must read back byte-identical from
// every node, every deleted one must be gone everywhere (and never seen
// live again by a node that had seen it deleted), no id may have been
// issued twice, every failed put must have failed with a temporary error,
// and the PostgreSQL index must match the store. One summary line gives
// the counts.
//
// Parameters (environment): LAZARET_SOAK_DURATION (fault phase, default
// 40s), LAZARET_SOAK_KILLS (default 6), LAZARET_SOAK_WRITERS (default 3),
// LAZARET_SOAK_RATE (operations per second over all writers, default 5),
// LAZARET_SOAK_HOLD (how long each fault lasts, default 3s),
// LAZARET_SOAK_SETTLE (bound on convergence afterwards, default 150s),
// LAZARET_SOAK_DISK (bytes of node 5's tmpfs, default 768 MiB),
// LAZARET_SOAK_SEED (of the schedule and the writers' choices, default 1),
// LAZARET_SOAK_KEEP_LOGS (keep node logs even when the soak passes).
// `make test` runs the defaults; `make soak` the full schedule.

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/rpc"
)

// soakParams is one soak's schedule.
type soakParams struct {
	duration time.Duration // fault phase
	kills    int           // kill -9 over the fault phase
	writers  int
	rate     float64       // operations per second, all writers together
	hold     time.Duration // how long each non-kill fault lasts
	settle   time.Duration // bound on convergence after the faults
	disk     int64         // tmpfs size of the node whose disk fills
	seed     uint64        // of every random choice: one seed, one schedule
}

func soakParamsFromEnv(t *testing.T) soakParams {
	t.Helper()
	p := soakParams{duration: 40 * time.Second, kills: 6, writers: 3, rate: 5, hold: 3 * time.Second, settle: 150 * time.Second, disk: 768 << 20, seed: 1}
	dur := func(name string, d *time.Duration) {
		if v := os.Getenv(name); v != "" {
			x, err := time.ParseDuration(v)
			if err != nil || x <= 0 {
				t.Fatalf("%s=%q: want a positive duration", name, v)
			}
			*d = x
		}
	}
	num := func(name string, n *int) {
		if v := os.Getenv(name); v != "" {
			x, err := strconv.Atoi(v)
			if err != nil || x < 0 {
				t.Fatalf("%s=%q: want a whole number", name, v)
			}
			*n = x
		}
	}
	dur("LAZARET_SOAK_DURATION", &p.duration)
	dur("LAZARET_SOAK_HOLD", &p.hold)
	dur("LAZARET_SOAK_SETTLE", &p.settle)
	num("LAZARET_SOAK_KILLS", &p.kills)
	num("LAZARET_SOAK_WRITERS", &p.writers)
	if v := os.Getenv("LAZARET_SOAK_RATE"); v != "" {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil || x <= 0 {
			t.Fatalf("LAZARET_SOAK_RATE=%q: want a positive number", v)
		}
		p.rate = x
	}
	if v := os.Getenv("LAZARET_SOAK_SEED"); v != "" {
		x, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("LAZARET_SOAK_SEED=%q: want a whole number", v)
		}
		p.seed = x
	}
	if v := os.Getenv("LAZARET_SOAK_DISK"); v != "" {
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil || x < 64<<20 {
			t.Fatalf("LAZARET_SOAK_DISK=%q: want bytes, at least 64 MiB", v)
		}
		p.disk = x
	}
	return p
}

// soakM is the code's m (3+2): at most this many nodes are down at once.
const soakM = 2

// soak is one run's state.
type soak struct {
	t     *testing.T
	c     *netCluster
	p     soakParams
	start time.Time
	acks  *ackLog
	sink  *soakSink
	disk  *netNode // the node on the small tmpfs
	svcNS string
	ctx   context.Context // ends with the fault phase

	restarts sync.WaitGroup

	mu          sync.Mutex
	down        map[int]string // node k → why it is not serving
	events      map[string]int // kills, faults, operations by kind
	putFails    map[string]int // failed puts by error class
	nontemp     []string       // non-temporary put failures
	corrupt     []string       // wrong bytes read back during the run
	resurrected []string       // live again after a node had seen it deleted
	dupIDs      []string
	crashes     []string // node exits nobody asked for
	timeline    []string
	ids         map[lazaret.ID]*netMsg
	busy        map[lazaret.ID]bool         // picked for a delete or release
	released    map[lazaret.ID]*netMsg      // acknowledged releases
	seenDeleted map[int]map[lazaret.ID]bool // node k showed it live, then gone
	seenLive    map[int]map[lazaret.ID]bool
	ambiguous   map[lazaret.ID]bool   // delete never acknowledged: state unknown
	deletedBy   map[lazaret.ID]string // which node acknowledged the delete, when
	putBytes    int64
}

func (s *soak) logf(format string, args ...any) {
	line := fmt.Sprintf("+%6.1fs ", time.Since(s.start).Seconds()) + fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.timeline = append(s.timeline, line)
	s.mu.Unlock()
	s.t.Log(line)
}

func (s *soak) count(kind string, n int) {
	s.mu.Lock()
	s.events[kind] += n
	s.mu.Unlock()
}

// downCount is how many nodes are not serving.
func (s *soak) downCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.down)
}

// takeDown marks node k down for why, if that keeps at most m down.
func (s *soak) takeDown(k int, why string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.down[k]; ok || len(s.down) >= soakM {
		return false
	}
	s.down[k] = why
	return true
}

func (s *soak) isDown(k int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.down[k]
	return ok
}

func (s *soak) setUp(k int) {
	s.mu.Lock()
	delete(s.down, k)
	s.mu.Unlock()
}

// restartLater starts node k again after delay, retrying until it comes
// up (a full or read-only disk may keep it down for a while).
func (s *soak) restartLater(k int, delay time.Duration) {
	s.restarts.Add(1)
	go func() {
		defer s.restarts.Done()
		time.Sleep(delay)
		nd := s.c.node(k)
		for attempt := 1; ; attempt++ {
			err := nd.startErr(45 * time.Second)
			if err == nil {
				s.setUp(k)
				s.count("restarts", 1)
				return
			}
			if attempt == 1 || attempt%10 == 0 {
				s.logf("node %d: restart attempt %d failed: %s", k, attempt, netClip(lastLines(err.Error(), 3), 600))
			}
			nd.kill()
			time.Sleep(2 * time.Second)
		}
	}()
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// TestFaultSoak runs the soak; see the file comment.
func TestFaultSoak(t *testing.T) {
	p := soakParamsFromEnv(t)
	if os.Geteuid() != 0 {
		t.Skip("the fault soak needs root (network namespaces, tmpfs mounts)")
	}
	seq := int(netnsSeq.Add(1))
	c := newNetClusterIn(t, 5, netLayout{
		prefix: fmt.Sprintf("lzsoak-%d-%d", os.Getpid(), seq),
		addr:   soakNode,
		mask:   24,
		net:    "10.77.146.0/24",
	})
	s := &soak{
		t: t, c: c, p: p, start: time.Now(), acks: &ackLog{},
		down: map[int]string{}, events: map[string]int{}, putFails: map[string]int{},
		ids: map[lazaret.ID]*netMsg{}, busy: map[lazaret.ID]bool{}, released: map[lazaret.ID]*netMsg{},
		seenDeleted: map[int]map[lazaret.ID]bool{}, seenLive: map[int]map[lazaret.ID]bool{}, ambiguous: map[lazaret.ID]bool{}, deletedBy: map[lazaret.ID]string{},
	}
	s.svcNS = addSvcNamespace(t, c)
	nodeDSN, testDSN := startSoakPG(t, s.svcNS)
	s.sink = startSoakSink(t, s.svcNS)
	s.disk = c.node(5)
	mountTmpfs(t, s.disk.dataDir(), p.disk)
	// Unmount after every process is gone (cleanups run last-in first-out).
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			if pr := nd.proc(); pr != nil {
				syscall.Kill(pr.cmd.Process.Pid, syscall.SIGCONT)
			}
			nd.kill()
		}
		exec1("umount", "-l", s.disk.dataDir())
	})
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("LAZARET_SOAK_KEEP_LOGS") != "" {
			s.mu.Lock()
			tl := slices.Clone(s.timeline)
			s.mu.Unlock()
			t.Logf("node logs and the timeline kept in %s", keepLogs(c, tl))
		}
	})
	c.extraArgs = func(k int) []string {
		return []string{"--relay", soakSvcAddr + ":2525", "--postgres", nodeDSN,
			"--test-clock-offset-file", filepath.Join(c.node(k).dir, "clock-offset")}
	}
	c.bootstrap("3+2")
	t.Logf("soak: %v of faults, %d kills, %d writers at %.1f ops/s, faults held %v, settle bound %v, node 5 on a %d MiB tmpfs, seed %d",
		p.duration, p.kills, p.writers, p.rate, p.hold, p.settle, p.disk>>20, p.seed)

	ctx, cancel := context.WithTimeout(context.Background(), p.duration)
	defer cancel()
	s.ctx = ctx
	s.start = time.Now()
	var wg sync.WaitGroup
	for w := range p.writers {
		wg.Add(1)
		go func() { defer wg.Done(); s.writer(p.seed*100 + uint64(w+1)) }()
	}
	wg.Add(4)
	go func() { defer wg.Done(); s.killLoop() }()
	go func() { defer wg.Done(); s.faultLoop() }()
	go func() { defer wg.Done(); s.watchCrashes() }()
	go func() { defer wg.Done(); s.watchDeleted() }()
	wg.Wait()
	faultEnd := time.Now()
	s.logf("fault phase over; waiting for restarts")
	s.restarts.Wait()
	for _, nd := range c.nodes {
		if nd.proc() == nil {
			if err := nd.startErr(60 * time.Second); err != nil {
				t.Fatalf("node %d does not come back after the faults: %v", nd.k, err)
			}
		}
	}

	// Settle: every node alive, the same metadata everywhere, every
	// message fully placed.
	settleStart := time.Now()
	c.waitAllAlive(nil, p.settle)
	acked := s.acks.all()
	var checkable []*netMsg
	for _, a := range acked {
		if !s.ambiguous[a.id] {
			checkable = append(checkable, a)
		}
	}
	why, ref := s.settle(checkable, testDSN, settleStart)
	settled := time.Since(settleStart)
	notConverged := 0
	if why != "" {
		notConverged = 1
		s.logf("NOT converged %v after the faults ended: %s", settled.Round(time.Second), netClip(why, 600))
	} else {
		s.logf("converged %v after the faults ended", settled.Round(time.Second))
	}
	undeleted := s.explainUndeleted(acked)

	lost, corrupt, resurrected := s.verifyReads(acked)
	resurrected += undeleted
	indexBad := s.verifyIndex(testDSN, ref, p.settle)
	delivered, notDelivered, twice := s.verifyReleases()

	s.mu.Lock()
	var tempFails, allFails int
	var classes []string
	for k, n := range s.putFails {
		allFails += n
		if !strings.HasPrefix(k, "NOT TEMPORARY") {
			tempFails += n
		}
		classes = append(classes, fmt.Sprintf("%s %d", k, n))
	}
	sort.Strings(classes)
	var faults []string
	for k, n := range s.events {
		if strings.HasPrefix(k, "fault ") {
			faults = append(faults, fmt.Sprintf("%s %d", strings.TrimPrefix(k, "fault "), n))
		}
	}
	sort.Strings(faults)
	corrupt += len(s.corrupt)
	resurrected += len(s.resurrected)
	summary := fmt.Sprintf("fault soak: %v of faults, %d kill -9 (at most %d down), %d restarts, faults [%s]; "+
		"%d puts acknowledged (%.1f MB), %d failed (%d temporary), %d deletes, %d releases (%d delivered, %d not, %d twice), %d learns, %d reads during faults; "+
		"settled in %v%s: lost %d, corrupt %d, resurrected %d, duplicate ids %d, index mismatches %d, ambiguous deletes %d, unexpected exits %d",
		faultEnd.Sub(s.start).Round(time.Second), s.events["kill"], soakM, s.events["restarts"], strings.Join(faults, ", "),
		len(acked), float64(s.putBytes)/1e6, allFails, tempFails, s.events["delete"], s.events["release"], delivered, notDelivered, twice, s.events["learn"], s.events["read"],
		settled.Round(time.Second), map[bool]string{true: " (NOT converged)", false: ""}[notConverged > 0], lost, corrupt, resurrected, len(s.dupIDs), indexBad, len(s.ambiguous), len(s.crashes))
	nontemp := slices.Clone(s.nontemp)
	crashes := slices.Clone(s.crashes)
	dups := slices.Clone(s.dupIDs)
	s.mu.Unlock()
	fmt.Println(summary)
	t.Log(summary)
	t.Logf("put failures by class: %s", strings.Join(classes, "; "))
	for _, c := range crashes {
		t.Logf("unexpected exit: %s", c)
	}
	if notConverged+lost+corrupt+resurrected+len(dups)+indexBad+len(nontemp)+notDelivered+twice > 0 {
		t.Errorf("the soak found violations (not converged %d, lost %d, corrupt %d, resurrected %d, duplicate ids %v, index mismatches %d, undelivered releases %d, releases delivered twice %d, non-temporary put failures %d: %s)",
			notConverged, lost, corrupt, resurrected, dups, indexBad, notDelivered, twice, len(nontemp), netClip(strings.Join(nontemp, "; "), 3000))
	}
}

func exec1(name string, args ...string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	exec.CommandContext(ctx, name, args...).Run()
}

// soakOp picks the next operation: 70 % put, 8 % delete, 7 % release,
// 5 % learn, 10 % read.
func soakOp(r *rand.Rand) string {
	switch n := r.IntN(100); {
	case n < 70:
		return "put"
	case n < 78:
		return "delete"
	case n < 85:
		return "release"
	case n < 90:
		return "learn"
	default:
		return "read"
	}
}

// writer runs operations on random nodes until the fault phase ends.
func (s *soak) writer(seed uint64) {
	r := rand.New(rand.NewPCG(seed, 42))
	gap := time.Duration(float64(s.p.writers) / s.p.rate * float64(time.Second))
	for s.ctx.Err() == nil {
		k := 1 + r.IntN(len(s.c.nodes))
		switch soakOp(r) {
		case "put":
			s.put(r, k)
		case "delete":
			s.del(r)
		case "release":
			s.release(r, k)
		case "learn":
			s.learn(r, k)
		case "read":
			s.read(r, k)
		}
		select {
		case <-s.ctx.Done():
		case <-time.After(time.Duration(r.Int64N(int64(2 * gap)))):
		}
	}
}

func (s *soak) client(k int) (*rpc.Client, error) { return rpc.DialUnix(s.c.node(k).socket()) }

// temporary says whether a failed operation's error is one a client
// retries: unavailable, resources exhausted (a full disk), aborted, or our
// own deadline.
func temporary(err error) bool {
	var re *rpc.RemoteError
	if errors.As(err, &re) {
		switch re.Code.String() {
		case "Unavailable", "ResourceExhausted", "Aborted", "DeadlineExceeded":
			return true
		}
		return false
	}
	return errors.Is(err, lazaret.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

func errClass(err error) string {
	var re *rpc.RemoteError
	if errors.As(err, &re) {
		return re.Code.String()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return "client deadline"
	}
	return "other"
}

func (s *soak) put(r *rand.Rand, k int) {
	seed := s.acks.seed.Add(1)
	body := mailBody(seed, ecSize(r))
	m := &netMsg{seed: seed, size: len(body), sum: sha256.Sum256(body), node: k}
	c, err := s.client(k)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		var md *lazaret.Metadata
		md, err = c.Put(ctx, lazaret.PutRequest{Sender: "soak@example.org", Recipients: []string{"q@example.org"}}, strings.NewReader(string(body)))
		cancel()
		c.Close()
		if err == nil {
			m.id, m.at = md.ID, time.Now()
			s.mu.Lock()
			if prev, ok := s.ids[md.ID]; ok {
				s.dupIDs = append(s.dupIDs, fmt.Sprintf("%s (put on nodes %d and %d)", md.ID, prev.node, k))
			}
			s.ids[md.ID] = m
			s.putBytes += int64(len(body))
			if md.SHA256 != m.sum {
				s.corrupt = append(s.corrupt, fmt.Sprintf("put %s on node %d: stored SHA-256 %x, sent %x", md.ID, k, md.SHA256[:8], m.sum[:8]))
			}
			s.mu.Unlock()
			s.acks.add(m)
			s.count("put", 1)
			return
		}
	}
	class := errClass(err)
	if !temporary(err) {
		class = "NOT TEMPORARY " + class
		s.mu.Lock()
		s.nontemp = append(s.nontemp, fmt.Sprintf("+%.1fs node %d: %v", time.Since(s.start).Seconds(), k, err))
		s.mu.Unlock()
		s.logf("put on node %d failed with a non-temporary error: %v", k, err)
	}
	s.mu.Lock()
	s.putFails[class]++
	s.mu.Unlock()
}

// pick returns a random acknowledged message no delete or release has
// taken, marking it busy when claim is set.
func (s *soak) pick(r *rand.Rand, claim bool) *netMsg {
	all := s.acks.all()
	s.mu.Lock()
	defer s.mu.Unlock()
	for range 20 {
		if len(all) == 0 {
			return nil
		}
		m := all[r.IntN(len(all))]
		if s.busy[m.id] {
			continue
		}
		if claim {
			s.busy[m.id] = true
		}
		return m
	}
	return nil
}

// del deletes a message, trying random nodes until one acknowledges (or
// a minute passes: the message's state is then unknown and left out of
// the final checks).
func (s *soak) del(r *rand.Rand) {
	m := s.pick(r, true)
	if m == nil {
		return
	}
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		k := 1 + r.IntN(len(s.c.nodes))
		c, err := s.client(k)
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			_, err = c.Delete(ctx, m.id, "soak")
			cancel()
			c.Close()
		}
		if err == nil {
			s.mu.Lock()
			m.deleted = true
			s.deletedBy[m.id] = fmt.Sprintf("node %d at +%.1fs", k, time.Since(s.start).Seconds())
			s.mu.Unlock()
			s.count("delete", 1)
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	s.mu.Lock()
	s.ambiguous[m.id] = true
	s.mu.Unlock()
	s.logf("delete of %s never acknowledged", m.id)
}

// onMessage runs fn with a random acknowledged message (claimed for this
// operation alone when claim is set) and a client of node k.
func (s *soak) onMessage(r *rand.Rand, k int, claim bool, fn func(c *rpc.Client, m *netMsg)) {
	m := s.pick(r, claim)
	if m == nil {
		return
	}
	c, err := s.client(k)
	if err != nil {
		return
	}
	defer c.Close()
	fn(c, m)
}

func (s *soak) release(r *rand.Rand, k int) {
	s.onMessage(r, k, true, func(c *rpc.Client, m *netMsg) {
		ctx, cancel := context.WithTimeout(lazaret.WithRequestID(context.Background(), "soak-"+string(m.id)), 60*time.Second)
		defer cancel()
		if _, err := c.Release(ctx, m.id, nil, "soak"); err != nil {
			s.count("release failed", 1)
			return
		}
		s.mu.Lock()
		s.released[m.id] = m
		s.mu.Unlock()
		s.count("release", 1)
	})
}

func (s *soak) learn(r *rand.Rand, k int) {
	s.onMessage(r, k, false, func(c *rpc.Client, m *netMsg) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := c.Learn(ctx, m.id, lazaret.LearnSpam, "soak"); err == nil {
			s.count("learn", 1)
		}
	})
}

// read reads a message back during the faults: it may fail, but it must
// never return other bytes.
func (s *soak) read(r *rand.Rand, k int) {
	s.onMessage(r, k, false, func(c *rpc.Client, m *netMsg) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, rc, err := c.Open(ctx, m.id)
		if err != nil {
			return
		}
		defer rc.Close()
		h := sha256.New()
		n, err := io.Copy(h, rc)
		if err != nil {
			return
		}
		s.count("read", 1)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		if n != int64(m.size) || sum != m.sum {
			s.mu.Lock()
			s.corrupt = append(s.corrupt, fmt.Sprintf("+%.1fs read %s from node %d: %d bytes SHA-256 %x, put %d bytes %x", time.Since(s.start).Seconds(), m.id, k, n, sum[:8], m.size, m.sum[:8]))
			s.mu.Unlock()
		}
	})
}

// killLoop kills a random serving node every duration/kills, never taking
// more than m down, and restarts it after a few seconds.
func (s *soak) killLoop() {
	if s.p.kills == 0 {
		return
	}
	every := s.p.duration / time.Duration(s.p.kills+1)
	r := rand.New(rand.NewPCG(s.p.seed, 7))
	tick := time.NewTicker(every)
	defer tick.Stop()
	for done := 0; done < s.p.kills; {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		}
		k := 1 + r.IntN(len(s.c.nodes))
		if !s.takeDown(k, "killed") {
			continue
		}
		nd := s.c.node(k)
		if nd.proc() == nil {
			s.setUp(k) // still coming up from something else
			continue
		}
		nd.kill()
		done++
		s.count("kill", 1)
		delay := time.Second + time.Duration(r.Int64N(int64(min(8*time.Second, 2*every))))
		s.logf("kill -9 node %d (%d down); restart in %v", k, s.downCount(), delay.Round(100*time.Millisecond))
		s.restartLater(k, delay)
	}
}

// watchCrashes notices serving nodes whose process ended without a kill,
// records them with their log tail, and restarts them.
func (s *soak) watchCrashes() {
	for s.ctx.Err() == nil {
		time.Sleep(500 * time.Millisecond)
		for _, nd := range s.c.nodes {
			if s.isDown(nd.k) {
				continue
			}
			p := nd.proc()
			if p == nil {
				continue
			}
			select {
			case <-p.done:
			default:
				continue
			}
			s.mu.Lock()
			_, wasDown := s.down[nd.k]
			if !wasDown {
				s.down[nd.k] = "crashed"
			}
			s.mu.Unlock()
			if wasDown {
				continue
			}
			tail := nd.logTail(12)
			s.mu.Lock()
			s.crashes = append(s.crashes, fmt.Sprintf("+%.1fs node %d exited (%v): %s", time.Since(s.start).Seconds(), nd.k, p.cmd.ProcessState, netClip(tail, 2500)))
			s.mu.Unlock()
			s.logf("node %d exited by itself (%v); restarting it", nd.k, p.cmd.ProcessState)
			nd.kill() // reaps and clears
			s.restartLater(nd.k, time.Second)
		}
	}
}

// watchDeleted samples acknowledged messages on random serving nodes: a
// node that held a message and then, after its delete was acknowledged,
// no longer did must never show it live again.
func (s *soak) watchDeleted() {
	r := rand.New(rand.NewPCG(s.p.seed, 9))
	for s.ctx.Err() == nil {
		time.Sleep(2 * time.Second)
		// Every acknowledged message is a candidate: a node must be seen
		// holding it before the delete to tell "gone" from "never had".
		var dels []*netMsg
		deleted := map[lazaret.ID]bool{}
		s.mu.Lock()
		for _, m := range s.ids {
			dels = append(dels, m)
			deleted[m.id] = m.deleted
		}
		s.mu.Unlock()
		if len(dels) == 0 {
			continue
		}
		k := 1 + r.IntN(len(s.c.nodes))
		if s.isDown(k) {
			continue
		}
		c, err := s.client(k)
		if err != nil {
			continue
		}
		r.Shuffle(len(dels), func(i, j int) { dels[i], dels[j] = dels[j], dels[i] })
		for _, m := range dels[:min(len(dels), 25)] {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			md, err := c.Stat(ctx, m.id)
			cancel()
			if err != nil && !errors.Is(err, lazaret.ErrNotFound) {
				continue
			}
			// Stat hides deleted messages: a node that has shown the
			// message live and then not at all has applied the delete.
			s.mu.Lock()
			seen := s.seenDeleted[k]
			if seen == nil {
				seen = map[lazaret.ID]bool{}
				s.seenDeleted[k] = seen
			}
			live := s.seenLive[k]
			if live == nil {
				live = map[lazaret.ID]bool{}
				s.seenLive[k] = live
			}
			switch {
			case err == nil && seen[m.id] && deleted[m.id]:
				s.resurrected = append(s.resurrected, fmt.Sprintf("+%.1fs node %d shows %s %v after it had gone", time.Since(s.start).Seconds(), k, m.id, md.State))
			case err == nil:
				live[m.id] = true
			case live[m.id] && deleted[m.id]:
				seen[m.id] = true
			}
			s.mu.Unlock()
		}
		c.Close()
	}
}

// faultLoop runs one fault at a time, cycling through every kind in a
// shuffled order, each held for p.hold and then healed.
func (s *soak) faultLoop() {
	r := rand.New(rand.NewPCG(s.p.seed, 11))
	kinds := []string{"isolate", "one-way", "split", "postgres-cut", "disk-full", "read-only", "slow-link", "clock-step", "pause"}
	clockSign := 1
	for s.ctx.Err() == nil {
		r.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })
		for _, kind := range kinds {
			if s.ctx.Err() != nil {
				return
			}
			k := 1 + r.IntN(len(s.c.nodes))
			nd := s.c.node(k)
			heal, what, err := s.fault(r, kind, nd, &clockSign)
			if err != nil {
				s.logf("fault %s on node %d not applied: %v", kind, k, err)
				continue
			}
			s.count("fault "+kind, 1)
			s.logf("fault: %s", what)
			select {
			case <-s.ctx.Done():
			case <-time.After(s.p.hold):
			}
			if err := heal(); err != nil {
				s.logf("healing %s: %v", kind, err)
			} else {
				s.logf("healed: %s", kind)
			}
			select {
			case <-s.ctx.Done():
			case <-time.After(s.p.hold / 2):
			}
		}
	}
}

// fault applies one fault and returns what heals it.
func (s *soak) fault(r *rand.Rand, kind string, nd *netNode, clockSign *int) (func() error, string, error) {
	c := s.c
	switch kind {
	case "isolate":
		if err := ipCmd("-n", c.sw, "link", "set", "p"+strconv.Itoa(nd.k), "down"); err != nil {
			return nil, "", err
		}
		return func() error { return ipCmd("-n", c.sw, "link", "set", "p"+strconv.Itoa(nd.k), "up") },
			fmt.Sprintf("node %d isolated (its link down)", nd.k), nil
	case "one-way":
		// nd can no longer send to two other nodes; they still reach it.
		var others []*netNode
		for _, o := range c.nodes {
			if o != nd {
				others = append(others, o)
			}
		}
		r.Shuffle(len(others), func(i, j int) { others[i], others[j] = others[j], others[i] })
		others = others[:2]
		for _, o := range others {
			if err := nsRoute(nd.ns, "add", o.addr); err != nil {
				return nil, "", err
			}
		}
		return func() error {
				var first error
				for _, o := range others {
					if err := nsRoute(nd.ns, "del", o.addr); err != nil && first == nil {
						first = err
					}
				}
				return first
			}, fmt.Sprintf("one-way cut: node %d cannot send to nodes %d and %d (they still send to it)", nd.k, others[0].k, others[1].k),
			nil
	case "split":
		perm := r.Perm(len(c.nodes))
		a, b := perm[:2], perm[2:]
		var routes [][2]*netNode
		for _, i := range a {
			for _, j := range b {
				routes = append(routes, [2]*netNode{c.nodes[i], c.nodes[j]}, [2]*netNode{c.nodes[j], c.nodes[i]})
			}
		}
		for _, rt := range routes {
			if err := nsRoute(rt[0].ns, "add", rt[1].addr); err != nil {
				return nil, "", err
			}
		}
		return func() error {
				var first error
				for _, rt := range routes {
					if err := nsRoute(rt[0].ns, "del", rt[1].addr); err != nil && first == nil {
						first = err
					}
				}
				return first
			}, fmt.Sprintf("split: nodes %d,%d | %d,%d,%d", a[0]+1, a[1]+1, b[0]+1, b[1]+1, b[2]+1),
			nil
	case "postgres-cut":
		if err := nsRoute(nd.ns, "add", soakSvcAddr); err != nil {
			return nil, "", err
		}
		return func() error { return nsRoute(nd.ns, "del", soakSvcAddr) },
			fmt.Sprintf("node %d cut off from PostgreSQL only", nd.k), nil
	case "disk-full":
		dir := s.disk.dataDir()
		n, err := fillDisk(dir)
		if err != nil {
			os.Remove(filepath.Join(dir, "ballast"))
			return nil, "", err
		}
		return func() error { return os.Remove(filepath.Join(dir, "ballast")) },
			fmt.Sprintf("node %d's disk filled (%d MiB of ballast)", s.disk.k, n>>20), nil
	case "read-only":
		// A file system with files open for writing cannot be remounted
		// read-only, so the node is killed first (counted as a kill),
		// its disk remounted read-only, and it is started on it; when
		// healed the disk is made writable and the node restarted.
		k := s.disk.k
		if !s.takeDown(k, "read-only disk") {
			return nil, "", fmt.Errorf("node %d is down or too many nodes are", k)
		}
		s.disk.kill()
		s.count("kill", 1)
		dir := s.disk.dataDir()
		if err := remount(dir, "ro"); err != nil {
			s.restartLater(k, 0)
			return nil, "", err
		}
		startErr := s.disk.startErr(20 * time.Second)
		what := fmt.Sprintf("node %d killed, its disk remounted read-only, and started on it: ", k)
		if startErr == nil {
			what += "it runs"
		} else {
			what += "it does not start: " + netClip(lastLines(startErr.Error(), 4), 500)
			s.disk.kill()
		}
		return func() error {
			s.disk.kill()
			err := remount(dir, "rw")
			s.restartLater(k, 0)
			return err
		}, what, nil
	case "slow-link":
		what, err := shapeLink(nd.ns)
		if err != nil {
			return nil, "", err
		}
		return func() error { return unshapeLink(nd.ns) }, fmt.Sprintf("node %d's link slowed: %s", nd.k, what), nil
	case "clock-step":
		step := time.Duration(*clockSign) * time.Duration(2+r.IntN(4)) * time.Minute
		*clockSign = -*clockSign
		path := filepath.Join(nd.dir, "clock-offset")
		if err := os.WriteFile(path, []byte(step.String()), 0o644); err != nil {
			return nil, "", err
		}
		return func() error { return os.WriteFile(path, []byte("0s"), 0o644) },
			fmt.Sprintf("node %d's clock stepped %+v (and back when healed)", nd.k, step), nil
	case "pause":
		p := nd.proc()
		if p == nil || !s.takeDown(nd.k, "paused") {
			return nil, "", fmt.Errorf("node %d is down or too many nodes are", nd.k)
		}
		pid := p.cmd.Process.Pid
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			s.setUp(nd.k)
			return nil, "", err
		}
		return func() error {
				err := syscall.Kill(pid, syscall.SIGCONT)
				s.setUp(nd.k)
				return err
			},
			fmt.Sprintf("node %d paused (SIGSTOP)", nd.k), nil
	}
	return nil, "", fmt.Errorf("unknown fault %q", kind)
}

// settle polls converged until it passes or the settle bound ends; it
// returns why not (or "") and the store's records.
func (s *soak) settle(acked []*netMsg, pgDSN string, since time.Time) (string, map[lazaret.ID]*lazaret.Metadata) {
	last := ""
	for {
		why, ref := s.converged(acked, pgDSN)
		if why == "" {
			return "", ref
		}
		if why != last {
			s.t.Logf("+%v not converged: %s", time.Since(since).Round(time.Second), netClip(why, 400))
			last = why
		}
		if time.Since(since) > s.p.settle {
			if ref == nil {
				ids := map[lazaret.ID]bool{}
				for _, a := range acked {
					ids[a.id] = true
				}
				if pg, err := pgIDs(pgDSN); err == nil {
					for _, id := range pg {
						ids[id] = true
					}
				}
				ref, _ = s.storeRecords(1, slices.Collect(maps.Keys(ids)))
			}
			return why, ref
		}
		time.Sleep(2 * time.Second)
	}
}

// converged says why the cluster is not converged, or "": every node sees
// every other alive and reports nothing under-protected; every node's
// store holds the same live record (or none) for every id the test or the
// index knows (read with Stat, which answers from the store, live records
// only: List would answer from the shared index); every acknowledged
// message is there unless the test deleted it, with its SHA-256 and k+m
// shards on distinct nodes. It returns node 1's live records.
func (s *soak) converged(acked []*netMsg, pgDSN string) (string, map[lazaret.ID]*lazaret.Metadata) {
	for _, nd := range s.c.nodes {
		st, err := nd.statusErr(10 * time.Second)
		if err != nil {
			return fmt.Sprintf("node %d: status: %v", nd.k, err), nil
		}
		for _, o := range s.c.nodes {
			m := member(st, o.number)
			switch {
			case m == nil || m.State != "alive" || !m.Reported:
				return fmt.Sprintf("node %d does not see node %d alive: %+v", nd.k, o.k, m), nil
			case m.UnderProtected != 0:
				return fmt.Sprintf("node %d reports node %d with %d under-protected messages", nd.k, o.k, m.UnderProtected), nil
			}
		}
	}
	idSet := map[lazaret.ID]bool{}
	for _, a := range acked {
		idSet[a.id] = true
	}
	pgIDs, err := pgIDs(pgDSN)
	if err != nil {
		return "index: " + err.Error(), nil
	}
	for _, id := range pgIDs {
		idSet[id] = true
	}
	ids := make([]lazaret.ID, 0, len(idSet))
	for id := range idSet {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var ref map[lazaret.ID]*lazaret.Metadata
	var refJSON map[lazaret.ID]string
	for _, nd := range s.c.nodes {
		recs, err := s.storeRecords(nd.k, ids)
		if err != nil {
			return fmt.Sprintf("node %d: %v", nd.k, err), nil
		}
		js := map[lazaret.ID]string{}
		for id, m := range recs {
			b, _ := json.Marshal(canonicalHistory(m))
			js[id] = string(b)
		}
		if ref == nil {
			ref, refJSON = recs, js
			continue
		}
		for _, id := range ids {
			if js[id] != refJSON[id] {
				return fmt.Sprintf("record %s differs between node 1 and node %d: %s", id, nd.k, jsonFieldDiff(refJSON[id], js[id])), ref
			}
		}
	}
	for _, a := range acked {
		m := ref[a.id] // Stat does not show deleted messages
		switch {
		case a.deleted && m != nil:
			return fmt.Sprintf("message %s: delete acknowledged, but it is %v", a.id, m.State), ref
		case a.deleted:
			continue
		case m == nil:
			return fmt.Sprintf("acknowledged message %s (put on node %d) is missing", a.id, a.node), ref
		case m.SHA256 != a.sum:
			return fmt.Sprintf("message %s: sha256 %x, want %x", a.id, m.SHA256, a.sum), ref
		}
		if why := fullyProtected(m, soakM); why != "" {
			return why, ref
		}
	}
	return "", ref
}

// canonicalHistory returns m with its history in the merge's order (time,
// node, action, actor, detail, request id). A node whose clock stepped
// back may hold the same events in the order it appended them; anti-entropy
// hashes the canonical order, so that copy is equal, and stays as it is.
func canonicalHistory(m *lazaret.Metadata) *lazaret.Metadata {
	c := m.Clone()
	slices.SortStableFunc(c.History, func(a, b lazaret.Event) int {
		if d := a.Time.Compare(b.Time); d != 0 {
			return d
		}
		if a.Node != b.Node {
			return a.Node - b.Node
		}
		return strings.Compare(a.Action+"\x00"+a.Actor+"\x00"+a.Detail+"\x00"+a.Request, b.Action+"\x00"+b.Actor+"\x00"+b.Detail+"\x00"+b.Request)
	})
	return c
}

// storeRecords reads the records of ids from node k's store; an id the
// node does not know is absent from the result.
func (s *soak) storeRecords(k int, ids []lazaret.ID) (map[lazaret.ID]*lazaret.Metadata, error) {
	c, err := s.client(k)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	out := make([]*lazaret.Metadata, len(ids))
	err = parallel(len(ids), 8, func(i int) error {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		md, err := c.Stat(ctx, ids[i])
		if errors.Is(err, lazaret.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", ids[i], err)
		}
		out[i] = md
		return nil
	})
	if err != nil {
		return nil, err
	}
	recs := map[lazaret.ID]*lazaret.Metadata{}
	for i, m := range out {
		if m != nil {
			recs[ids[i]] = m
		}
	}
	return recs, nil
}

// pgIDs lists the message ids the index holds.
func pgIDs(dsn string) ([]lazaret.ID, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT messageid FROM messages")
	if err != nil {
		return nil, err
	}
	var out []lazaret.ID
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, lazaret.ID(id))
	}
	return out, rows.Err()
}

// explainUndeleted finds messages whose delete was acknowledged but which
// a node shows in another state, and logs each with its record on every
// node: the delete was lost.
func (s *soak) explainUndeleted(acked []*netMsg) int {
	bad := 0
	for _, a := range acked {
		if !a.deleted {
			continue
		}
		var lines []string
		for _, nd := range s.c.nodes {
			c, err := s.client(nd.k)
			if err != nil {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			md, err := c.Stat(ctx, a.id)
			cancel()
			c.Close()
			if err != nil || md.State == lazaret.StateDeleted {
				continue
			}
			js, _ := json.Marshal(struct {
				V lazaret.Version
				H []lazaret.Event
				P lazaret.Placement
			}{md.Version, md.History, md.Placement})
			lines = append(lines, fmt.Sprintf("node %d: %v %s", nd.k, md.State, js))
		}
		if len(lines) > 0 {
			bad++
			s.mu.Lock()
			by := s.deletedBy[a.id]
			s.mu.Unlock()
			s.logf("delete of %s (put on node %d at %s) acknowledged by %s, but:\n  %s", a.id, a.node, a.at.Format("15:04:05.000"), by, strings.Join(lines, "\n  "))
		}
	}
	return bad
}

// verifyReads reads every acknowledged message from every node: live ones
// must come back byte-identical, deleted ones must not come back at all.
func (s *soak) verifyReads(acked []*netMsg) (lost, corrupt, resurrected int) {
	// Counted per message: a message lost on every node is one loss.
	var mu2 sync.Mutex
	lostIDs, corruptIDs, resIDs := map[lazaret.ID]bool{}, map[lazaret.ID]bool{}, map[lazaret.ID]bool{}
	mark := func(set map[lazaret.ID]bool, id lazaret.ID) {
		mu2.Lock()
		set[id] = true
		mu2.Unlock()
	}
	clients := map[int]*rpc.Client{}
	for _, nd := range s.c.nodes {
		c, err := s.client(nd.k)
		if err != nil {
			s.t.Fatal(err)
		}
		defer c.Close()
		clients[nd.k] = c
	}
	var msgs []*netMsg
	for _, a := range acked {
		if !s.ambiguous[a.id] {
			msgs = append(msgs, a)
		}
	}
	n := len(s.c.nodes)
	var mu sync.Mutex
	report := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		s.t.Logf(format, args...)
	}
	parallel(len(msgs)*n, 4, func(i int) error {
		a, k := msgs[i/n], i%n+1
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, rc, err := clients[k].Open(ctx, a.id)
		if a.deleted {
			if err == nil {
				rc.Close()
				mark(resIDs, a.id)
				report("deleted message %s is readable from node %d", a.id, k)
			}
			return nil
		}
		if err != nil {
			mark(lostIDs, a.id)
			report("acknowledged message %s (put on node %d at %s) cannot be read from node %d: %v", a.id, a.node, a.at.Format("15:04:05.000"), k, err)
			if k == 1 {
				if md, err := clients[1].Stat(ctx, a.id); err == nil {
					js, _ := json.Marshal(struct {
						P lazaret.Placement
						H []lazaret.Event
						V lazaret.Version
					}{md.Placement, md.History, md.Version})
					report("%s on node 1: %s", a.id, js)
				}
			}
			return nil
		}
		defer rc.Close()
		h := sha256.New()
		got, err := io.Copy(h, rc)
		var sum [32]byte
		copy(sum[:], h.Sum(nil))
		if err != nil || got != int64(a.size) || sum != a.sum {
			mark(corruptIDs, a.id)
			report("message %s from node %d: %d bytes (%v), SHA-256 %x; put %d bytes %x", a.id, k, got, err, sum[:8], a.size, a.sum[:8])
		}
		return nil
	})
	return len(lostIDs), len(corruptIDs), len(resIDs)
}

// verifyIndex waits until every node's outbox is drained and compares the
// PostgreSQL rows with the store's live records (ref, from node 1): every
// live record has a row with its version and state, and every other row
// says deleted.
func (s *soak) verifyIndex(dsn string, ref map[lazaret.ID]*lazaret.Metadata, bound time.Duration) int {
	deadline := time.Now().Add(bound)
	for _, nd := range s.c.nodes {
		for {
			st := nd.status(10 * time.Second)
			if st != nil && st.Index != nil && st.Index.Backlog == 0 && !st.Index.Resync {
				break
			}
			if time.Now().After(deadline) {
				s.t.Errorf("node %d's index outbox not drained within %v: %+v", nd.k, bound, st)
				return 1
			}
			time.Sleep(time.Second)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		s.t.Errorf("connecting to the index: %v", err)
		return 1
	}
	defer conn.Close(ctx)
	rows, err := conn.Query(ctx, "SELECT messageid, state, version_wall, version_logical, version_node FROM messages")
	if err != nil {
		s.t.Errorf("reading the index: %v", err)
		return 1
	}
	type row struct {
		state string
		v     lazaret.Version
	}
	got := map[lazaret.ID]row{}
	for rows.Next() {
		var id, state string
		var wall, logical int64
		var node int32
		if err := rows.Scan(&id, &state, &wall, &logical, &node); err != nil {
			s.t.Errorf("reading the index: %v", err)
			return 1
		}
		got[lazaret.ID(id)] = row{state, lazaret.Version{Wall: wall, Logical: uint32(logical), Node: int(node)}}
	}
	if err := rows.Err(); err != nil {
		s.t.Errorf("reading the index: %v", err)
		return 1
	}
	bad := 0
	for id, m := range ref {
		g, ok := got[id]
		switch {
		case !ok:
			bad++
			s.t.Logf("index lacks %s (%v)", id, m.State)
		case g.v != m.Version || g.state != m.State.String():
			bad++
			s.t.Logf("index row %s: %s %+v; store: %s %+v", id, g.state, g.v, m.State, m.Version)
		}
	}
	for id, g := range got {
		if ref[id] == nil && g.state != lazaret.StateDeleted.String() {
			bad++
			s.t.Logf("index row %s is %s, but the store has no live record", id, g.state)
		}
	}
	s.logf("index: %d rows, %d store records, %d mismatches", len(got), len(ref), bad)
	return bad
}

// verifyReleases checks the sink got every acknowledged release exactly
// once.
func (s *soak) verifyReleases() (delivered, missing, twice int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, m := range s.released {
		switch n := s.sink.count(m.sum); {
		case n == 0:
			missing++
			s.t.Logf("release of %s acknowledged but never delivered", id)
		case n == 1:
			delivered++
		default:
			delivered++
			twice++
			s.t.Logf("release of %s delivered %d times", id, n)
		}
	}
	return
}

// jsonFieldDiff names the top-level fields in which two JSON records
// differ, with both values (clipped), so a convergence failure says what
// did not converge.
func jsonFieldDiff(a, b string) string {
	var ma, mb map[string]json.RawMessage
	if json.Unmarshal([]byte(a), &ma) != nil || json.Unmarshal([]byte(b), &mb) != nil {
		return fmt.Sprintf("%s vs %s", netClip(a, 300), netClip(b, 300))
	}
	var out []string
	for k := range ma {
		if string(ma[k]) != string(mb[k]) {
			out = append(out, fmt.Sprintf("%s: %s vs %s", k, netClip(string(ma[k]), 400), netClip(string(mb[k]), 400)))
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, fmt.Sprintf("%s: absent vs %s", k, netClip(string(mb[k]), 400)))
		}
	}
	slices.Sort(out)
	return strings.Join(out, "; ")
}

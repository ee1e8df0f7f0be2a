package cluster_test

import (
	"context"
	"crypto/x509"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/lazaret/lazaret"
	"github.com/lazaret/lazaret/proto/lazaretpb"
	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/replicator/member"
)

// fakeCluster is an in-memory JoinCluster.
type fakeCluster struct {
	mu      sync.Mutex
	self    member.Member
	members []member.Member
	events  []string
	answers map[string][]byte
}

func (f *fakeCluster) Self() member.Member { return f.self }
func (f *fakeCluster) Members() []member.Member {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]member.Member(nil), f.members...)
}
func (f *fakeCluster) GossipPeers() []string { return []string{"127.0.0.1:7946"} }
func (f *fakeCluster) UserEvent(name string, p []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, name+" "+string(p))
	return nil
}
func (f *fakeCluster) Query(string, []byte, time.Duration) (map[string][]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.answers, nil
}

type joinFixture struct {
	svc     *cluster.JoinService
	fake    *fakeCluster
	token   string
	tokens  *cluster.Tokens
	numbers *cluster.Numbers
	dir     string
}

func newJoinFixture(t *testing.T, ca *cluster.CA, self *cluster.Credentials) *joinFixture {
	t.Helper()
	dir := t.TempDir()
	tok, st, err := cluster.NewToken(time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := cluster.WriteTokenState(filepath.Join(dir, "token.json"), st); err != nil {
		t.Fatal(err)
	}
	tokens, err := cluster.OpenTokens(filepath.Join(dir, "token.json"))
	if err != nil {
		t.Fatal(err)
	}
	numbers, err := cluster.OpenNumbers(filepath.Join(dir, "numbers"))
	if err != nil {
		t.Fatal(err)
	}
	fake := &fakeCluster{self: member.Member{Name: self.ID.Name, Number: self.ID.Number}}
	fake.members = []member.Member{fake.self}
	svc := cluster.NewJoinService(cluster.JoinConfig{CA: ca, GossipKey: make([]byte, 32), Policy: "3+2"}, fake, tokens, numbers,
		slog.New(slog.DiscardHandler), lazaret.SystemClock{})
	return &joinFixture{svc: svc, fake: fake, token: tok, tokens: tokens, numbers: numbers, dir: dir}
}

func (f *joinFixture) join(t *testing.T, name, token string) (*lazaretpb.JoinResponse, error) {
	t.Helper()
	_, csr, err := cluster.NewNodeKey(name)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return f.svc.Join(ctx, &lazaretpb.JoinRequest{Name: name, Token: token, CsrDer: csr, Addresses: []string{"127.0.0.9"}})
}

func TestJoinAllocatesNumbersNeverReused(t *testing.T) {
	ca := newCA(t)
	f := newJoinFixture(t, ca, issue(t, ca, "n1", 1))
	f.fake.members = append(f.fake.members,
		member.Member{Name: "n2", Number: 2, State: member.Failed},
		member.Member{Name: "n5", Number: 5, State: member.Left})

	resp, err := f.join(t, "n6", f.token)
	if err != nil {
		t.Fatal(err)
	}
	if resp.NodeNumber != 6 {
		t.Fatalf("first joiner got number %d, want 6 (above the left member 5)", resp.NodeNumber)
	}
	cert, err := cluster.ParseCertPEM(resp.CertPem)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca.Cert)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatal(err)
	}
	if id, _ := cluster.IdentityOf(cert); id != (cluster.Identity{Name: "n6", Number: 6}) {
		t.Fatalf("certificate identity %v", id)
	}
	if resp.Policy != "3+2" || len(resp.GossipKey) != 32 || len(resp.CaKeyPem) == 0 || resp.Token != f.token {
		t.Fatalf("response misses cluster secrets: %+v", resp)
	}

	// n6 never started; the number is still not handed out again, and
	// the mark survives a restart (reopen the file).
	resp, err = f.join(t, "n7", f.token)
	if err != nil || resp.NodeNumber != 7 {
		t.Fatalf("second joiner: %v, number %d, want 7", err, resp.GetNodeNumber())
	}
	reopened, err := cluster.OpenNumbers(filepath.Join(f.dir, "numbers"))
	if err != nil || reopened.Max() != 7 {
		t.Fatalf("persisted mark = %d, %v; want 7", reopened.Max(), err)
	}
	if len(f.fake.events) != 2 || f.fake.events[1] != cluster.NumberEvent+" 7" {
		t.Fatalf("announcements: %q", f.fake.events)
	}

	// Concurrent joins through one node all get distinct numbers.
	var wg sync.WaitGroup
	got := make(chan int32, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r, err := f.join(t, "c"+string(rune('a'+i)), f.token)
			if err != nil {
				t.Error(err)
				return
			}
			got <- r.NodeNumber
		}()
	}
	wg.Wait()
	close(got)
	seen := map[int32]bool{}
	for n := range got {
		if seen[n] || n <= 7 {
			t.Fatalf("number %d handed out twice or reused", n)
		}
		seen[n] = true
	}
}

func TestJoinRefusals(t *testing.T) {
	ca := newCA(t)
	f := newJoinFixture(t, ca, issue(t, ca, "n1", 1))
	f.fake.members = append(f.fake.members, member.Member{Name: "n2", Number: 2, State: member.Failed})

	if _, err := f.join(t, "n3", "lzt_wrong"); status.Code(err) != codes.PermissionDenied {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := f.join(t, "n2", f.token); status.Code(err) != codes.AlreadyExists {
		t.Errorf("taken name: %v", err)
	}
	if _, err := f.join(t, "bad name", f.token); status.Code(err) != codes.InvalidArgument {
		t.Errorf("bad name: %v", err)
	}
	if f.numbers.Max() > 2 {
		t.Errorf("refused joins consumed numbers: mark %d", f.numbers.Max())
	}

	// Rotation elsewhere: a member answers the token query with a newer
	// state; the old token stops working here and the new one works.
	newTok, newState, _ := cluster.NewToken(time.Now().Add(time.Second))
	f.fake.answers = map[string][]byte{"n2": []byte(encodeState(newState))}
	if _, err := f.join(t, "n3", f.token); status.Code(err) != codes.PermissionDenied {
		t.Errorf("rotated-out token: %v", err)
	}
	if f.tokens.Current().SHA256 != newState.SHA256 {
		t.Errorf("the newest token state was not adopted")
	}
	if _, err := f.join(t, "n3", newTok); err != nil {
		t.Errorf("new token: %v", err)
	}
}

func encodeState(s cluster.TokenState) string {
	return itoa(s.Issued.UnixNano()) + " " + s.SHA256
}

func itoa(n int64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

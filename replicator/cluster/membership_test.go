package cluster_test

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/lazaret/lazaret/replicator/cluster"
	"github.com/lazaret/lazaret/replicator/member"
)

var gossipKey = []byte("0123456789abcdef0123456789abcdef")

func startMember(t *testing.T, name string, number int, join ...string) (*cluster.Membership, error) {
	t.Helper()
	cfg := cluster.DefaultMembershipConfig()
	cfg.Name, cfg.Number, cfg.PeerAddr, cfg.Version = name, number, "127.0.0.1:1027", "test"
	cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
	cfg.Join, cfg.GossipKey, cfg.Local = join, gossipKey, true
	m, err := cluster.NewMembership(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Start(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { m.Close() })
	return m, nil
}

// waitMembers waits until m sees exactly want (number → state).
func waitMembers(t *testing.T, m *cluster.Membership, want map[int]member.State) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := map[int]member.State{}
		for _, mem := range m.Members() {
			got[mem.Number] = mem.State
		}
		if len(got) == len(want) {
			ok := true
			for n, s := range want {
				if got[n] != s {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s sees %v, want %v", m.Self().Name, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMembershipConvergesAndRefusesDuplicates(t *testing.T) {
	a, err := startMember(t, "a", 1)
	if err != nil {
		t.Fatal(err)
	}
	seed := a.Self().GossipAddr
	b, err := startMember(t, "b", 2, seed)
	if err != nil {
		t.Fatal(err)
	}
	c, err := startMember(t, "c", 3, seed)
	if err != nil {
		t.Fatal(err)
	}
	all := map[int]member.State{1: member.Alive, 2: member.Alive, 3: member.Alive}
	for _, m := range []*cluster.Membership{a, b, c} {
		waitMembers(t, m, all)
	}
	ms := b.Members()
	if ms[0].Number != 1 || ms[2].Number != 3 || ms[1].PeerAddr != "127.0.0.1:1027" || ms[1].Version != "test" {
		t.Fatalf("members: %+v", ms)
	}

	// A node claiming number 2 under another name is refused, clearly,
	// and never listed anywhere.
	_, err = startMember(t, "dup", 2, seed)
	if !errors.Is(err, cluster.ErrMemberConflict) || !strings.Contains(err.Error(), "node number 2 is already taken") {
		t.Fatalf("duplicate number: %v", err)
	}
	// A node reusing a member's name with another number is refused too.
	_, err = startMember(t, "c", 9, b.Self().GossipAddr)
	if !errors.Is(err, cluster.ErrMemberConflict) {
		t.Fatalf("duplicate name: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	for _, m := range []*cluster.Membership{a, b, c} {
		for _, mem := range m.Members() {
			if mem.Name == "dup" || mem.Number == 9 {
				t.Fatalf("%s lists the refused node: %+v", m.Self().Name, mem)
			}
		}
	}

	// A crash shows as failed (or suspect first); a graceful stop as left.
	c.Kill()
	waitMembers(t, a, map[int]member.State{1: member.Alive, 2: member.Alive, 3: member.Failed})
	b.Close()
	waitMembers(t, a, map[int]member.State{1: member.Alive, 2: member.Left, 3: member.Failed})
	// The failed node's number stays taken.
	if _, err := startMember(t, "d", 3, seed); !errors.Is(err, cluster.ErrMemberConflict) {
		t.Fatalf("number of a failed member: %v", err)
	}
}

func TestMembershipEventsAndQueries(t *testing.T) {
	got := make(chan string, 10)
	mk := func(name string, number int, join ...string) *cluster.Membership {
		cfg := cluster.DefaultMembershipConfig()
		cfg.Name, cfg.Number, cfg.PeerAddr = name, number, "127.0.0.1:1027"
		cfg.BindAddr, cfg.BindPort = "127.0.0.1", 0
		cfg.Join, cfg.GossipKey, cfg.Local = join, gossipKey, true
		m, err := cluster.NewMembership(cfg, slog.New(slog.DiscardHandler))
		if err != nil {
			t.Fatal(err)
		}
		m.HandleEvent("ping", func(p []byte) { got <- name + ":" + string(p) })
		m.HandleQuery("who", func([]byte) []byte { return []byte(name) })
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { m.Close() })
		return m
	}
	a := mk("a", 1)
	b := mk("b", 2, a.Self().GossipAddr)
	waitMembers(t, a, map[int]member.State{1: member.Alive, 2: member.Alive})
	waitMembers(t, b, map[int]member.State{1: member.Alive, 2: member.Alive})
	qt := time.Now()
	answers, err := a.Query("who", nil, 2*time.Second)
	t.Logf("query took %v", time.Since(qt))
	if err != nil || string(answers["a"]) != "a" || string(answers["b"]) != "b" {
		t.Fatalf("query answers %q, %v", answers, err)
	}
	if err := b.UserEvent("ping", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	timeout := time.After(5 * time.Second)
	for len(seen) < 2 {
		select {
		case s := <-got:
			seen[s] = true
		case <-timeout:
			t.Fatalf("user event reached only %v", seen)
		}
	}
	if !seen["a:hi"] || !seen["b:hi"] {
		t.Fatalf("events: %v", seen)
	}
}

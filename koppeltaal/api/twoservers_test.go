package api_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestTwoServersNeverShareAClaim runs two independent server stacks (each its
// own store and connection pool, as two processes would have) on one
// PostgreSQL database; concurrent claimers on both never get the same message.
func TestTwoServersNeverShareAClaim(t *testing.T) {
	b := storetest.NewPostgres(t)
	cfg := twoDomains()
	h1 := newHarness(t, b, cfg)
	h2 := newHarness(t, b, cfg)
	const n = 120
	for i := 0; i < n; i++ {
		h := h1
		if i%2 == 1 {
			h = h2
		}
		if r := postAs(h, "portal@a", "pa", patientMessage("A", fmt.Sprintf("https://a.example/Patient/%d", i)), dstu1.FormatJSON); r.Status != 200 {
			t.Fatalf("post %d: %d %s", i, r.Status, r)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		h := []*harness{h1, h2}[w%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				r := claim(h, "game@a", "ga", dstu1.FormatJSON)
				if r.Status != 200 {
					t.Errorf("claim: %d %s", r.Status, r)
					return
				}
				msg, err := dstu1.ParseBundle(r.Body, dstu1.FormatJSON)
				if err != nil {
					t.Errorf("claim reply: %v", err)
					return
				}
				if len(msg.Entries) == 0 {
					return
				}
				mu.Lock()
				seen[msg.Entries[0].ID]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("claimed %d distinct messages, want %d", len(seen), n)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("%s handed out %d times", id, c)
		}
	}
}

// TestTwoServersSweepInOneProcess runs the claim sweeper of two server stacks
// on one PostgreSQL database: one of them holds the sweeper's lease and sweeps
// (an expired claim comes back); when it stops, the other takes over.
func TestTwoServersSweepInOneProcess(t *testing.T) {
	b := storetest.NewPostgres(t)
	cfg := twoDomains()
	cfg.ClaimTimeout, cfg.SweepInterval = 200*time.Millisecond, 50*time.Millisecond
	hs := []*harness{newHarness(t, b, cfg), newHarness(t, b, cfg)}
	ctxs := make([]context.CancelFunc, 2)
	stopped := make([]chan struct{}, 2)
	for i, h := range hs {
		c, cancel := context.WithCancel(ctx)
		ctxs[i], stopped[i] = cancel, make(chan struct{})
		go func() { _ = h.srv.Run(c); close(stopped[i]) }()
	}
	defer func() {
		for i := range hs {
			ctxs[i]()
			<-stopped[i]
		}
	}()
	holderIndex := func() int {
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			for i, h := range hs {
				holder, _, ok, err := h.st.LeaseHolder(ctx, koppeltaal.SweeperJob)
				if err != nil {
					t.Fatal(err)
				}
				if ok && holder == h.st.LeaseHolderName() {
					return i
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Fatal("no server holds the sweeper lease")
		return -1
	}
	// Each phase uses its own domain: the first phase's message keeps being swept back.
	expiredClaimComesBack := func(h *harness, domain, patient string) {
		t.Helper()
		d := strings.ToLower(domain)
		if r := postAs(h, "portal@"+d, "p"+d, patientMessage(domain, patient), dstu1.FormatJSON); r.Status != 200 {
			t.Fatalf("post: %d %s", r.Status, r)
		}
		if r := claim(h, "game@"+d, "g"+d, dstu1.FormatJSON); r.Status != 200 || !strings.Contains(r.String(), patient) {
			t.Fatalf("claim: %d %s", r.Status, r)
		}
		deadline := time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if r := claim(h, "game@"+d, "g"+d, dstu1.FormatJSON); strings.Contains(r.String(), patient) {
				return // swept back to New and claimed again
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Fatalf("the expired claim of %s was not swept back", patient)
	}
	first := holderIndex()
	expiredClaimComesBack(hs[1-first], "A", "https://a.example/Patient/swept-1")
	ctxs[first]()
	<-stopped[first]
	if next := holderIndex(); next != 1-first {
		t.Fatalf("lease holder after server %d stopped: %d", first, next)
	}
	expiredClaimComesBack(hs[first], "B", "https://b.example/Patient/swept-2")
}

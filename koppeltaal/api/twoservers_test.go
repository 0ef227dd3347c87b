package api_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
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

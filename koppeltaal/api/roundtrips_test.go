package api_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Round trips to PostgreSQL per request, counted at the socket
// (store.RoundTrips). Each is a wait for the database; on a loaded machine
// that, not the work, is what a request costs (README, Performance). The
// budgets are what the pipelined transactions give (store/pgtx.go); a change
// that adds a round trip fails here. A statement that only has to be written
// (an audit row) belongs in tx.Queue, which adds none.
var roundTripBudget = map[string]uint64{
	"POST (new patient)": 3, // BEGIN + locks + receipt + resources; the accept statement; COMMIT
	"POST (CarePlan update, practitioner unchanged: shared lock)": 3,
	"claim": 2, // BEGIN + claim; COMMIT (rendered from the message cache)
	// BEGIN + read entry; status update; retention check (SPEC.md §10.2: the message row locked, are all
	// recipients done? the removal of the body queued with COMMIT); COMMIT
	"acknowledge":               4,
	"claim of an empty mailbox": 2,
}

func TestPostgresRoundTripsPerRequest(t *testing.T) {
	b := storetest.NewPostgres(t)
	// One connection: every request uses it, so after the warm-up its prepared
	// statements are cached (pgx prepares a statement on first use: one round
	// trip more, once per connection). With two, which one a request got depended
	// on how many connections the requests before took.
	// The cached instance and subscriber rows are read again after CacheTTL
	// (2 and 1 round trips more); with the default second, whether a request
	// paid for that depended on how long the requests before it took under
	// load. An hour here: the budgets are for the cached steady state.
	st, err := store.Open(ctx, store.Config{DSN: b.DSN, MaxOpenConns: 1, CacheTTL: time.Hour, AnalyzeEvery: -1 /* its looks would count */}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := newHarnessOn(t, st, twoDomains())
	const pract = "https://a.example/Practitioner/rt"

	got := map[string]uint64{}
	measure := func(name string, want int, do func() reply) reply {
		t.Helper()
		before := st.RoundTrips()
		r := do()
		n := st.RoundTrips() - before
		if r.Status != want {
			t.Fatalf("%s: %d %s", name, r.Status, r)
		}
		got[name] = n
		return r
	}
	round := func(i int, record bool) {
		name := func(n string) string {
			if record {
				return n
			}
			return "warm-up " + n
		}
		patient := fmt.Sprintf("https://a.example/Patient/rt-%d-%t", i, record)
		measure(name("POST (new patient)"), 200, func() reply {
			return postAs(h, "portal@a", "pa", patientMessage("A", patient), dstu1.FormatJSON)
		})
		plan := fmt.Sprintf("https://a.example/CarePlan/rt-%d-%t", i, record)
		first := postAs(h, "portal@a", "pa", carePlanWith(plan, "", pract, "Dr. Round"), dstu1.FormatJSON)
		if first.Status != 200 {
			t.Fatalf("CarePlan: %d %s", first.Status, first)
		}
		_, v := dstu1.SplitHistory(focalData(t, first))
		measure(name("POST (CarePlan update, practitioner unchanged: shared lock)"), 200, func() reply {
			return postAs(h, "portal@a", "pa", carePlanWith(plan, v, pract, "Dr. Round"), dstu1.FormatJSON)
		})
		for {
			c := measure(name("claim"), 200, func() reply { return claim(h, "game@a", "ga", dstu1.FormatJSON) })
			msg := bundleOf(t, c)
			if len(msg.Entries) == 0 {
				got[name("claim of an empty mailbox")] = got[name("claim")]
				delete(got, name("claim"))
				break
			}
			measure(name("acknowledge"), 200, func() reply {
				return ack(h, "game@a", "ga", msg.Entries[0].SelfLink(), "Success", "", dstu1.FormatJSON)
			})
		}
		if record {
			// The last claim of the loop was the empty one; measure a claim that finds something once more.
			postAs(h, "portal@a", "pa", patientMessage("A", patient+"-again"), dstu1.FormatJSON)
			measure("claim", 200, func() reply { return claim(h, "game@a", "ga", dstu1.FormatJSON) })
		}
	}
	round(0, false)
	round(1, true)
	for name, budget := range roundTripBudget {
		n, ok := got[name]
		if !ok {
			t.Fatalf("%s was not measured", name)
		}
		t.Logf("%-62s %d round trips (budget %d)", name, n, budget)
		if n > budget {
			t.Errorf("%s took %d round trips to PostgreSQL, budget %d", name, n, budget)
		}
	}
}

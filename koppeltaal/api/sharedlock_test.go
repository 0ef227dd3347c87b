package api_test

import (
	"database/sql"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// carePlanWith is carePlanMessage carrying a Practitioner too — the resource
// most CarePlan messages of an institution carry unchanged.
func carePlanWith(planURL, version, practURL, practName string) *dstu1.Bundle {
	b := carePlanMessage("A", planURL, version, "https://a.example/Patient/1", "n")
	p := dstu1.NewResource("Practitioner")
	p.Add(dstu1.NewElement("name", dstu1.NewPrimitive("text", practName)))
	b.AddEntry(p, practURL, practURL)
	return b
}

type postResult struct {
	status int
	body   []byte
	err    error
}

func postAsync(h *harness, b *dstu1.Bundle, timeout time.Duration) <-chan postResult {
	out := make(chan postResult, 1)
	body := koppeltaal.EncodeBundle(b, dstu1.FormatJSON)
	go func() {
		s, rb, err := postRaw(h, "portal@a", "pa", body, timeout)
		out <- postResult{s, rb, err}
	}()
	return out
}

// updateStuckInTransaction creates planURL (carrying the practitioner "Dr A"),
// then posts an update of it carrying the practitioner as practName while a
// second connection holds the CarePlan's resources row: that POST takes its
// advisory locks and waits inside its transaction until holder ends.
func updateStuckInTransaction(t *testing.T, h *harness, dsn, planURL, practURL, practName string) (db *sql.DB, holder *sql.Tx, result <-chan postResult) {
	t.Helper()
	first := postAs(h, "portal@a", "pa", carePlanWith(planURL, "", practURL, "Dr A"), dstu1.FormatJSON)
	if first.Status != http.StatusOK {
		t.Fatalf("create: %d %s", first.Status, first)
	}
	_, v1 := dstu1.SplitHistory(focalData(t, first))
	db, holder = lockingTx(t, dsn)
	var id int64
	if err := holder.QueryRowContext(ctx, "SELECT id FROM resources WHERE url = $1 FOR UPDATE", planURL).Scan(&id); err != nil {
		t.Fatal(err)
	}
	result = postAsync(h, carePlanWith(planURL, v1, practURL, practName), time.Minute)
	waitForLockWait(t, db, "%INSERT INTO resources%", "the POST of the locked CarePlan never waited for its row lock")
	return db, holder, result
}

func practitionerVersions(t *testing.T, h *harness, url string) int {
	t.Helper()
	var n int
	err := h.st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &n, `SELECT count(*) FROM resource_versions rv JOIN resources r ON r.id = rv.resource_id
			WHERE r.url = ?`, url)
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestPostgresUnchangedResourceIsShared: posts that carry the same resource
// unchanged do not queue for each other (shared locks), while a post that
// changes it waits for them. With exclusive locks on everything a message
// carries, every CarePlan message of a domain would wait for the one before.
func TestPostgresUnchangedResourceIsShared(t *testing.T) {
	b := storetest.NewPostgres(t)
	h := newHarness(t, b, twoDomains())
	const plan1, plan2, plan3, pract = "https://a.example/CarePlan/1", "https://a.example/CarePlan/2",
		"https://a.example/CarePlan/3", "https://a.example/Practitioner/1"
	// A POST that carries the practitioner unchanged is stuck in its transaction.
	db, holder, stuck := updateStuckInTransaction(t, h, b.DSN, plan1, pract, "Dr A")

	// Another carrying it unchanged goes through.
	if r := <-postAsync(h, carePlanWith(plan2, "", pract, "Dr A"), 5*time.Second); r.err != nil || r.status != http.StatusOK {
		t.Fatalf("POST carrying the practitioner unchanged while another does: %d %v (it waited) %s", r.status, r.err, r.body)
	}
	// One that changes it waits for the stuck one's shared lock.
	changer := postAsync(h, carePlanWith(plan3, "", pract, "Dr B"), time.Minute)
	waitForLockWait(t, db, "SELECT %pg_advisory_xact_lock%", "the POST changing the practitioner did not wait for the shared lock")
	select {
	case r := <-changer:
		t.Fatalf("the POST changing the practitioner finished while a POST carrying it was open: %d %s", r.status, r.body)
	default:
	}
	_ = holder.Rollback()
	for name, c := range map[string]<-chan postResult{"stuck": stuck, "changer": changer} {
		if r := <-c; r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%s POST after release: %d %v %s", name, r.status, r.err, r.body)
		}
	}
	if n := practitionerVersions(t, h, pract); n != 2 {
		t.Fatalf("practitioner has %d versions, want 2 (created, changed once)", n)
	}
}

// TestPostgresSharedLockComesTooLate: a POST that judged a resource unchanged
// but got its shared lock only after another POST changed it runs again with
// an exclusive lock and versions the resource (it is a change now).
func TestPostgresSharedLockComesTooLate(t *testing.T) {
	b := storetest.NewPostgres(t)
	reg := prometheus.NewRegistry()
	h := newHarnessRegistering(t, b.Open(t), twoDomains(), reg)
	const plan1, plan2, pract = "https://a.example/CarePlan/1", "https://a.example/CarePlan/2", "https://a.example/Practitioner/1"
	// A POST changing the practitioner is stuck in its transaction, holding its exclusive lock.
	db, holder, changer := updateStuckInTransaction(t, h, b.DSN, plan1, pract, "Dr B")
	// One carrying the practitioner as committed ("Dr A") judges it unchanged and waits for a shared lock.
	late := postAsync(h, carePlanWith(plan2, "", pract, "Dr A"), time.Minute)
	waitForLockWait(t, db, "SELECT %pg_advisory_xact_lock%", "the POST carrying the practitioner did not wait for the lock")
	_ = holder.Rollback()
	for name, c := range map[string]<-chan postResult{"changer": changer, "late": late} {
		if r := <-c; r.err != nil || r.status != http.StatusOK {
			t.Fatalf("%s POST after release: %d %v %s", name, r.status, r.err, r.body)
		}
	}
	if n := counterValue(t, reg, "koppeltaal_post_lock_retries_total"); n != 1 {
		t.Fatalf("koppeltaal_post_lock_retries_total = %v, want 1", n)
	}
	if n := practitionerVersions(t, h, pract); n != 3 {
		t.Fatalf("practitioner has %d versions, want 3 (Dr A, Dr B, Dr A again)", n)
	}
}

// counterValue reads a registered counter by name.
func counterValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

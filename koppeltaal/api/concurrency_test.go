package api_test

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx" for the lock-holding connection

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Concurrent POSTs in one domain: what the post lock (decision 7, store.Tx.LockForPost)
// must keep atomic — version checks per resource, first creations, retry dedupe,
// strictly increasing versions — on both backends, and on PostgreSQL that posts
// about different resources do not wait for each other.

// carePlanMessage is a CreateOrUpdateCarePlan of planURL based on version (""
// = none) for patientURL, with a fresh identifier; note varies the content.
func carePlanMessage(domain, planURL, version, patientURL, note string) *dstu1.Bundle {
	b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), domain)
	data := planURL
	if version != "" {
		data += "/_history/" + version
	}
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{
		Identifier: uuid.NewString(), Timestamp: "2026-11-28T12:00:00Z",
		Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan", Display: "CreateOrUpdateCarePlan"},
		Source: dstu1.Source{Software: "test", Endpoint: "https://sender.example/fhir"},
		Data:   []string{data}, Patient: patientURL,
	})
	b.AddEntry(mh.Resource, "", "")
	p := dstu1.NewResource("CarePlan")
	p.Add(dstu1.NewPrimitive("status", "active"))
	p.Add(dstu1.NewPrimitive("notes", note))
	b.AddEntry(p, planURL, data)
	return b
}

// postRaw posts body as user without failing the test (safe in goroutines); the
// request gives up after timeout.
func postRaw(h *harness, user, pass string, body []byte, timeout time.Duration) (int, []byte, error) {
	c, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(c, "POST", h.ts.URL+"/FHIR/Koppeltaal/Mailbox", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	hr.SetBasicAuth(user, pass)
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("Content-Type", "application/json+fhir")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// writeGate makes concurrent POSTs overlap for sure on PostgreSQL: a second
// connection locks the table of message bodies, the first table a POST writes,
// so every POST does its locking, retry lookup and version checks and then
// waits — for the gate, or for another POST's lock — until open. Without the
// post lock all of them would pass their checks before any commits.
type writeGate struct {
	db *sql.DB
	tx *sql.Tx
}

// newWriteGate closes the gate on PostgreSQL; on SQLite (one writer: POSTs never
// overlap) it returns nil, and waitAndOpen does nothing.
func newWriteGate(t *testing.T, b storetest.Backend) *writeGate {
	t.Helper()
	if b.Name != "postgres" {
		return nil
	}
	db, err := sql.Open("pgx", b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, "LOCK TABLE message_bodies IN EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	g := &writeGate{db: db, tx: tx}
	t.Cleanup(g.open)
	return g
}

// waitAndOpen waits until n sessions wait for a lock (the gate's or a post
// lock), then opens the gate.
func (g *writeGate) waitAndOpen(t *testing.T, n int) {
	t.Helper()
	if g == nil {
		return
	}
	defer g.open()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := g.db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting >= n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d POSTs reached the write gate", waiting, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (g *writeGate) open() {
	if g.tx != nil {
		_ = g.tx.Rollback()
		g.tx = nil
		g.db.Close()
	}
}

// postAll posts the bodies at the same moment (on PostgreSQL all held at the
// write gate until every one got there) and returns the replies in order.
func postAll(t *testing.T, h *harness, b storetest.Backend, bodies [][]byte) []reply {
	t.Helper()
	gate := newWriteGate(t, b)
	out := make([]reply, len(bodies))
	errs := make([]error, len(bodies))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, body := range bodies {
		wg.Go(func() {
			<-start
			var b []byte
			out[i].Status, b, errs[i] = postRaw(h, "portal@a", "pa", body, 30*time.Second)
			out[i].Body = b
			out[i].Header = http.Header{"Content-Type": {"application/json"}}
		})
	}
	close(start)
	gate.waitAndOpen(t, len(bodies))
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("post %d: %v", i, err)
		}
	}
	return out
}

// focalData is data[0] of a POST reply.
func focalData(t *testing.T, r reply) string {
	t.Helper()
	d := header(t, bundleOf(t, r)).Data()
	if len(d) == 0 {
		t.Fatalf("reply without data: %s", r.Body)
	}
	return d[0]
}

// TestConcurrentUpdatesOfOneVersion: N senders update the same CarePlan at the
// same version at once; exactly one is accepted, the others get 409 with the
// documented text for that CarePlan.
func TestConcurrentUpdatesOfOneVersion(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		const plan, pat = "https://a.example/CarePlan/race", "https://a.example/Patient/race"
		first := postAs(h, "portal@a", "pa", carePlanMessage("A", plan, "", pat, "v1"), dstu1.FormatJSON)
		if first.Status != http.StatusOK {
			t.Fatalf("create: %d %s", first.Status, first)
		}
		_, v1 := dstu1.SplitHistory(focalData(t, first))
		const n = 8
		bodies := make([][]byte, n)
		for i := range bodies {
			bodies[i] = koppeltaal.EncodeBundle(carePlanMessage("A", plan, v1, pat, fmt.Sprint("update ", i)), dstu1.FormatJSON)
		}
		accepted := exactlyOneAccepted(t, postAll(t, h, b, bodies), koppeltaal.TextVersionNotCorrect+" @"+plan)
		if _, v := dstu1.SplitHistory(focalData(t, accepted)); v <= v1 {
			t.Errorf("accepted update got version %s, not above %s", v, v1)
		}
		if got := h.messageCount(); got != 2 {
			t.Fatalf("%d messages stored, want 2", got)
		}
	})
}

// TestConcurrentFirstCreations: N senders create the same new Patient URL
// (without version) at once; the first is accepted, the others find it and get
// 409 for the focal resource without version — no lost update.
func TestConcurrentFirstCreations(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		const pat = "https://a.example/Patient/new"
		const n = 8
		bodies := make([][]byte, n)
		for i := range bodies {
			bodies[i] = koppeltaal.EncodeBundle(patientMessage("A", pat), dstu1.FormatJSON) // fresh identifier each
		}
		exactlyOneAccepted(t, postAll(t, h, b, bodies), koppeltaal.TextFocalWithoutVersion+" @"+pat)
		if got := h.messageCount(); got != 1 {
			t.Fatalf("%d messages stored, want 1", got)
		}
	})
}

// TestConcurrentRetries: copies of one message (same identifier and content)
// arrive at once, as a sender that timed out and retried may send them; all get
// 200 with the same issued data, and one message is stored and delivered.
func TestConcurrentRetries(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		msg := patientMessage("A", "https://a.example/Patient/retried")
		const n = 6
		bodies := make([][]byte, n)
		for i := range bodies {
			msg.ID = "urn:uuid:" + uuid.NewString() // a retry may rebuild its envelope
			bodies[i] = koppeltaal.EncodeBundle(msg, dstu1.FormatJSON)
		}
		var data []string
		for i, r := range postAll(t, h, b, bodies) {
			if r.Status != http.StatusOK {
				t.Fatalf("copy %d: %d %s", i, r.Status, r)
			}
			d := header(t, bundleOf(t, r)).Data()
			if data == nil {
				data = d
			} else if !slices.Equal(d, data) {
				t.Fatalf("copy %d answered %v, another %v", i, d, data)
			}
		}
		if got := h.messageCount(); got != 1 {
			t.Fatalf("%d messages stored, want 1", got)
		}
		if r := claim(h, "game@a", "ga", dstu1.FormatJSON); len(bundleOf(t, r).Entries) == 0 {
			t.Fatal("the message was not delivered")
		}
		if r := claim(h, "game@a", "ga", dstu1.FormatJSON); len(bundleOf(t, r).Entries) != 0 {
			t.Fatal("the message was delivered twice")
		}
	})
}

// TestVersionsIncreasePerResource: workers update one CarePlan over and over,
// each based on the version it just read, with a frozen clock that later steps
// back (so every version is a bump of the previous one). The accepted updates
// form one chain: each based on the version the one before issued, each
// version strictly above its base — no lost update, no reused version.
func TestVersionsIncreasePerResource(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		var clockMu sync.Mutex
		clock := time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)
		h.srv.Service().SetClock(func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock })
		const plan, pat = "https://a.example/CarePlan/chain", "https://a.example/Patient/chain"
		first := postAs(h, "portal@a", "pa", carePlanMessage("A", plan, "", pat, "0"), dstu1.FormatJSON)
		if first.Status != http.StatusOK {
			t.Fatalf("create: %d %s", first.Status, first)
		}
		_, v0 := dstu1.SplitHistory(focalData(t, first))
		var domainID int64
		if err := h.st.View(ctx, func(tx *store.Tx) error {
			d, err := tx.DomainByName(ctx, "A")
			domainID = d.ID
			return err
		}); err != nil {
			t.Fatal(err)
		}
		current := func() (string, error) {
			var v string
			err := h.st.View(ctx, func(tx *store.Tx) error {
				rs, err := tx.Resources(ctx, domainID, []string{plan})
				v = rs[plan].CurrentVersion
				return err
			})
			return v, err
		}
		const workers, rounds = 4, 12
		var mu sync.Mutex
		next := map[string]string{} // base version → version issued on it
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := range rounds {
					if w == 0 && i == rounds/2 {
						clockMu.Lock()
						clock = clock.Add(-time.Hour) // the clock steps back
						clockMu.Unlock()
					}
					base, err := current()
					if err != nil {
						t.Error(err)
						return
					}
					body := koppeltaal.EncodeBundle(carePlanMessage("A", plan, base, pat, fmt.Sprint(w, "/", i)), dstu1.FormatJSON)
					status, rb, err := postRaw(h, "portal@a", "pa", body, 30*time.Second)
					if err != nil {
						t.Error(err)
						return
					}
					switch status {
					case http.StatusOK:
						d, err := dstu1.ParseBundle(rb, dstu1.FormatJSON)
						if err != nil {
							t.Error(err)
							return
						}
						_, v := dstu1.SplitHistory(dstu1.AsMessageHeader(d.Entries[0].Resource).Data()[0])
						mu.Lock()
						if prev, dup := next[base]; dup {
							t.Errorf("two updates accepted on version %s: %s and %s", base, prev, v)
						}
						next[base] = v
						mu.Unlock()
					case http.StatusConflict:
						if !strings.Contains(string(rb), koppeltaal.TextVersionNotCorrect) {
							t.Errorf("409 without the version text: %s", rb)
						}
					default:
						t.Errorf("update on %s: %d %s", base, status, rb)
					}
				}
			})
		}
		wg.Wait()
		if t.Failed() {
			return
		}
		// Walk the chain from the creation: it must hold every accepted update.
		chain := []string{v0}
		for v := v0; ; {
			n, ok := next[v]
			if !ok {
				break
			}
			if n <= v {
				t.Fatalf("version %s issued on %s: not above it", n, v)
			}
			chain = append(chain, n)
			v = n
		}
		if len(chain)-1 != len(next) || len(next) < rounds {
			t.Fatalf("chain of %d versions from %s, %d updates accepted (want one chain, at least %d)", len(chain), v0, len(next), rounds)
		}
		var stored []string
		if err := h.st.View(ctx, func(tx *store.Tx) error {
			return tx.Select(ctx, &stored, `SELECT rv.version FROM resource_versions rv JOIN resources r ON r.id = rv.resource_id
				WHERE r.url = ? ORDER BY rv.message_id`, plan)
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(stored, chain) {
			t.Fatalf("stored versions in message order %v, want the chain %v", stored, chain)
		}
	})
}

// TestPostgresPostsInOneDomainRunInParallel: while one POST is stuck inside its
// transaction (a second connection holds the row lock of the CarePlan it
// updates), POSTs about other resources in the same domain still finish. With
// a domain-wide lock held to COMMIT they would wait for the stuck one.
func TestPostgresPostsInOneDomainRunInParallel(t *testing.T) {
	b := storetest.NewPostgres(t)
	h := newHarness(t, b, twoDomains())
	const plan, pat = "https://a.example/CarePlan/stuck", "https://a.example/Patient/stuck"
	first := postAs(h, "portal@a", "pa", carePlanMessage("A", plan, "", pat, "v1"), dstu1.FormatJSON)
	if first.Status != http.StatusOK {
		t.Fatalf("create: %d %s", first.Status, first)
	}
	_, v1 := dstu1.SplitHistory(focalData(t, first))

	db, holder := lockingTx(t, b.DSN)
	release := func() { _ = holder.Rollback() }
	var id int64
	if err := holder.QueryRowContext(ctx, "SELECT id FROM resources WHERE url = $1 FOR UPDATE", plan).Scan(&id); err != nil {
		t.Fatal(err)
	}

	type result struct {
		status int
		body   []byte
		err    error
	}
	stuck := make(chan result, 1)
	go func() {
		body := koppeltaal.EncodeBundle(carePlanMessage("A", plan, v1, pat, "v2"), dstu1.FormatJSON)
		s, rb, err := postRaw(h, "portal@a", "pa", body, 60*time.Second)
		stuck <- result{s, rb, err}
	}()
	// Wait until that POST waits for the row lock, inside its transaction.
	waitForLockWait(t, db, "%INSERT INTO resources%", "the POST of the locked CarePlan never waited for its row lock")

	others := make(chan result, 2)
	for i := range 2 {
		go func() {
			body := koppeltaal.EncodeBundle(patientMessage("A", fmt.Sprintf("https://a.example/Patient/free-%d", i)), dstu1.FormatJSON)
			s, rb, err := postRaw(h, "portal@a", "pa", body, 5*time.Second)
			others <- result{s, rb, err}
		}()
	}
	for range 2 {
		r := <-others
		if r.err != nil || r.status != http.StatusOK {
			t.Errorf("POST about another resource while one POST is in flight: status %d, %v (it waited for the other POST) %s", r.status, r.err, r.body)
		}
	}
	release()
	r := <-stuck
	if r.err != nil || r.status != http.StatusOK {
		t.Fatalf("the held POST after release: %d %v %s", r.status, r.err, r.body)
	}
}

// exactlyOneAccepted checks that of concurrent POSTs exactly one got 200 and
// every other a 409 with the one issue want; it returns the accepted reply.
func exactlyOneAccepted(t *testing.T, replies []reply, want string) reply {
	t.Helper()
	var accepted []reply
	for i, r := range replies {
		switch r.Status {
		case http.StatusOK:
			accepted = append(accepted, r)
		case http.StatusConflict:
			if got := outcome(t, r); !slices.Equal(got, []string{want}) {
				t.Errorf("post %d: 409 issues %q, want %q", i, got, want)
			}
		default:
			t.Errorf("post %d: %d %s", i, r.Status, r)
		}
	}
	if len(accepted) != 1 {
		t.Fatalf("%d of %d concurrent POSTs accepted, want exactly 1", len(accepted), len(replies))
	}
	return accepted[0]
}

// waitForLockWait waits until a session of the test database waits for a lock
// in a statement LIKE queryPattern, and fails with failure after 15 s.
func waitForLockWait(t *testing.T, db *sql.DB, queryPattern, failure string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		var waiting int
		if err := db.QueryRowContext(ctx, `SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()
			AND wait_event_type = 'Lock' AND query LIKE $1`, queryPattern).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(failure)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// lockingTx opens a second connection to the test database and begins a
// transaction on it, to hold locks that requests of the server under test then
// meet. Both end with the test (a transaction already ended stays ended).
func lockingTx(t *testing.T, dsn string) (*sql.DB, *sql.Tx) {
	t.Helper()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		db.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = tx.Rollback()
		db.Close()
	})
	return db, tx
}

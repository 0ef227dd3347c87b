package api_test

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// forgetNewest makes the database forget the newest message as an
// asynchronous standby promoted before it received it would (issue 15): its
// rows are gone (the resources it created too) and the id counters are back
// where they were, so the next message gets the same message and queue ids.
func forgetNewest(t *testing.T, st *store.Store) {
	t.Helper()
	err := st.Update(ctx, func(tx *store.Tx) error {
		var msgID, bodyID int64
		if err := tx.Get(ctx, &msgID, "SELECT MAX(id) FROM messages"); err != nil {
			return err
		}
		if err := tx.Get(ctx, &bodyID, "SELECT body_id FROM messages WHERE id = ?", msgID); err != nil {
			return err
		}
		for _, q := range []string{
			"DELETE FROM post_receipts WHERE message_id = ?",
			"DELETE FROM resource_versions WHERE message_id = ?",
			"DELETE FROM queue WHERE message_id = ?",
			"DELETE FROM messages WHERE id = ?",
		} {
			if _, err := tx.Exec(ctx, q, msgID); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		if _, err := tx.Exec(ctx, `DELETE FROM resources
			WHERE NOT EXISTS (SELECT 1 FROM resource_versions v WHERE v.resource_id = resources.id)`); err != nil {
			return fmt.Errorf("forget the resources the message created: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM message_bodies WHERE id = ?", bodyID); err != nil {
			return err
		}
		for _, table := range []string{"messages", "message_bodies", "queue"} {
			q := "UPDATE sqlite_sequence SET seq = (SELECT COALESCE(MAX(id), 0) FROM " + table + ") WHERE name = '" + table + "'"
			if tx.Dialect() == store.Postgres {
				q = "SELECT setval(pg_get_serial_sequence('" + table + "', 'id'), COALESCE(MAX(id), 0) + 1, false) FROM " + table
			}
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("reset the id of %s: %w", table, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("forget the newest message: %v", err)
	}
}

// newestCreatedAt returns the created_at of the newest message (Unix µs).
func newestCreatedAt(t *testing.T, st *store.Store) (at int64) {
	t.Helper()
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &at, "SELECT created_at FROM messages ORDER BY id DESC LIMIT 1")
	}); err != nil {
		t.Fatal(err)
	}
	return at
}

// claimed claims game@a's next message and returns its MessageHeader and queue entry.
func claimed(t *testing.T, h *harness) (mh *dstu1.MessageHeader, self string) {
	t.Helper()
	b := bundleOf(t, claim(h, "game@a", "ga", dstu1.FormatJSON))
	if len(b.Entries) == 0 {
		t.Fatal("nothing to claim")
	}
	return header(t, b), b.Entries[0].SelfLink()
}

// TestIDReuseNeverServesAnotherMessage reproduces the asynchronous failover of
// issue 15: the database forgets a message that was posted, claimed and
// cached, the next message reuses its ids, and the claim, the read and the
// acknowledgement must show the new message — not the cached body of the lost
// one. The new message is posted through a second server on the same database
// (another process behind the load balancer), so the first server's cache
// never saw it: only the check of the cached message against the queue row
// keeps the lost one out. Both servers' clocks stand still, so the two
// messages have the same created_at: in "same patient" the new message is
// about the same patient too and only its MessageHeader identifier, copied
// into the queue row (migration 0027), tells them apart (without that check
// the claim returns the lost message; in "another patient" it returns the lost
// patient).
func TestIDReuseNeverServesAnotherMessage(t *testing.T) {
	const lost = "https://a.example/Patient/lost"
	for _, tt := range []struct{ name, real string }{
		{"another patient", "https://a.example/Patient/real"},
		{"same patient", lost},
	} {
		t.Run(tt.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, b storetest.Backend) { testIDReuse(t, b, lost, tt.real) })
		})
	}
}

func testIDReuse(t *testing.T, b storetest.Backend, lost, real string) {
	h := newHarness(t, b, twoDomains())
	other := newHarness(t, b, twoDomains())
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, s := range []*harness{h, other} {
		s.srv.Service().SetClock(func() time.Time { return now })
	}
	lostMsg, realMsg := patientMessage("A", lost), patientMessage("A", real)
	lostID, realID := header(t, lostMsg).Identifier(), header(t, realMsg).Identifier()
	if r := postAs(h, "portal@a", "pa", lostMsg, dstu1.FormatJSON); r.Status != 200 {
		t.Fatalf("post: %d %s", r.Status, r)
	}
	mh, lostSelf := claimed(t, h)
	if mh.Identifier() != lostID {
		t.Fatalf("first claim: message %s, want %s", mh.Identifier(), lostID)
	}
	lostAt := newestCreatedAt(t, h.st)
	forgetNewest(t, h.st)
	if r := postAs(other, "portal@a", "pa", realMsg, dstu1.FormatJSON); r.Status != 200 {
		t.Fatalf("post: %d %s", r.Status, r)
	}
	if at := newestCreatedAt(t, h.st); at != lostAt {
		t.Fatalf("the scenario needs the same created_at again: %d then %d", lostAt, at)
	}
	mh, self := claimed(t, h)
	id, _ := dstu1.SplitHistory(self)
	if lostEntry, _ := dstu1.SplitHistory(lostSelf); lostEntry != id {
		t.Fatalf("the scenario needs the same queue id again: %s then %s", lostEntry, id)
	}
	if mh.Identifier() != realID || mh.Patient() != real {
		t.Fatalf("claim after id reuse returned message %s of patient %s, want %s of %s", mh.Identifier(), mh.Patient(), realID, real)
	}
	for _, path := range []string{strings.TrimPrefix(id, h.ts.URL), "/FHIR/Koppeltaal/MessageHeader/_search?_id=" + url.QueryEscape(id)} {
		r := h.do(req{method: "GET", path: path, user: "game@a", pass: "ga", accept: "application/json"})
		if got := header(t, bundleOf(t, r)); got.Identifier() != realID || got.Patient() != real {
			t.Fatalf("GET %s after id reuse: message %s of patient %s", path, got.Identifier(), got.Patient())
		}
	}
	r := ack(h, "game@a", "ga", self, "Success", "", dstu1.FormatJSON)
	if r.Status != 200 || !strings.Contains(string(r.Body), realID) || strings.Contains(string(r.Body), lostID) {
		t.Fatalf("acknowledgement after id reuse: %d %s", r.Status, r)
	}
}

// TestRestoredDatabaseDropsCaches replaces the PostgreSQL database under a
// running server by an older copy (as a restore, or a failover to a standby
// that lagged behind, does): the store notices (Epoch) and nothing cached
// from the replaced database is served.
func TestRestoredDatabaseDropsCaches(t *testing.T) {
	b := storetest.NewPostgres(t)
	admin, err := sql.Open("pgx", os.Getenv(storetest.EnvPostgresDSN))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	u, _ := url.Parse(b.DSN)
	name := strings.TrimPrefix(u.Path, "/")
	h := newHarness(t, b, twoDomains())
	exec := func(q string) {
		t.Helper()
		for try := 0; ; try++ { // CREATE DATABASE … TEMPLATE needs the template without sessions
			if _, err := admin.Exec("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
				t.Fatal(err)
			}
			_, err := admin.Exec(q)
			if err == nil {
				return
			}
			if try == 20 {
				t.Fatalf("%s: %v", q, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	backup := name + "_backup"
	exec("CREATE DATABASE " + backup + " TEMPLATE " + name)
	t.Cleanup(func() { _, _ = admin.Exec("DROP DATABASE IF EXISTS " + backup + " WITH (FORCE)") })
	epoch := h.st.Epoch()

	post := func(patient string) {
		t.Helper()
		var r reply
		for try := 0; try < 5; try++ { // the first request may meet a connection that was terminated
			if r = postAs(h, "portal@a", "pa", patientMessage("A", patient), dstu1.FormatJSON); r.Status == 200 {
				return
			}
		}
		t.Fatalf("post: %d %s", r.Status, r)
	}
	const lost, real = "https://a.example/Patient/lost", "https://a.example/Patient/real"
	post(lost)
	if mh, _ := claimed(t, h); mh.Patient() != lost {
		t.Fatalf("first claim: patient %s", mh.Patient())
	}
	exec("DROP DATABASE " + name + " WITH (FORCE)")
	exec("ALTER DATABASE " + backup + " RENAME TO " + name)
	post(real)
	if h.st.Epoch() == epoch {
		t.Fatal("the store did not notice that its database was replaced")
	}
	if mh, _ := claimed(t, h); mh.Patient() != real {
		t.Fatalf("claim after the restore returned patient %s, want %s", mh.Patient(), real)
	}
}

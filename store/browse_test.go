package store_test

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// browseFixture: domains A and B; in A instances a1 and a2, in B instance b1.
// Message k (k = 0..n-1) is sent in A by a1 (even k) or a2 (odd k) about
// patient P(k%5), event Patient or CarePlan (k%3==0), queued for the other
// instance of A; every fourth one also in B by b1 to nobody.
type browseEnv struct {
	s                  *store.Store
	domA, domB         int64
	a1, a2, b1         int64
	msgs               map[int64]int // message id → k
	patientsA, eventsA map[string]int
}

func browseFixture(t *testing.T, s *store.Store, n int) *browseEnv {
	t.Helper()
	e := &browseEnv{s: s, msgs: map[int64]int{}, patientsA: map[string]int{}, eventsA: map[string]int{}}
	e.domA, e.a1 = fixture(t, s, "A", "a1")
	_, e.a2 = fixture(t, s, "A", "a2")
	e.domB, e.b1 = fixture(t, s, "B", "b1")
	err := s.Update(ctx, func(tx *store.Tx) error {
		for k := 0; k < n; k++ {
			ev := "CreateOrUpdatePatient"
			if k%3 == 0 {
				ev = "CreateOrUpdateCarePlan"
			}
			sender, rcpt := e.a1, e.a2
			if k%2 == 1 {
				sender, rcpt = e.a2, e.a1
			}
			p := fmt.Sprintf("https://epd.example/Patient/P%d", k%5)
			id, err := tx.InsertMessage(ctx, store.Message{DomainID: e.domA, SenderInstanceID: sender, Event: ev,
				MessageIdentifier: fmt.Sprintf("mid-%d", k), PatientRef: p, FocalRef: p, CreatedAt: int64(1000 + k)})
			if err != nil {
				return err
			}
			e.msgs[id] = k
			e.patientsA[p]++
			e.eventsA[ev]++
			status := store.StatusNew
			if k%4 == 1 {
				status = store.StatusSuccess
			}
			if _, err := tx.InsertEntry(ctx, store.Entry{DomainID: e.domA, InstanceID: rcpt, MessageID: id, Event: ev,
				PatientRef: p, FocalRef: p, Status: status, StatusChangedAt: 1, Version: "v", CreatedAt: int64(1000 + k)}); err != nil {
				return err
			}
			if k%4 == 0 {
				if _, err := tx.InsertMessage(ctx, store.Message{DomainID: e.domB, SenderInstanceID: e.b1, Event: ev,
					MessageIdentifier: fmt.Sprintf("mid-b-%d", k), PatientRef: p, CreatedAt: int64(1000 + k)}); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *browseEnv) browse(t *testing.T, q store.BrowseQuery) []store.BrowsedMessage {
	t.Helper()
	if q.Limit == 0 {
		q.Limit = 1000
	}
	var out []store.BrowsedMessage
	if err := e.s.View(ctx, func(tx *store.Tx) error {
		var err error
		out, _, err = tx.BrowseMessages(ctx, q)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(out); i++ {
		if out[i].ID >= out[i-1].ID {
			t.Fatalf("not newest first: %d then %d", out[i-1].ID, out[i].ID)
		}
	}
	return out
}

func TestBrowseMessages(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := browseFixture(t, b.Open(t), 40)
		A := []int64{e.domA}
		p2 := "https://epd.example/Patient/P2"
		for name, c := range map[string]struct {
			q    store.BrowseQuery
			want int
		}{
			"domain A":                {store.BrowseQuery{DomainIDs: A}, 40},
			"domains A and B":         {store.BrowseQuery{DomainIDs: []int64{e.domA, e.domB}}, 50},
			"patient P2 in A":         {store.BrowseQuery{DomainIDs: A, Patient: p2}, e.patientsA[p2]},
			"patient P2 in A and B":   {store.BrowseQuery{DomainIDs: []int64{e.domA, e.domB}, Patient: p2}, e.patientsA[p2] + 2},
			"event CarePlan":          {store.BrowseQuery{DomainIDs: A, Event: "CreateOrUpdateCarePlan"}, e.eventsA["CreateOrUpdateCarePlan"]},
			"identifier":              {store.BrowseQuery{DomainIDs: A, Identifier: "mid-7"}, 1},
			"identifier of B from A":  {store.BrowseQuery{DomainIDs: A, Identifier: "mid-b-8"}, 0},
			"sender a1":               {store.BrowseQuery{DomainIDs: A, SenderID: e.a1}, 20},
			"recipient a1":            {store.BrowseQuery{DomainIDs: A, RecipientID: e.a1}, 20},
			"recipient a1 Success":    {store.BrowseQuery{DomainIDs: A, RecipientID: e.a1, Status: store.StatusSuccess}, 10},
			"status Success":          {store.BrowseQuery{DomainIDs: A, Status: store.StatusSuccess}, 10},
			"date range":              {store.BrowseQuery{DomainIDs: A, From: 1010, To: 1020}, 10},
			"before":                  {store.BrowseQuery{DomainIDs: A, BeforeID: 1<<62 - 1}, 40},
			"sender of B in scope A":  {store.BrowseQuery{DomainIDs: A, SenderID: e.b1}, 0},
			"recipient a1 in scope B": {store.BrowseQuery{DomainIDs: []int64{e.domB}, RecipientID: e.a1}, 0},
			// An application administrator of a1's application: what a1 sent or received.
			"instance a1":            {store.BrowseQuery{InstanceIDs: []int64{e.a1}}, 40},
			"instance b1":            {store.BrowseQuery{InstanceIDs: []int64{e.b1}}, 10},
			"instance b1, patient":   {store.BrowseQuery{InstanceIDs: []int64{e.b1}, Patient: p2}, 2},
			"instance b1, sender a1": {store.BrowseQuery{InstanceIDs: []int64{e.b1}, SenderID: e.a1}, 0},
		} {
			if got := len(e.browse(t, c.q)); got != c.want {
				t.Errorf("%s: %d messages, want %d", name, got, c.want)
			}
		}
		// Keyset paging walks every message exactly once.
		seen := map[int64]bool{}
		q := store.BrowseQuery{DomainIDs: A, Limit: 7}
		for page := 0; ; page++ {
			var rows []store.BrowsedMessage
			var more bool
			if err := e.s.View(ctx, func(tx *store.Tx) error {
				var err error
				rows, more, err = tx.BrowseMessages(ctx, q)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				if seen[r.ID] {
					t.Fatalf("message %d on two pages", r.ID)
				}
				seen[r.ID] = true
				q.BeforeID = r.ID
			}
			if !more {
				break
			}
		}
		if len(seen) != 40 {
			t.Fatalf("paging saw %d of 40 messages", len(seen))
		}
		rows := e.browse(t, store.BrowseQuery{DomainIDs: A, Identifier: "mid-3"})
		var rs []store.Recipient
		if err := e.s.View(ctx, func(tx *store.Tx) error {
			var err error
			rs, err = tx.RecipientsOf(ctx, []int64{rows[0].ID})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || rs[0].Username != "a1" || rows[0].SenderUsername != "a2" || rows[0].DomainName != "A" {
			t.Fatalf("message mid-3: %+v recipients %+v", rows[0], rs)
		}
	})
}

// TestBrowseStatusHistory: every status change of a queue entry is appended to its history.
func TestBrowseStatusHistory(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		dom, inst := fixture(t, s, "D", "u")
		ids := queueMessages(t, s, dom, inst, 1)
		err := s.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.ClaimNext(ctx, inst, store.Filter{}, store.Claim{Now: 10, Deadline: 20, Version: "v2"}); err != nil {
				return err
			}
			if _, err := tx.Sweep(ctx, 30, 5, "v3"); err != nil {
				return err
			}
			if _, err := tx.ClaimNext(ctx, inst, store.Filter{}, store.Claim{Now: 40, Deadline: 100, Version: "v4"}); err != nil {
				return err
			}
			_, err := tx.SetStatus(ctx, ids[0], store.StatusChange{From: store.StatusClaimed, To: store.StatusSuccess, Now: 50, Version: "v5"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		var rs []store.Recipient
		if err := s.View(ctx, func(tx *store.Tx) error {
			var err error
			var m store.Entry
			if m, err = tx.EntryForInstance(ctx, inst, ids[0]); err != nil {
				return err
			}
			rs, err = tx.RecipientsOf(ctx, []int64{m.MessageID})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		got := fmt.Sprint(store.ParseStatusHistory(rs[0].StatusHistory))
		if want := "[{10 Claimed} {30 New} {40 Claimed} {50 Success}]"; got != want {
			t.Fatalf("history %s, want %s", got, want)
		}
	})
}

// TestBrowseUsesIndexes: the plan of every kind of search seeks the index
// made for it, on SQLite (EXPLAIN QUERY PLAN, no SCAN) and PostgreSQL
// (EXPLAIN after ANALYZE, no Seq Scan with sequential scans priced out), on
// 20,000 messages so the planners have real statistics.
func TestBrowseUsesIndexes(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		dom, sender := fixture(t, s, "Big", "sender")
		_, rcpt := fixture(t, s, "Big", "recipient")
		fillMessages(t, s, dom, sender, rcpt, 20000)
		D := []int64{dom}
		// index: what SQLite must seek; pg: what PostgreSQL must seek when the filter is selective
		// (for a filter most messages match, a backward walk of the primary key with LIMIT is as good).
		for name, c := range map[string]struct {
			q         store.BrowseQuery
			index, pg string
		}{
			"newest":             {store.BrowseQuery{DomainIDs: D}, "messages_domain", ""},
			"patient":            {store.BrowseQuery{DomainIDs: D, Patient: "https://epd.example/Patient/7"}, "messages_patient", "messages_patient"},
			"patient, older":     {store.BrowseQuery{DomainIDs: D, Patient: "https://epd.example/Patient/7", BeforeID: 15000}, "messages_patient", "messages_patient"},
			"event":              {store.BrowseQuery{DomainIDs: D, Event: "CreateOrUpdateCarePlan"}, "messages_event", ""},
			"identifier":         {store.BrowseQuery{DomainIDs: D, Identifier: "mid-77"}, "messages_identifier", "messages_identifier"},
			"sender":             {store.BrowseQuery{DomainIDs: D, SenderID: sender}, "messages_sender", ""},
			"recipient":          {store.BrowseQuery{DomainIDs: D, RecipientID: rcpt}, "queue_", "queue_"},
			"recipient + status": {store.BrowseQuery{DomainIDs: D, RecipientID: rcpt, Status: store.StatusFailed}, "queue_claim", "queue_"},
			"status":             {store.BrowseQuery{DomainIDs: D, Status: store.StatusFailed}, "queue_claim", "queue_"},
			"date range":         {store.BrowseQuery{DomainIDs: D, From: 100, To: 200}, "messages_domain", ""},
			"instance scope":     {store.BrowseQuery{InstanceIDs: []int64{sender}, Patient: "https://epd.example/Patient/7"}, "_", "_"},
		} {
			c.q.Limit = 50
			var plans []string
			err := s.Update(ctx, func(tx *store.Tx) error {
				if tx.Dialect() == store.Postgres {
					if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
						return err
					}
				}
				var err error
				plans, err = tx.ExplainBrowse(ctx, c.q)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(plans) == 0 {
				t.Fatalf("%s: no plan", name)
			}
			want := c.index
			if s.Dialect() == store.Postgres {
				want = c.pg
			}
			for _, plan := range plans {
				bad := !strings.Contains(plan, want)
				for _, line := range strings.Split(plan, "\n") {
					l := strings.TrimSpace(line)
					bad = bad || strings.HasPrefix(l, "SCAN ") || strings.Contains(l, "Seq Scan")
				}
				if bad {
					t.Errorf("%s: want an index seek (%s), the plan is:\n%s", name, want, plan)
				}
			}
		}
	})
}

// BenchmarkBrowsePatient finds one patient's newest 50 messages among
// KOPPELPOORT_BENCH_BROWSE_MESSAGES (default 100,000; the README's number is
// 1,000,000) messages in one domain, each queued for one recipient.
// KOPPELPOORT_BENCH_POSTGRES=1 adds PostgreSQL.
func BenchmarkBrowsePatient(b *testing.B) {
	n := 100000
	if v := os.Getenv("KOPPELPOORT_BENCH_BROWSE_MESSAGES"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	backends := []storetest.Backend{{Name: "sqlite", DSN: b.TempDir() + "/kp.db"}}
	if os.Getenv("KOPPELPOORT_BENCH_POSTGRES") != "" {
		backends = append(backends, storetest.NewPostgres(b))
	}
	for _, be := range backends {
		b.Run(be.Name, func(b *testing.B) {
			s := be.Open(b)
			dom, inst := fixture(b, s, "Big", "sender")
			_, rcpt := fixture(b, s, "Big", "recipient")
			start := time.Now()
			fillMessages(b, s, dom, inst, rcpt, n)
			b.Logf("%s: %d messages and queue rows written in %s", be.Name, n, time.Since(start).Round(time.Millisecond))
			patient := fmt.Sprintf("https://epd.example/Patient/%d", n/3%patients)
			q := store.BrowseQuery{DomainIDs: []int64{dom}, Patient: patient, Limit: 50}
			b.ResetTimer()
			for b.Loop() {
				var rows []store.BrowsedMessage
				if err := s.View(ctx, func(tx *store.Tx) error {
					var err error
					rows, _, err = tx.BrowseMessages(ctx, q)
					if err != nil {
						return err
					}
					ids := make([]int64, len(rows))
					for i, r := range rows {
						ids[i] = r.ID
					}
					_, err = tx.RecipientsOf(ctx, ids)
					return err
				}); err != nil {
					b.Fatal(err)
				}
				if len(rows) == 0 {
					b.Fatal("patient not found")
				}
			}
		})
	}
}

// patients is how many patients fillMessages spreads the messages over.
const patients = 50000

// fillMessages writes n messages and one queue row each with set-based
// statements (a million rows in seconds).
func fillMessages(b testing.TB, s *store.Store, dom, sender, rcpt int64, n int) {
	b.Helper()
	series := "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
	from := " FROM n"
	if s.Dialect() == store.Postgres {
		series, from = "", " FROM generate_series(1, ?::bigint) AS n(i)"
	}
	err := s.Update(ctx, func(tx *store.Tx) error {
		q := "INSERT INTO messages (domain_id, sender_instance_id, event, message_identifier, patient_ref, focal_ref, created_at) " +
			"SELECT ?, ?, CASE WHEN i % 3 = 0 THEN 'CreateOrUpdateCarePlan' ELSE 'CreateOrUpdatePatient' END, " +
			"'mid-' || i, 'https://epd.example/Patient/' || (i % " + strconv.Itoa(patients) + "), 'https://epd.example/Patient/' || i, i"
		var err error
		if s.Dialect() == store.Postgres {
			_, err = tx.Exec(ctx, q+from, dom, sender, n)
		} else {
			_, err = tx.Exec(ctx, series+q+from, n, dom, sender)
		}
		if err != nil {
			return fmt.Errorf("fill messages: %w", err)
		}
		_, err = tx.Exec(ctx, `INSERT INTO queue (domain_id, instance_id, message_id, event, patient_ref, focal_ref, status,
			status_changed_at, version, created_at) SELECT domain_id, ?, id, event, patient_ref, focal_ref, 'Success', created_at, 'v', created_at
			FROM messages WHERE domain_id = ?`, rcpt, dom)
		if err != nil {
			return fmt.Errorf("fill queue: %w", err)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *store.Tx) error { _, err := tx.Exec(ctx, "ANALYZE"); return err }); err != nil {
		b.Fatal(err)
	}
}

package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var ctx = context.Background()

// trail is a recorder with 10 sealed records (patients p0..p4, actors a0/a1).
func trail(t *testing.T, b storetest.Backend, now func() time.Time) (*store.Store, *audit.Recorder) {
	st := b.Open(t)
	rec, err := audit.New(audit.Options{Store: st, Key: []byte("test key"), Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	for i := range 10 {
		ev := audit.Event{Action: audit.ActionRead, Actor: audit.Actor{Kind: audit.KindInstance, Name: fmt.Sprintf("a%d", i%2),
			Application: "App", Domain: "D", SourceIP: "127.0.0.1"}, Patient: fmt.Sprintf("p%d", i%5), Object: fmt.Sprintf("MessageHeader/%d", i)}
		if i%2 == 0 {
			if err := st.Update(ctx, func(tx *store.Tx) error { return rec.InTx(ctx, tx, ev) }); err != nil {
				t.Fatal(err)
			}
		} else {
			rec.Record(ctx, ev)
			if err := rec.Flush(ctx); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n, err := rec.Seal(ctx); err != nil || n != 10 {
		t.Fatalf("seal: %d %v", n, err)
	}
	return st, rec
}

func verify(t *testing.T, rec *audit.Recorder) audit.Report {
	t.Helper()
	rp, err := rec.Verify(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return rp
}

// tamper runs SQL as someone with write access to the database would: the
// append-only triggers dropped first.
func tamper(t *testing.T, st *store.Store, stmts ...string) {
	t.Helper()
	var drops []string
	for _, table := range []string{"audit_events", "audit_seals"} {
		drop := "DROP TRIGGER IF EXISTS " + table + "_append_only"
		if st.Dialect() == store.Postgres {
			drop += " ON " + table
		}
		drops = append(drops, drop)
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		for _, q := range append(drops, stmts...) {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("%s: %w", q, err)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// idAt is the id of the record at position pos of a trail in one seal (records in id order).
func idAt(t *testing.T, st *store.Store, pos int) int64 {
	t.Helper()
	var id int64
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &id, "SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET ?", pos-1)
	}); err != nil {
		t.Fatal(err)
	}
	return id
}

// Verify finds every kind of tampering, on both databases, and names the
// first broken record; an intact trail verifies.
func TestVerifyDetectsTampering(t *testing.T) {
	cases := []struct {
		name   string
		stmts  func(id func(int) int64) []string
		wantID func(id func(int) int64) int64
		want   string
	}{
		{"modified record", func(id func(int) int64) []string {
			return []string{fmt.Sprintf("UPDATE audit_events SET patient = 'someone else' WHERE id = %d", id(4))}
		}, func(id func(int) int64) int64 { return id(4) }, "does not match its hash"},
		{"modified source address", func(id func(int) int64) []string {
			return []string{fmt.Sprintf("UPDATE audit_events SET source_ip = '10.0.0.1' WHERE id = %d", id(7))}
		}, func(id func(int) int64) int64 { return id(7) }, "does not match its hash"},
		{"deleted record", func(id func(int) int64) []string {
			return []string{fmt.Sprintf("DELETE FROM audit_events WHERE id = %d", id(5))}
		}, func(id func(int) int64) int64 { return id(5) }, "record 5 of the chain is missing"},
		{"deleted last record", func(id func(int) int64) []string {
			return []string{fmt.Sprintf("DELETE FROM audit_events WHERE id = %d", id(10))}
		}, func(id func(int) int64) int64 { return id(10) }, "record 10 of the chain is missing"},
		{"moved records", func(id func(int) int64) []string {
			return []string{
				fmt.Sprintf("UPDATE audit_events SET id = -1 WHERE id = %d", id(3)),
				fmt.Sprintf("UPDATE audit_events SET id = %d WHERE id = %d", id(3), id(6)),
				fmt.Sprintf("UPDATE audit_events SET id = %d WHERE id = -1", id(6)),
			}
		}, func(id func(int) int64) int64 { return id(3) }, "does not match its hash"},
		{"changed seal", func(id func(int) int64) []string {
			return []string{"UPDATE audit_seals SET ids = replace(ids, '-', '-0')"}
		}, func(id func(int) int64) int64 { return 0 }, "seal 1 (positions 1-10) does not match its hash"},
		{"record taken out of its seal", func(id func(int) int64) []string {
			return []string{fmt.Sprintf("UPDATE audit_seals SET ids = '%d-%d', digests = substr(digests, 1, 144), last_pos = 9", id(1), id(9))}
		}, func(id func(int) int64) int64 { return 0 }, "seal 1 (positions 1-9) does not match its hash"},
		{"deleted seal", func(id func(int) int64) []string {
			return []string{"DELETE FROM audit_seals"}
		}, func(id func(int) int64) int64 { return 0 }, "the last seals were removed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, b storetest.Backend) {
				st, rec := trail(t, b, nil)
				if rp := verify(t, rec); !rp.OK() || rp.Checked != 10 {
					t.Fatalf("intact trail: %s", rp)
				}
				id := func(seq int) int64 { return idAt(t, st, seq) }
				want := tc.wantID(id)
				tamper(t, st, tc.stmts(id)...)
				rp := verify(t, rec)
				if rp.OK() || rp.Broken == nil || rp.Broken.ID != want || !strings.Contains(rp.Broken.Reason, tc.want) {
					t.Fatalf("after tampering: %s; want record id %d, %q", rp, want, tc.want)
				}
			})
		})
	}
}

// The rows are append-only in the database itself (a trigger), and a record
// slipped in without the sealer is reported once it is older than the lag.
func TestAppendOnlyAndUnsealedRecords(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		now := time.Now()
		st, rec := trail(t, b, func() time.Time { return now })
		err := st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE audit_events SET patient = 'x' WHERE id = (SELECT MIN(id) FROM audit_events)")
			return err
		})
		if err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Fatalf("changing a record: %v, want the append-only refusal", err)
		}
		if err := st.Update(ctx, func(tx *store.Tx) error {
			return rec.InTx(ctx, tx, audit.Event{At: now.Add(-time.Hour), Action: audit.ActionRead, Actor: audit.Actor{Kind: audit.KindSystem, Name: "forger"}})
		}); err != nil {
			t.Fatal(err)
		}
		rp := verify(t, rec)
		if rp.Stale == nil || rp.Unsealed != 1 || rp.OK() {
			t.Fatalf("a record an hour old and not sealed: %s", rp)
		}
		// A record slipped in below the sealed ids is in no seal and waits for none.
		if _, err := rec.Seal(ctx); err != nil {
			t.Fatal(err)
		}
		if rp := verify(t, rec); !rp.OK() || rp.Checked != 11 {
			t.Fatalf("sealed: %s", rp)
		}
		if err := st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO audit_events (id, at, action, result, actor_kind, actor) VALUES (-5, ?, 'read', 'ok', 'system', 'forger')", now.UnixMicro())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if rp := verify(t, rec); rp.OK() || rp.Stale == nil || rp.Stale.ID != -5 || !strings.Contains(rp.Stale.Reason, "in no seal") {
			t.Fatalf("a record inserted behind the sealer's back: %s", rp)
		}
	})
}

// Query by patient, actor, action and time; Export writes JSON lines; the
// retention removes old records and the rest still verifies.
func TestQueryExportAndRetention(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		st, rec := trail(t, b, clock)
		got, err := audit.Query(ctx, st, audit.Filter{Patient: "p1"})
		if err != nil || len(got) != 2 || got[0].Object != "MessageHeader/1" || got[1].Object != "MessageHeader/6" ||
			got[0].Actor.Name != "a1" || got[0].Actor.SourceIP != "127.0.0.1" {
			t.Fatalf("patient p1: %+v %v", got, err)
		}
		if got, _ := audit.Query(ctx, st, audit.Filter{Actor: "a0", Patient: "p0"}); len(got) != 1 {
			t.Fatalf("actor a0 and patient p0: %d records", len(got))
		}
		if got, _ := audit.Query(ctx, st, audit.Filter{From: now.Add(time.Second)}); len(got) != 0 {
			t.Fatalf("after the records: %d", len(got))
		}
		if got, _ := audit.Query(ctx, st, audit.Filter{From: now, To: now.Add(time.Second), Action: audit.ActionRead}); len(got) != 10 {
			t.Fatalf("time range: %d", len(got))
		}
		var out bytes.Buffer
		n, err := audit.Export(ctx, st, audit.Filter{Limit: 3}, &out)
		if err != nil || n != 10 || strings.Count(out.String(), "\n") != 10 {
			t.Fatalf("export: %d %v\n%s", n, err, out.String())
		}
		var first audit.Event
		if err := json.Unmarshal(bytes.SplitN(out.Bytes(), []byte("\n"), 2)[0], &first); err != nil || first.Patient != "p0" || first.Action != "read" {
			t.Fatalf("first line: %+v %v", first, err)
		}

		// Five years and a day later: everything goes; a new record starts after the anchor.
		now = now.AddDate(0, 0, audit.DefaultRetentionDays+1)
		rec.Record(ctx, audit.Event{Action: audit.ActionClaim, Actor: audit.Actor{Kind: audit.KindInstance, Name: "a0"}, Patient: "p9"})
		if err := rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if _, err := rec.Seal(ctx); err != nil {
			t.Fatal(err)
		}
		if n, err := rec.Purge(ctx); err != nil || n != 10 {
			t.Fatalf("purge: %d %v", n, err)
		}
		if rp := verify(t, rec); !rp.OK() || rp.Checked != 1 || rp.HeadSeq != 11 {
			t.Fatalf("after retention: %s", rp)
		}
	})
}

// On PostgreSQL a record can commit after one with a higher id was sealed:
// the sealer keeps its id as a gap and seals it when it appears.
func TestLateCommitIsSealed(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st, rec := trail(t, b, nil)
		if st.Dialect() != store.Postgres {
			t.Skip("SQLite commits in id order")
		}
		ev := audit.Event{Action: audit.ActionRead, Actor: audit.Actor{Kind: audit.KindSystem, Name: "late"}}
		inserted, commit, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
		go func() {
			done <- st.Update(ctx, func(tx *store.Tx) error {
				if err := rec.InTx(ctx, tx, ev); err != nil {
					return err
				}
				if err := tx.Get(ctx, new(int64), "SELECT 1"); err != nil { // sends the insert
					return err
				}
				close(inserted)
				<-commit
				return nil
			})
		}()
		<-inserted
		ev.Actor.Name = "early"
		if err := st.Update(ctx, func(tx *store.Tx) error { return rec.InTx(ctx, tx, ev) }); err != nil {
			t.Fatal(err)
		}
		if n, err := rec.Seal(ctx); err != nil || n != 1 {
			t.Fatalf("seal with one record not committed: %d %v", n, err)
		}
		if rp := verify(t, rec); !rp.OK() || rp.Checked != 11 || rp.Unsealed != 0 {
			t.Fatalf("before the late commit: %s", rp)
		}
		close(commit)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if rp := verify(t, rec); !rp.OK() || rp.Unsealed != 1 {
			t.Fatalf("after the late commit: %s", rp)
		}
		if n, err := rec.Seal(ctx); err != nil || n != 1 {
			t.Fatalf("seal of the late record: %d %v", n, err)
		}
		if rp := verify(t, rec); !rp.OK() || rp.Checked != 12 || rp.Unsealed != 0 {
			t.Fatalf("after sealing the late record: %s", rp)
		}
		late, err1 := audit.Query(ctx, st, audit.Filter{Actor: "late"})
		early, err2 := audit.Query(ctx, st, audit.Filter{Actor: "early"})
		if err1 != nil || err2 != nil || len(late) != 1 || len(early) != 1 || late[0].ID > early[0].ID {
			t.Fatalf("the late record should have the lower id: %v %v %v %v", late, early, err1, err2)
		}
	})
}

// Verify reads seals and their records a page at a time: a long chain of small
// seals verifies, and a change in a later page is still found, by id.
func TestVerifyManySeals(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st, rec := trail(t, b, nil)
		var ids []int64
		for i := range 45 {
			ev := audit.Event{Action: audit.ActionRead, Actor: audit.Actor{Kind: audit.KindSystem, Name: "many"}, Patient: fmt.Sprintf("q%d", i)}
			if err := st.Update(ctx, func(tx *store.Tx) error { return rec.InTx(ctx, tx, ev) }); err != nil {
				t.Fatal(err)
			}
			if n, err := rec.Seal(ctx); err != nil || n != 1 {
				t.Fatalf("seal %d: %d %v", i, n, err)
			}
		}
		if rp := verify(t, rec); !rp.OK() || rp.Checked != 55 || rp.HeadSeq != 55 {
			t.Fatalf("46 seals: %s", rp)
		}
		if err := st.View(ctx, func(tx *store.Tx) error {
			return tx.Select(ctx, &ids, "SELECT id FROM audit_events WHERE actor = 'many' ORDER BY id")
		}); err != nil || len(ids) != 45 {
			t.Fatalf("ids: %v %v", ids, err)
		}
		tamper(t, st, fmt.Sprintf("UPDATE audit_events SET patient = 'someone else' WHERE id = %d", ids[40]))
		if rp := verify(t, rec); rp.Broken == nil || rp.Broken.ID != ids[40] || rp.Broken.Seq != 51 {
			t.Fatalf("after a change in seal 42: %s", rp)
		}
	})
}

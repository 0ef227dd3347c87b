package sql_test

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/adapters"
	kpsql "github.com/koppelpoort/koppelpoort/adapters/sql"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// target is one real database to test against.
type target struct {
	driver, dsn string
	open        func() *stdsql.DB
}

func targets(t *testing.T) []target {
	dir := t.TempDir()
	path := filepath.Join(dir, "epd.db")
	out := []target{{driver: "sqlite", dsn: path, open: func() *stdsql.DB {
		db, err := stdsql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}}}
	dsn := os.Getenv("KOPPELPOORT_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Log("KOPPELPOORT_TEST_POSTGRES_DSN not set: PostgreSQL variant skipped")
		return out
	}
	admin, err := stdsql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	name := fmt.Sprintf("kp_test_sqladapter_%d", rand.Int64N(1<<40))
	if _, err := admin.Exec("CREATE DATABASE " + name); err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(dsn)
	u.Path = "/" + name
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE IF EXISTS " + name + " WITH (FORCE)")
		admin.Close()
	})
	return append(out, target{driver: "postgres", dsn: u.String(), open: func() *stdsql.DB {
		db, err := stdsql.Open("pgx", u.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}})
}

func TestOutboundUpsertAndIdempotentInsert(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.driver, func(t *testing.T) {
			ctx := context.Background()
			up := &kpsql.Outbound{Driver: tg.driver, DSN: tg.dsn, Table: "activity_status", Mode: "upsert", Key: []string{"activity"},
				Columns: map[string]string{"activity": "activity", "status": "status", "detail": "detail"}, CreateTable: true}
			if err := up.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := up.Provision(ctx, adapters.Host{}); err != nil {
				t.Fatal(err)
			}
			defer up.Close()
			for _, st := range []string{"InProgress", "Completed"} {
				if err := up.Deliver(ctx, adapters.Delivery{IdempotencyKey: st, Fields: map[string]any{"activity": "a1", "status": st, "detail": map[string]any{"n": 1}}}); err != nil {
					t.Fatal(err)
				}
			}
			db := tg.open()
			var n int
			var status, detail string
			db.QueryRow(`SELECT COUNT(*), MAX(status), MAX(detail) FROM activity_status`).Scan(&n, &status, &detail)
			if n != 1 || status != "Completed" || detail != `{"n":1}` {
				t.Fatalf("upsert: %d rows, status %q, detail %q", n, status, detail)
			}

			ins := &kpsql.Outbound{Driver: tg.driver, DSN: tg.dsn, Table: "log", Mode: "insert", IdempotencyColumn: "delivery",
				Columns: map[string]string{"activity": "activity"}, CreateTable: true}
			if err := ins.Provision(ctx, adapters.Host{}); err != nil {
				t.Fatal(err)
			}
			defer ins.Close()
			d := adapters.Delivery{IdempotencyKey: "k1", Fields: map[string]any{"activity": "a1"}}
			for i := 0; i < 2; i++ {
				if err := ins.Deliver(ctx, d); err != nil {
					t.Fatal(err)
				}
			}
			db.QueryRow(`SELECT COUNT(*) FROM log`).Scan(&n)
			if n != 1 {
				t.Fatalf("a retried insert wrote %d rows", n)
			}
			bad := &kpsql.Outbound{Driver: tg.driver, DSN: tg.dsn, Table: "nope"}
			bad.Provision(ctx, adapters.Host{})
			defer bad.Close()
			if err := bad.Deliver(ctx, d); err == nil {
				t.Fatal("writing to a missing table must fail")
			}
		})
	}
}

type sink struct{ recs []adapters.Record }

func (s *sink) Accept(_ context.Context, r []adapters.Record) error {
	s.recs = append(s.recs, r...)
	return nil
}

func TestInboundCursor(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.driver, func(t *testing.T) {
			ctx := context.Background()
			src := tg.open()
			if _, err := src.Exec(`CREATE TABLE export_patients (id INTEGER PRIMARY KEY, name TEXT, changed INTEGER)`); err != nil {
				t.Fatal(err)
			}
			src.Exec(`INSERT INTO export_patients (id, name, changed) VALUES (1, 'Jan', 10), (2, 'Anna', 20)`)
			st := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}.Open(t)
			cps := runtime.Checkpoints{Store: st}
			in := &kpsql.Inbound{Driver: tg.driver, DSN: tg.dsn, CursorColumn: "changed", InitialCursor: "0", KeyColumn: "id", PollInterval: "1s",
				Query: `SELECT id, name, changed FROM export_patients WHERE changed > {cursor} ORDER BY changed LIMIT 10`}
			if err := in.Validate(); err != nil {
				t.Fatal(err)
			}
			if err := in.Provision(ctx, adapters.Host{Route: "r", Checkpoints: cps}); err != nil {
				t.Fatal(err)
			}
			defer in.Close()
			s := &sink{}
			if n, err := in.PollOnce(ctx, s); err != nil || n != 2 {
				t.Fatalf("first poll: %d %v", n, err)
			}
			if n, _ := in.PollOnce(ctx, s); n != 0 {
				t.Fatalf("second poll re-read %d rows", n)
			}
			src.Exec(`INSERT INTO export_patients (id, name, changed) VALUES (3, 'Kees', 30)`)
			if n, _ := in.PollOnce(ctx, s); n != 1 || s.recs[2].Key != "3" || s.recs[2].Fields["name"] != "Kees" {
				t.Fatalf("third poll: %+v", s.recs)
			}
			if v, _, _ := cps.Get(ctx, "r", "sql:changed"); v != "30" {
				t.Fatalf("checkpoint %q", v)
			}
		})
	}
}

// TestInboundLateRowWithTheSameCursor is defect 20 of issue 14: a row committed after a poll with the same
// changed_at as the last row read. The single cursor (changed_at > {cursor}) never picks it up; the pair
// cursor ((changed_at, id) > ({cursor}, {tiebreak})) does, once, and a route that had the single cursor
// goes on from it.
func TestInboundLateRowWithTheSameCursor(t *testing.T) {
	for _, tg := range targets(t) {
		t.Run(tg.driver, func(t *testing.T) {
			ctx := context.Background()
			src := tg.open()
			ts := "TEXT" // SQLite: ISO 8601 text (a DATETIME column is read as a time; see TestInboundSQLiteDateTimeCursor)
			if tg.driver == "postgres" {
				ts = "TIMESTAMPTZ"
			}
			if _, err := src.Exec(`CREATE TABLE export_patients (id INTEGER PRIMARY KEY, name TEXT, changed_at ` + ts + `)`); err != nil {
				t.Fatal(err)
			}
			const t1, t2 = "2026-12-03T08:00:00.000001Z", "2026-12-03T08:00:00.500002Z"
			mustExec(t, src, `INSERT INTO export_patients (id, name, changed_at) VALUES (1, 'Jan', '`+t1+`'), (2, 'Anna', '`+t2+`')`)
			st := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}.Open(t)
			cps := runtime.Checkpoints{Store: st}
			newInbound := func(route, query, tiebreak string) *kpsql.Inbound {
				in := &kpsql.Inbound{Driver: tg.driver, DSN: tg.dsn, CursorColumn: "changed_at", TiebreakColumn: tiebreak,
					InitialCursor: "1970-01-01T00:00:00Z", PollInterval: "1s", Query: query}
				if err := in.Validate(); err != nil {
					t.Fatal(err)
				}
				if err := in.Provision(ctx, adapters.Host{Route: route, Checkpoints: cps}); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { in.Close() })
				return in
			}
			single := newInbound("single", `SELECT id, name, changed_at FROM export_patients WHERE changed_at > {cursor} ORDER BY changed_at LIMIT 10`, "")
			pair := newInbound("pair", `SELECT id, name, changed_at FROM export_patients
				WHERE (changed_at, id) > ({cursor}, {tiebreak}) ORDER BY changed_at, id LIMIT 10`, "id")
			// The same, written without row values (each placeholder twice); it starts from the single cursor
			// that "single" checkpoints below.
			upgraded := newInbound("single", `SELECT id, name, changed_at FROM export_patients
				WHERE changed_at > {cursor} OR (changed_at = {cursor} AND id > {tiebreak}) ORDER BY changed_at, id LIMIT 10`, "id")

			poll := func(in *kpsql.Inbound) []adapters.Record {
				t.Helper()
				s := &sink{}
				if _, err := in.PollOnce(ctx, s); err != nil {
					t.Fatal(err)
				}
				return s.recs
			}
			if got := poll(single); len(got) != 2 {
				t.Fatalf("single cursor, first poll: %d rows", len(got))
			}
			if got := poll(pair); len(got) != 2 || got[0].Key != "1" || got[1].Key != "2" {
				t.Fatalf("pair cursor, first poll: %+v", got)
			}

			// Row 3 gets the same changed_at as row 2 in a transaction that commits after the polls above.
			late, err := src.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := late.Exec(`INSERT INTO export_patients (id, name, changed_at) VALUES (3, 'Kees', '` + t2 + `')`); err != nil {
				t.Fatal(err)
			}
			if got := poll(pair); len(got) != 0 {
				t.Fatalf("an uncommitted row was read: %+v", got)
			}
			if err := late.Commit(); err != nil {
				t.Fatal(err)
			}

			if got := poll(single); len(got) != 0 {
				t.Fatalf("the single cursor read %d rows: the test no longer shows defect 20", len(got))
			}
			got := poll(pair)
			if len(got) != 1 || got[0].Key != "3" || got[0].Fields["name"] != "Kees" {
				t.Fatalf("pair cursor after the late commit: %+v", got)
			}
			if got := poll(pair); len(got) != 0 {
				t.Fatalf("pair cursor read again: %+v", got)
			}
			if got[0].Meta["source_id"] == "" || got[0].Meta["source_id"] == got[0].Meta["cursor"] {
				t.Fatalf("the source id must name the row, not only its changed_at: %q", got[0].Meta["source_id"])
			}

			// The route with the single cursor adds tiebreak_column: it goes on from (t2, NULL). Nothing is read
			// again; a row with exactly t2 is not read either (row 3 stays lost, as under the single cursor), and
			// from the next changed_at on a late row is picked up.
			if got := poll(upgraded); len(got) != 0 {
				t.Fatalf("upgraded route re-read: %+v", got)
			}
			const t3 = "2026-12-03T08:00:01.000003Z"
			mustExec(t, src, `INSERT INTO export_patients (id, name, changed_at) VALUES (4, 'Els', '`+t3+`')`)
			if got := poll(upgraded); len(got) != 1 || got[0].Key != "4" {
				t.Fatalf("upgraded route: %+v", got)
			}
			mustExec(t, src, `INSERT INTO export_patients (id, name, changed_at) VALUES (5, 'Piet', '`+t3+`')`)
			if got := poll(upgraded); len(got) != 1 || got[0].Key != "5" {
				t.Fatalf("upgraded route after a late row with the same changed_at: %+v", got)
			}
			if got := poll(upgraded); len(got) != 0 {
				t.Fatalf("upgraded route read again: %+v", got)
			}
		})
	}
}

// TestInboundSQLiteDateTimeCursor: the sqlite driver reads a DATETIME column as a time, which does not
// compare exactly with the stored text; the poll fails with the way out instead of skipping or repeating rows.
func TestInboundSQLiteDateTimeCursor(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "epd.db")
	src, err := stdsql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	mustExec(t, src, `CREATE TABLE p (id INTEGER PRIMARY KEY, changed_at DATETIME)`)
	mustExec(t, src, `INSERT INTO p VALUES (1, '2026-12-03 08:00:00')`)
	st := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}.Open(t)
	for _, q := range []string{`SELECT id, changed_at FROM p WHERE (changed_at, id) > ({cursor}, {tiebreak}) ORDER BY 2, 1`,
		`SELECT id, CAST(changed_at AS TEXT) AS changed_at FROM p WHERE (changed_at, id) > ({cursor}, {tiebreak}) ORDER BY 2, 1`} {
		in := &kpsql.Inbound{Driver: "sqlite", DSN: path, CursorColumn: "changed_at", TiebreakColumn: "id", PollInterval: "1s", Query: q}
		if err := in.Provision(ctx, adapters.Host{Route: "r", Checkpoints: runtime.Checkpoints{Store: st}}); err != nil {
			t.Fatal(err)
		}
		n, err := in.PollOnce(ctx, &sink{})
		in.Close()
		if strings.Contains(q, "CAST") {
			if err != nil || n != 1 {
				t.Fatalf("as text: %d rows, %v", n, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "CAST(changed_at AS TEXT) AS changed_at") {
			t.Fatalf("a DATETIME cursor: %v", err)
		}
		if _, ok, _ := (runtime.Checkpoints{Store: st}).Get(ctx, "r", "sql:changed_at+id"); ok {
			t.Fatal("a failed poll moved the cursor")
		}
	}
}

func TestInboundValidatePlaceholders(t *testing.T) {
	for _, c := range []struct {
		in   kpsql.Inbound
		want string
	}{
		{kpsql.Inbound{CursorColumn: "c", Query: "SELECT * FROM t"}, "must contain {cursor}"},
		{kpsql.Inbound{CursorColumn: "c", Query: "SELECT * FROM t WHERE (c, id) > ({cursor}, {tiebreak})"}, "tiebreak_column is not set"},
		{kpsql.Inbound{CursorColumn: "c", TiebreakColumn: "id", Query: "SELECT * FROM t WHERE c > {cursor}"}, "WHERE (c, id) > ({cursor}, {tiebreak})"},
	} {
		if err := c.in.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: %v, want %q", c.in.Query, err, c.want)
		}
	}
}

func mustExec(t *testing.T, db *stdsql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// TestRefusesTheStoresOwnFile: an SQL adapter pointed at Koppelpoort's own SQLite store is refused at
// provisioning (it would be a second writer beside the store's one); another file next to it is fine.
func TestRefusesTheStoresOwnFile(t *testing.T) {
	dir := t.TempDir()
	st := storetest.Backend{Name: "sqlite", DSN: filepath.Join(dir, "kp.db")}.Open(t)
	ctx := context.Background()
	own := &kpsql.Outbound{Driver: "sqlite", DSN: "kp.db", Table: "t", Mode: "insert"}
	err := own.Provision(ctx, adapters.Host{Dir: dir, Store: st})
	own.Close()
	if err == nil || !strings.Contains(err.Error(), "Koppelpoort's own store") {
		t.Fatalf("provision on the store's file: %v, want a refusal", err)
	}
	in := &kpsql.Inbound{Driver: "sqlite", DSN: filepath.Join(dir, "kp.db"), Query: "SELECT 1", PollInterval: "1s"}
	err = in.Provision(ctx, adapters.Host{Dir: dir, Store: st, Checkpoints: runtime.Checkpoints{Store: st}})
	in.Close()
	if err == nil || !strings.Contains(err.Error(), "Koppelpoort's own store") {
		t.Fatalf("inbound on the store's file: %v, want a refusal", err)
	}
	other := &kpsql.Outbound{Driver: "sqlite", DSN: "epd.db", Table: "t", Mode: "insert"}
	if err := other.Provision(ctx, adapters.Host{Dir: dir, Store: st}); err != nil {
		t.Fatalf("another file: %v", err)
	}
	other.Close()
}

package sql_test

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
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

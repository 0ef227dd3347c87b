package api_test

import (
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// The database work of a request, counted instead of timed: on a machine
// shared by many, seconds say more about the neighbours than about the code,
// while the WAL bytes, pages and statements a POST, claim or acknowledgement
// costs are the same in every run. KOPPELPOORT_DBWORK=<cycles> runs the
// measurement (skipped otherwise: it takes a private PostgreSQL cluster and
// some seconds); KOPPELPOORT_DBWORK_PGCONF adds postgresql.conf lines to that
// cluster, separated by ";" (e.g. "wal_compression = lz4"). See
// docs/operations.md, "Database work per request".
//
// A cycle is the realistic mix of one practitioner portal and four
// subscribers: a new patient, a new CarePlan with the practitioner, an update
// of that CarePlan (replacing the four open entries of the first), then every
// subscriber claims and acknowledges Success until its mailbox is empty (the
// last Success of a message removes its body and keeps its resources), then
// the audit sealer runs.
const envDBWork = "KOPPELPOORT_DBWORK"

// dbWorkOps are the operations measured, in report order.
var dbWorkOps = []string{"POST", "claim", "claim of an empty mailbox", "acknowledge", "audit seal"}

func dbWorkConfig() koppeltaal.Config {
	evs := []string{"CreateOrUpdatePatient", "CreateOrUpdateCarePlan"}
	cfg := koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: "A"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}},
		Instances:    []koppeltaal.InstanceConfig{{Application: "Portal", Domain: "A", Username: "portal@a", Password: "pa"}},
		MaxBodyBytes: 64 << 10,
	}
	for i := 1; i <= 4; i++ {
		app := fmt.Sprintf("Game%d", i)
		cfg.Applications = append(cfg.Applications, koppeltaal.ApplicationConfig{ID: app})
		cfg.Instances = append(cfg.Instances, koppeltaal.InstanceConfig{Application: app, Domain: "A",
			Username: fmt.Sprintf("game%d@a", i), Password: "ga", Subscriptions: evs})
	}
	return cfg
}

// work is what the database did for some operations.
type work struct {
	ops        int
	statements int64 // pg_stat_statements calls (BEGIN and COMMIT included)
	walBytes   int64 // pg_stat_statements wal_bytes
	walRecords int64
	walFPI     int64 // full-page images
	dirtied    int64 // shared blocks dirtied
	touched    int64 // shared blocks hit or read
	lsnBytes   int64 // pg_current_wal_lsn() moved (whole cluster: commit records, background work too)
	pages      int64 // SQLite: WAL frames (pages) written
}

func (w *work) add(o work) {
	w.ops += o.ops
	w.statements += o.statements
	w.walBytes += o.walBytes
	w.walRecords += o.walRecords
	w.walFPI += o.walFPI
	w.dirtied += o.dirtied
	w.touched += o.touched
	w.lsnBytes += o.lsnBytes
	w.pages += o.pages
}

func (w work) sub(o work) work {
	return work{statements: w.statements - o.statements, walBytes: w.walBytes - o.walBytes,
		walRecords: w.walRecords - o.walRecords, walFPI: w.walFPI - o.walFPI, dirtied: w.dirtied - o.dirtied,
		touched: w.touched - o.touched, lsnBytes: w.lsnBytes - o.lsnBytes}
}

// dbMeter reads the counters of one database.
type dbMeter interface {
	checkpoint() // after the warm-up: every page a measured request touches first is a full-page image (PostgreSQL)
	before()
	after() work
	close()
}

// pgMeter reads pg_stat_statements of the store's database from the cluster's postgres database.
type pgMeter struct {
	t     testing.TB
	admin *sql.DB
	dbid  int64
	start work
}

func (m *pgMeter) snapshot() work {
	m.t.Helper()
	var w work
	var lsn string
	err := m.admin.QueryRow(`SELECT COALESCE(sum(calls), 0), COALESCE(sum(wal_bytes), 0)::bigint, COALESCE(sum(wal_records), 0),
		COALESCE(sum(wal_fpi), 0), COALESCE(sum(shared_blks_dirtied), 0), COALESCE(sum(shared_blks_hit + shared_blks_read), 0),
		(pg_current_wal_lsn() - '0/0')::text
		FROM pg_stat_statements WHERE dbid = $1`, m.dbid).
		Scan(&w.statements, &w.walBytes, &w.walRecords, &w.walFPI, &w.dirtied, &w.touched, &lsn)
	if err != nil {
		m.t.Fatalf("read pg_stat_statements: %v", err)
	}
	w.lsnBytes, _ = strconv.ParseInt(strings.Split(lsn, ".")[0], 10, 64)
	return w
}

func (m *pgMeter) checkpoint() {
	if _, err := m.admin.Exec("CHECKPOINT"); err != nil {
		m.t.Fatal(err)
	}
}
func (m *pgMeter) before()     { m.start = m.snapshot() }
func (m *pgMeter) after() work { return m.snapshot().sub(m.start) }
func (m *pgMeter) close()      { m.admin.Close() }

// statementsByWAL logs the statements of the database by WAL bytes written.
func (m *pgMeter) statementsByWAL(t testing.TB, cycles int) {
	rows, err := m.admin.Query(`SELECT calls, wal_bytes::bigint, wal_fpi, shared_blks_dirtied, left(regexp_replace(query, '\s+', ' ', 'g'), 150)
		FROM pg_stat_statements WHERE dbid = $1 AND calls > 0 ORDER BY wal_bytes DESC, calls DESC LIMIT 25`, m.dbid)
	if err != nil {
		t.Fatalf("read pg_stat_statements: %v", err)
	}
	defer rows.Close()
	t.Logf("statements by WAL, per cycle (%d cycles): calls, WAL bytes, full-page images, blocks dirtied", cycles)
	for rows.Next() {
		var calls, wal, fpi, dirtied int64
		var q string
		if err := rows.Scan(&calls, &wal, &fpi, &dirtied, &q); err != nil {
			t.Fatal(err)
		}
		c := float64(cycles)
		t.Logf("  %6.1f %8.0f %5.1f %6.1f  %s", float64(calls)/c, float64(wal)/c, float64(fpi)/c, float64(dirtied)/c, q)
	}
}

// sqliteMeter counts the pages one operation appends to the WAL: the WAL is
// checkpointed and truncated before it, so the frames after it are its own.
type sqliteMeter struct {
	t        testing.TB
	db       *sql.DB
	wal      string
	pageSize int64
}

func (m *sqliteMeter) checkpoint() {}

func (m *sqliteMeter) before() {
	m.t.Helper()
	if _, err := m.db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		m.t.Fatalf("checkpoint: %v", err)
	}
}

func (m *sqliteMeter) after() work {
	m.t.Helper()
	fi, err := os.Stat(m.wal)
	if err != nil {
		m.t.Fatal(err)
	}
	if fi.Size() == 0 {
		return work{}
	}
	return work{pages: (fi.Size() - 32) / (m.pageSize + 24)} // WAL header, then frames of a header and a page
}

func (m *sqliteMeter) close() { m.db.Close() }

func TestDatabaseWorkPerRequest(t *testing.T) {
	cycles, _ := strconv.Atoi(os.Getenv(envDBWork))
	if cycles <= 0 {
		t.Skipf("set %s=<cycles> (e.g. 200) to measure the database work per request", envDBWork)
	}
	t.Run("sqlite", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "kp.db")
		st, err := store.Open(ctx, store.Config{DSN: path, CacheTTL: time.Hour}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		db, err := sql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		m := &sqliteMeter{t: t, db: db, wal: path + "-wal"}
		if err := db.QueryRow("PRAGMA page_size").Scan(&m.pageSize); err != nil {
			t.Fatal(err)
		}
		runDBWork(t, st, m, cycles)
	})
	t.Run("postgres", func(t *testing.T) {
		conf := []string{"shared_preload_libraries = 'pg_stat_statements'", "pg_stat_statements.track_utility = on",
			"pg_stat_statements.max = 10000", "checkpoint_timeout = '1h'", "max_wal_size = '8GB'", "autovacuum = off"}
		for _, l := range strings.Split(os.Getenv(envDBWork+"_PGCONF"), ";") {
			if strings.TrimSpace(l) != "" {
				conf = append(conf, l)
			}
		}
		c := storetest.NewCluster(t, conf...)
		c.Exec("CREATE EXTENSION pg_stat_statements", "CREATE DATABASE kp_dbwork")
		st, err := store.Open(ctx, store.Config{DSN: c.DSN("kp_dbwork"), CacheTTL: time.Hour, AnalyzeEvery: -1 /* an ANALYZE would count */}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		admin, err := sql.Open("pgx", c.DSN(""))
		if err != nil {
			t.Fatal(err)
		}
		m := &pgMeter{t: t, admin: admin}
		if err := admin.QueryRow("SELECT oid FROM pg_database WHERE datname = 'kp_dbwork'").Scan(&m.dbid); err != nil {
			t.Fatal(err)
		}
		runDBWork(t, st, m, cycles)
		m.statementsByWAL(t, cycles+3)
	})
}

// runDBWork warms up (caches, prepared statements), checkpoints, runs the cycles and logs the work per operation.
func runDBWork(t *testing.T, st *store.Store, m dbMeter, cycles int) {
	t.Cleanup(m.close)
	rec, err := audit.New(audit.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	cfg := dbWorkConfig()
	var srv *api.Server
	ts := apitest.NewServer(t, func(public string) http.Handler {
		cfg.PublicURL = public
		if srv, err = api.New(ctx, api.Options{Store: st, Config: fastHashes(cfg), Audit: rec}); err != nil {
			t.Fatalf("api.New: %v", err)
		}
		r := chi.NewRouter()
		srv.Mount(r)
		return r
	})
	h := &harness{t: t, st: st, srv: srv, ts: ts}
	got := map[string]*work{}
	measure := func(do func() (op string)) {
		m.before()
		op := do()
		w := m.after()
		w.ops = 1
		if got[op] == nil {
			got[op] = &work{}
		}
		got[op].add(w)
	}
	for i := 0; i < 3; i++ {
		dbWorkCycle(t, h, rec, fmt.Sprintf("warm-%d", i), func(do func() string) { do() })
	}
	m.checkpoint()
	for i := 0; i < cycles; i++ {
		dbWorkCycle(t, h, rec, strconv.Itoa(i), measure)
	}
	ops := make([]string, 0, len(got))
	for op := range got {
		ops = append(ops, op)
	}
	sort.Slice(ops, func(i, j int) bool { return indexOf(dbWorkOps, ops[i]) < indexOf(dbWorkOps, ops[j]) })
	for _, op := range ops {
		w := got[op]
		n := float64(w.ops)
		if st.Dialect() == store.Postgres {
			t.Logf("%-26s %5d ops: %5.1f statements, %7.0f WAL bytes (%5.0f records, %4.2f full-page images), %6.0f WAL by LSN, %5.1f blocks dirtied, %6.1f touched",
				op, w.ops, float64(w.statements)/n, float64(w.walBytes)/n, float64(w.walRecords)/n, float64(w.walFPI)/n,
				float64(w.lsnBytes)/n, float64(w.dirtied)/n, float64(w.touched)/n)
		} else {
			t.Logf("%-26s %5d ops: %5.2f pages written", op, w.ops, float64(w.pages)/n)
		}
	}
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return len(list)
}

// dbWorkCycle runs one cycle of the mix (see envDBWork), each request inside measure.
func dbWorkCycle(t *testing.T, h *harness, rec *audit.Recorder, tag string, measure func(do func() (op string))) {
	const pract = "https://a.example/Practitioner/dbwork"
	post := func(b *dstu1.Bundle) reply {
		var r reply
		measure(func() string { r = postAs(h, "portal@a", "pa", b, dstu1.FormatJSON); return "POST" })
		if r.Status != 200 {
			t.Fatalf("POST: %d %s", r.Status, r)
		}
		return r
	}
	post(patientMessage("A", "https://a.example/Patient/dbwork-"+tag))
	plan := "https://a.example/CarePlan/dbwork-" + tag
	first := post(carePlanWith(plan, "", pract, "Dr. Work"))
	_, v := dstu1.SplitHistory(focalData(t, first))
	post(carePlanWith(plan, v, pract, "Dr. Work"))
	for i := 1; i <= 4; i++ {
		user := fmt.Sprintf("game%d@a", i)
		for {
			var msg *dstu1.Bundle
			measure(func() string {
				c := claim(h, user, "ga", dstu1.FormatJSON)
				if c.Status != 200 {
					t.Fatalf("claim: %d %s", c.Status, c)
				}
				if msg = bundleOf(t, c); len(msg.Entries) == 0 {
					return "claim of an empty mailbox"
				}
				return "claim"
			})
			if len(msg.Entries) == 0 {
				break
			}
			measure(func() string {
				if r := ack(h, user, "ga", msg.Entries[0].SelfLink(), "Success", "", dstu1.FormatJSON); r.Status != 200 {
					t.Fatalf("acknowledge: %d %s", r.Status, r)
				}
				return "acknowledge"
			})
		}
	}
	measure(func() string {
		if _, err := rec.Seal(ctx); err != nil {
			t.Fatal(err)
		}
		return "audit seal"
	})
}

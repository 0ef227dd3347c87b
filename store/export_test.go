package store

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
)

// ExplainClaimSQLite returns SQLite's query plan for the claim query's inner select.
func ExplainClaimSQLite(t *testing.T, path string) string {
	t.Helper()
	f := Filter{Event: "E"}
	cond, args := f.where([]any{1, 1})
	return explainSQLite(t, path, nextWaitingSQL(SQLite, f, cond), args...)
}

// ExplainReplaceOlderSQLite returns SQLite's query plan for ReplaceOlder's update.
func ExplainReplaceOlderSQLite(t *testing.T, path string) string {
	t.Helper()
	return explainSQLite(t, path, replaceOlderSQL, "ReplacedByNewVersion", 1, "v", "1 ReplacedByNewVersion;", 1, "https://a/CarePlan/1", "E", 10)
}

func explainSQLite(t *testing.T, path, q string, args ...any) string {
	t.Helper()
	s, err := Open(context.Background(), Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	rows, err := s.r.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			t.Fatal(err)
		}
		b.WriteString(detail + "\n")
	}
	return b.String()
}

// OpenAtVersion opens dsn with the migrations up to version only, the schema
// an older release left behind, for upgrade tests. Close it before store.Open
// migrates the rest.
func OpenAtVersion(t *testing.T, dsn string, version int) *Store {
	t.Helper()
	cfg := Config{DSN: dsn}
	cfg.setDefaults()
	s, err := openUnmigrated(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.migrateTo(context.Background(), version); err != nil {
		s.Close()
		t.Fatal(err)
	}
	return s
}

// ExplainWaitingPostgres returns PostgreSQL's generic plans (the ones a prepared statement keeps) for the
// claim's inner select and HasNew's count of instance's waiting entries.
func ExplainWaitingPostgres(t *testing.T, s *Store, instanceID int64) (claim, hasNew string) {
	t.Helper()
	conn, err := s.r.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	f := Filter{}
	cond, _ := f.where(nil)
	id := strconv.FormatInt(instanceID, 10)
	explain := func(name, q string) string {
		for _, stmt := range []string{"SET plan_cache_mode = force_generic_plan", "DEALLOCATE ALL", "PREPARE " + name + " AS " + s.r.Rebind(q)} {
			if _, err := conn.ExecContext(context.Background(), stmt); err != nil {
				t.Fatalf("%s: %v", stmt, err)
			}
		}
		return queryLines(t, conn, "EXPLAIN EXECUTE "+name+"("+id+", "+id+")")
	}
	return explain("claim_look", nextWaitingSQL(Postgres, f, cond)), explain("has_new", hasNewSQL(Postgres, f, cond))
}

// AcceptPlanPostgres prepares Accept's statement on one connection of s with
// generic plans forced, and returns a function that explains it there (the plan
// that connection keeps, made when first explained and kept until a table it
// reads changes its statistics), and a function to release the connection.
func AcceptPlanPostgres(t *testing.T, s *Store, instanceID int64) (explain func() string, done func()) {
	t.Helper()
	conn, err := s.w.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, stmt := range []string{"SET plan_cache_mode = force_generic_plan", "PREPARE kp_accept AS " + acceptSQLPG} {
		if _, err := conn.ExecContext(context.Background(), stmt); err != nil {
			conn.Close()
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	id := strconv.FormatInt(instanceID, 10)
	explain = func() string {
		return queryLines(t, conn, `EXPLAIN EXECUTE kp_accept('json', ''::bytea, 1, `+id+`, 'E', 'x', 'f', 'p',
			'https://a/CarePlan/1', '', 'v', false, 1, '{}', '{}', '{}', '{}', '{}', '{}', '{`+id+`}', '', '')`)
	}
	return explain, func() { conn.ExecContext(context.Background(), "DEALLOCATE kp_accept"); conn.Close() }
}

// queryLines runs q on conn and returns its one-column rows, a line each (an EXPLAIN's plan).
func queryLines(t *testing.T, conn *sql.Conn, q string) string {
	t.Helper()
	rows, err := conn.QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var b strings.Builder
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			t.Fatal(err)
		}
		b.WriteString(line + "\n")
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// AnalyzeSampled is the keeper's analysis of one table, without its listing of the grown tables first (so a
// test can bring the statistics up to date between the two).
func AnalyzeSampled(ctx context.Context, s *Store, table string) (bool, error) {
	return s.analyzeSampled(ctx, table)
}

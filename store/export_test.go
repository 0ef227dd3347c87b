package store

import (
	"context"
	"strings"
	"testing"
)

// ExplainClaimSQLite returns SQLite's query plan for the claim query's inner select.
func ExplainClaimSQLite(t *testing.T, path string) string {
	t.Helper()
	return explainSQLite(t, path, `SELECT id FROM `+waitingFrom(SQLite, Filter{})+` WHERE instance_id = ? AND status = 'New' AND is_expired = FALSE AND event = ? ORDER BY id LIMIT 1`, 1, "E")
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

package loadtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite" // driver "sqlite" for the commit probe

	"github.com/koppelpoort/koppelpoort/store"
)

// CommitRate is the machine's own limit for durable commits: single-row
// INSERTs, each its own committed transaction, over one connection.
type CommitRate struct {
	Store     string  `json:"store"`
	Commits   int64   `json:"commits"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
}

// MeasureSQLiteCommitRate commits single-row inserts for duration d in a
// temporary database in dir (next to the server's data, so on the same
// disk), with WAL and the given synchronous setting — what the server's
// store uses — and removes the database afterwards.
func MeasureSQLiteCommitRate(ctx context.Context, dir, synchronous string, d time.Duration) (*CommitRate, error) {
	if synchronous == "" {
		synchronous = "FULL"
	}
	f, err := os.CreateTemp(dir, "koppelpoort-commitprobe-*.db")
	if err != nil {
		return nil, fmt.Errorf("commit probe: create temp database in %s: %w", dir, err)
	}
	path := f.Name()
	f.Close()
	defer func() {
		for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
			os.Remove(path + suffix)
		}
	}()
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+strings.ToUpper(synchronous)+")")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("commit probe: open %s: %w", path, err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.ExecContext(ctx, `CREATE TABLE probe (id INTEGER PRIMARY KEY, at INTEGER NOT NULL, payload BLOB NOT NULL)`); err != nil {
		return nil, fmt.Errorf("commit probe: create table: %w", err)
	}
	payload := make([]byte, 256)
	res, err := probe(ctx, d, func(i int64) error {
		_, err := db.ExecContext(ctx, `INSERT INTO probe (at, payload) VALUES (?, ?)`, i, payload)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commit probe (sqlite): %w", err)
	}
	res.Store = fmt.Sprintf("sqlite WAL synchronous=%s in %s", strings.ToUpper(synchronous), filepath.Dir(path))
	if onTmpfs(filepath.Dir(path)) {
		res.Store += " (tmpfs: fsync is free)"
	}
	return res, nil
}

// MeasurePostgresCommitRate commits single-row inserts into a temporary table
// over one connection to dsn for duration d.
func MeasurePostgresCommitRate(ctx context.Context, dsn string, d time.Duration) (*CommitRate, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("commit probe: connect to postgres: %s", store.Redact(err.Error(), dsn))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, `CREATE TEMP TABLE koppelpoort_commitprobe (id bigserial PRIMARY KEY, at bigint NOT NULL, payload bytea NOT NULL)`); err != nil {
		return nil, fmt.Errorf("commit probe: create temp table: %w", err)
	}
	var sc string
	_ = conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sc)
	payload := make([]byte, 256)
	res, err := probe(ctx, d, func(i int64) error {
		_, err := conn.Exec(ctx, `INSERT INTO koppelpoort_commitprobe (at, payload) VALUES ($1, $2)`, i, payload)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("commit probe (postgres): %w", err)
	}
	cfg := conn.Config()
	res.Store = fmt.Sprintf("postgres %s:%d/%s synchronous_commit=%s", cfg.Host, cfg.Port, cfg.Database, sc)
	return res, nil
}

func probe(ctx context.Context, d time.Duration, insert func(i int64) error) (*CommitRate, error) {
	start := time.Now()
	var n int64
	for time.Since(start) < d && ctx.Err() == nil {
		if err := insert(n); err != nil {
			return nil, err
		}
		n++
	}
	secs := time.Since(start).Seconds()
	return &CommitRate{Commits: n, Seconds: secs, PerSecond: float64(n) / secs}, ctx.Err()
}

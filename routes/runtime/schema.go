package runtime

import (
	"context"
	"database/sql"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Gateway tables. They live in the store's database next to the transport's message tables; every
// statement is written once with ? placeholders and rebound for PostgreSQL.
var schemaStatements = []string{
	`CREATE TABLE IF NOT EXISTS kp_gateway_deliveries (
		id TEXT PRIMARY KEY,
		route TEXT NOT NULL,
		output TEXT NOT NULL,
		record_key TEXT NOT NULL,
		payload TEXT NOT NULL,
		record TEXT NOT NULL,
		status TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		next_attempt_at BIGINT NOT NULL,
		last_error TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL,
		updated_at BIGINT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS kp_gateway_deliveries_due ON kp_gateway_deliveries (route, status, next_attempt_at)`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_dead_letters (
		id TEXT PRIMARY KEY,
		route TEXT NOT NULL,
		stage TEXT NOT NULL,
		output TEXT NOT NULL DEFAULT '',
		record_key TEXT NOT NULL,
		record TEXT NOT NULL,
		reason TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0,
		created_at BIGINT NOT NULL,
		replayed_at BIGINT
	)`,
	`CREATE INDEX IF NOT EXISTS kp_gateway_dead_letters_route ON kp_gateway_dead_letters (route, replayed_at)`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_checkpoints (
		route TEXT NOT NULL,
		name TEXT NOT NULL,
		value TEXT NOT NULL,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (route, name)
	)`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_outcomes (
		id TEXT PRIMARY KEY,
		route TEXT NOT NULL,
		record TEXT NOT NULL,
		delivery_ids TEXT NOT NULL,
		state TEXT NOT NULL,
		ok INTEGER NOT NULL DEFAULT 0,
		reason TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL
	)`,
	`CREATE INDEX IF NOT EXISTS kp_gateway_outcomes_state ON kp_gateway_outcomes (route, state)`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_resource_versions (
		scope TEXT NOT NULL,
		url TEXT NOT NULL,
		version TEXT NOT NULL,
		updated_at BIGINT NOT NULL,
		PRIMARY KEY (scope, url)
	)`,
}

// Migrate creates the gateway tables if they do not exist (idempotent).
func Migrate(ctx context.Context, db *sql.DB, dialect string) error {
	for _, s := range schemaStatements {
		if _, err := db.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("gateway schema: %w", err)
		}
	}
	return nil
}

// rebind turns ? placeholders into $n for PostgreSQL.
func rebind(dialect, q string) string {
	if dialect != "postgres" {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

// execer is what both *sql.DB, *sql.Tx and the transport's message transaction offer.
type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Checkpoints stores inbound source positions in kp_gateway_checkpoints.
type Checkpoints struct {
	DB      *sql.DB
	Dialect string
}

// Get returns the stored value for route and name.
func (c Checkpoints) Get(ctx context.Context, route, name string) (string, bool, error) {
	var v string
	err := c.DB.QueryRowContext(ctx, rebind(c.Dialect, `SELECT value FROM kp_gateway_checkpoints WHERE route = ? AND name = ?`), route, name).Scan(&v)
	if err == sql.ErrNoRows {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read checkpoint %s/%s: %w", route, name, err)
	}
	return v, true, nil
}

// Set stores value for route and name.
func (c Checkpoints) Set(ctx context.Context, route, name, value string) error {
	_, err := c.DB.ExecContext(ctx, rebind(c.Dialect, `INSERT INTO kp_gateway_checkpoints (route, name, value, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (route, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`), route, name, value, micros(time.Now()))
	if err != nil {
		return fmt.Errorf("write checkpoint %s/%s: %w", route, name, err)
	}
	return nil
}

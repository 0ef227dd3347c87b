package store

import (
	"context"
	"database/sql"
)

// Plain-SQL access for packages that keep their own tables in this store
// (koppeltaal/oauth, koppeltaal/activity, koppeltaal/notify). Queries use "?"
// placeholders on both dialects; they are rebound for PostgreSQL.

// Exec runs a statement in the transaction.
func (t *Tx) Exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.exec(ctx, q, args...)
}

// Queue runs a statement whose result is not needed (an audit row, a counter):
// on PostgreSQL it is sent together with the transaction's next statement or
// its COMMIT, so it costs no round trip of its own; an error it causes is
// returned from there (and rolls the transaction back). On SQLite it runs now.
func (t *Tx) Queue(ctx context.Context, q string, args ...any) error {
	return t.queue(ctx, q, args...)
}

// Get scans one row into dest (sqlx rules: struct fields by `db` tag, or a scalar).
// No row gives sql.ErrNoRows.
func (t *Tx) Get(ctx context.Context, dest any, q string, args ...any) error {
	return t.get(ctx, dest, q, args...)
}

// Select scans all rows into dest, a pointer to a slice.
func (t *Tx) Select(ctx context.Context, dest any, q string, args ...any) error {
	return t.sel(ctx, dest, q, args...)
}

// InsertID runs an INSERT and returns the id of the new row.
func (t *Tx) InsertID(ctx context.Context, q string, args ...any) (int64, error) {
	return t.insertID(ctx, q, args...)
}

// Executor runs SQL exactly as written (no placeholder rebinding) in a transaction, for libraries that
// bring SQL in their own dialect: watermill-sql's schema and offsets adapters (routes/transport).
type Executor struct{ t *Tx }

// SQL returns the transaction's Executor.
func (t *Tx) SQL() Executor { return Executor{t} }

// ExecContext runs a statement.
func (e Executor) ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if p := e.t.pg; p != nil {
		tag, err := p.exec(ctx, q, args)
		return pgResult{tag}, err
	}
	return e.t.tx.ExecContext(e.t.c(ctx), q, args...)
}

// QueryContext runs a query; close the rows before the transaction ends. On PostgreSQL the query runs on
// the transaction's pinned connection after its pending statements (database/sql's rows scan values as
// callers of database/sql expect; the pipelined path hands pgx rows to its own scanners).
func (e Executor) QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	if p := e.t.pg; p != nil {
		if err := p.flush(ctx); err != nil { // BEGIN and anything queued
			return nil, err
		}
		return p.conn.QueryContext(ctx, q, args...)
	}
	return e.t.tx.QueryContext(e.t.c(ctx), q, args...)
}

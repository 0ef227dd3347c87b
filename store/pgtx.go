package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"reflect"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
)

// PostgreSQL transactions are pipelined: on a loaded machine every round trip
// to the server costs two context switches and a wait for a CPU, which is what
// made a POST slow (about 13 statements, each waited for), not the work the
// server did. So a transaction runs on one pinned pool connection, driven
// through pgx directly:
//
//   - BEGIN is not sent on its own; it goes out with the first statement;
//   - statements whose results nobody needs (Tx.Queue) wait and go out with the
//     next statement that needs results, or with COMMIT;
//   - each group is one pgx batch: one write, one wait, however many statements.
//
// database/sql's pool still owns the connections (and discards one left in a
// transaction, see stdlib.Conn.ResetSession); sqlx still maps rows to structs.

// pgTx is one pipelined transaction on a pinned connection.
type pgTx struct {
	conn    *sql.Conn // the pinned pool connection, released by end
	pc      *pgx.Conn // its pgx connection (only used while conn is held)
	pending []pgStmt  // queued, not sent yet; the first is BEGIN until something is sent
	sent    bool      // BEGIN has gone out: ending the transaction needs a round trip
}

// pgStmt is one statement of a batch and what to do with its result: scan its
// rows, keep its command tag, or (neither) only check it did not fail.
type pgStmt struct {
	sql  string
	args []any
	scan func(rows pgx.Rows) error
	tag  *pgconn.CommandTag
}

// beginPG pins a connection and queues BEGIN.
func beginPG(ctx context.Context, db *sqlx.DB, readOnly bool) (*pgTx, error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	p := &pgTx{conn: conn}
	if err := conn.Raw(func(dc any) error {
		sc, ok := dc.(*stdlib.Conn)
		if !ok {
			return fmt.Errorf("store: postgres connection is %T, not pgx", dc)
		}
		p.pc = sc.Conn()
		return nil
	}); err != nil {
		_ = conn.Close()
		return nil, err
	}
	begin := "BEGIN"
	if readOnly {
		begin = "BEGIN READ ONLY"
	}
	p.pending = []pgStmt{{sql: begin}}
	return p, nil
}

// queue adds a statement whose result is not needed; its error (if any) is
// returned by the next send or by commit.
func (p *pgTx) queue(q string, args []any) {
	p.pending = append(p.pending, pgStmt{sql: q, args: args})
}

// send sends the pending statements and then stmts in one batch (one round
// trip) and hands each statement's result to it. The first failure ends the
// batch (PostgreSQL skips the rest) and is returned.
func (p *pgTx) send(ctx context.Context, stmts ...pgStmt) error {
	all := append(p.pending, stmts...)
	p.pending = nil
	if len(all) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, st := range all {
		b.Queue(st.sql, st.args...)
	}
	p.sent = true
	br := p.pc.SendBatch(ctx, b)
	for _, st := range all {
		if err := readResult(br, st); err != nil {
			_ = br.Close()
			return fmt.Errorf("%w (in: %s)", err, firstLine(st.sql))
		}
	}
	return br.Close()
}

func readResult(br pgx.BatchResults, st pgStmt) error {
	if st.scan == nil {
		tag, err := br.Exec()
		if st.tag != nil {
			*st.tag = tag
		}
		return err
	}
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	if err := st.scan(rows); err != nil {
		return err
	}
	rows.Close()
	return rows.Err()
}

// flush sends the pending statements, if any.
func (p *pgTx) flush(ctx context.Context) error { return p.send(ctx) }

func (p *pgTx) exec(ctx context.Context, q string, args []any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := p.send(ctx, pgStmt{sql: q, args: args, tag: &tag})
	return tag, err
}

// query sends q (after the pending statements) and passes its rows to scan.
func (p *pgTx) query(ctx context.Context, q string, args []any, scan func(rows pgx.Rows) error) error {
	return p.send(ctx, pgStmt{sql: q, args: args, scan: scan})
}

// commit sends the pending statements with COMMIT, in one round trip.
func (p *pgTx) commit(ctx context.Context) error {
	tag, err := p.exec(ctx, "COMMIT", nil)
	if err != nil {
		return err
	}
	if tag.String() != "COMMIT" { // a failed transaction "commits" as ROLLBACK
		return fmt.Errorf("transaction rolled back (%s)", tag.String())
	}
	return nil
}

// rollback discards the pending statements and ends the transaction; nothing
// is sent when BEGIN never went out.
func (p *pgTx) rollback() error {
	if !p.sent {
		p.pending = nil
		return nil
	}
	p.pending = nil
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := p.pc.Exec(ctx, "ROLLBACK")
	return err
}

// end releases the pinned connection. A connection still in a transaction
// (a failed ROLLBACK, a cancelled batch) is discarded by the pool.
func (p *pgTx) end() { _ = p.conn.Close() }

// pgRows adapts pgx rows to what sqlx's StructScan reads.
type pgRows struct{ pgx.Rows }

func (r pgRows) Columns() ([]string, error) {
	fds := r.FieldDescriptions()
	cols := make([]string, len(fds))
	for i, fd := range fds {
		cols[i] = fd.Name
	}
	return cols, nil
}

func (r pgRows) Close() error {
	r.Rows.Close()
	return r.Rows.Err()
}

var scannerType = reflect.TypeFor[sql.Scanner]()

// scannable reports whether t is scanned as one column (sqlx's rule): not a
// struct, or a struct that scans itself (sql.Scanner, time.Time).
func scannable(t reflect.Type) bool {
	return t.Kind() != reflect.Struct || reflect.PointerTo(t).Implements(scannerType) || t == reflect.TypeFor[time.Time]()
}

// scanAll scans every row into dest, a pointer to a slice, as sqlx's Select does.
func scanAll(rows pgx.Rows, dest any) error {
	v := reflect.ValueOf(dest)
	if v.Kind() != reflect.Pointer || v.IsNil() || v.Elem().Kind() != reflect.Slice {
		return fmt.Errorf("store: scan into %T: want a pointer to a slice", dest)
	}
	elem := v.Elem().Type().Elem()
	if !scannable(elem) {
		return sqlx.StructScan(pgRows{rows}, dest)
	}
	out := v.Elem()
	for rows.Next() {
		e := reflect.New(elem)
		if err := rows.Scan(e.Interface()); err != nil {
			return err
		}
		out = reflect.Append(out, e.Elem())
	}
	v.Elem().Set(out)
	return rows.Err()
}

// scanOne scans the first row into dest as sqlx's Get does: a struct by `db`
// tags, anything else (and sql.Scanner, time.Time) as one column.
// No row is sql.ErrNoRows.
func scanOne(rows pgx.Rows, dest any) error {
	v := reflect.ValueOf(dest)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("store: scan into %T: want a non-nil pointer", dest)
	}
	base := v.Elem().Type()
	if scannable(base) {
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return sql.ErrNoRows
		}
		return rows.Scan(dest)
	}
	all := reflect.New(reflect.SliceOf(base))
	if err := sqlx.StructScan(pgRows{rows}, all.Interface()); err != nil {
		return err
	}
	if all.Elem().Len() == 0 {
		return sql.ErrNoRows
	}
	v.Elem().Set(all.Elem().Index(0))
	return nil
}

// pgResult is the sql.Result of a statement run through pgx.
type pgResult struct{ tag pgconn.CommandTag }

func (r pgResult) LastInsertId() (int64, error) {
	return 0, errors.New("store: LastInsertId is not supported on PostgreSQL (use RETURNING)")
}
func (r pgResult) RowsAffected() (int64, error) { return r.tag.RowsAffected(), nil }

func firstLine(q string) string {
	for i, c := range q {
		if c == '\n' {
			return q[:i] + " …"
		}
	}
	return q
}

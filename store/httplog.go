package store

import (
	"context"
	"fmt"
	"strings"
)

// HTTPLogRow is one row of the HTTP request log (package httplog gives it meaning).
type HTTPLogRow struct {
	ID           int64  `db:"id"`
	At           int64  `db:"at"` // request start, Unix µs
	Method       string `db:"method"`
	Path         string `db:"path"`
	Query        string `db:"query"`
	CallerKind   string `db:"caller_kind"`
	Caller       string `db:"caller"`
	Domain       string `db:"domain"`
	Status       int    `db:"status"`
	DurationUS   int64  `db:"duration_us"`
	RequestID    string `db:"request_id"`
	SourceIP     string `db:"source_ip"`
	RequestBody  []byte `db:"request_body"`
	ResponseBody []byte `db:"response_body"`
}

const httpLogDataCols = `at, method, path, query, caller_kind, caller, domain, status, duration_us, request_id,
	source_ip, request_body, response_body`

const httpLogCols = "id, " + httpLogDataCols

// httpLogChunk bounds the rows of one INSERT (13 parameters a row: well under
// SQLite's 32766 and PostgreSQL's 65535).
const httpLogChunk = 500

// InsertHTTPLog appends rows in one write transaction, a multi-row INSERT per chunk.
func (s *Store) InsertHTTPLog(ctx context.Context, rows []HTTPLogRow) error {
	if len(rows) == 0 {
		return nil
	}
	return s.Update(ctx, func(tx *Tx) error {
		for start := 0; start < len(rows); start += httpLogChunk {
			chunk := rows[start:min(start+httpLogChunk, len(rows))]
			var q strings.Builder
			q.WriteString("INSERT INTO http_log (" + httpLogDataCols + ") VALUES ")
			args := make([]any, 0, len(chunk)*13)
			for i, r := range chunk {
				if i > 0 {
					q.WriteString(", ")
				}
				q.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
				args = append(args, r.At, r.Method, r.Path, r.Query, r.CallerKind, r.Caller, r.Domain, r.Status,
					r.DurationUS, r.RequestID, r.SourceIP, nullBytes(r.RequestBody), nullBytes(r.ResponseBody))
			}
			if err := tx.queue(ctx, q.String(), args...); err != nil {
				return fmt.Errorf("write http log: %w", err)
			}
		}
		return nil
	})
}

func nullBytes(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// HTTPLogFilter selects HTTP log rows; zero fields do not filter.
type HTTPLogFilter struct {
	From, To   int64  // at >= From, at < To (Unix µs)
	Caller     string // caller name (instance, OAuth client, administrator)
	StatusMin  int    // status >= StatusMin
	StatusMax  int    // status < StatusMax
	PathPrefix string
	RequestID  string
	BeforeAt   int64 // keyset paging: rows before (BeforeAt, BeforeID) in (at, id) order
	BeforeID   int64
	Limit      int
	WithBodies bool // read request_body and response_body too
}

// QueryHTTPLog returns rows matching f, newest first ((at, id) descending).
func (s *Store) QueryHTTPLog(ctx context.Context, f HTTPLogFilter) ([]HTTPLogRow, error) {
	var where []string
	var args []any
	add := func(cond string, v ...any) { where = append(where, cond); args = append(args, v...) }
	if f.From != 0 {
		add("at >= ?", f.From)
	}
	if f.To != 0 {
		add("at < ?", f.To)
	}
	if f.Caller != "" {
		add("caller = ?", f.Caller)
	}
	if f.StatusMin != 0 {
		add("status >= ?", f.StatusMin)
	}
	if f.StatusMax != 0 {
		add("status < ?", f.StatusMax)
	}
	if f.PathPrefix != "" {
		add("substr(path, 1, ?) = ?", len(f.PathPrefix), f.PathPrefix)
	}
	if f.RequestID != "" {
		add("request_id = ?", f.RequestID)
	}
	if f.BeforeAt != 0 {
		add("(at < ? OR (at = ? AND id < ?))", f.BeforeAt, f.BeforeAt, f.BeforeID)
	}
	if len(where) == 0 {
		where = append(where, "1 = 1")
	}
	if f.Limit <= 0 {
		f.Limit = 100
	}
	cols := httpLogCols
	if !f.WithBodies {
		cols = strings.NewReplacer("request_body", "NULL AS request_body", "response_body", "NULL AS response_body").Replace(httpLogCols)
	}
	args = append(args, f.Limit)
	var rows []HTTPLogRow
	err := s.View(ctx, func(tx *Tx) error {
		return tx.sel(ctx, &rows, "SELECT "+cols+" FROM http_log WHERE "+strings.Join(where, " AND ")+
			" ORDER BY at DESC, id DESC LIMIT ?", args...)
	})
	if err != nil {
		return nil, fmt.Errorf("query http log: %w", err)
	}
	return rows, nil
}

// DeleteHTTPLog removes up to limit rows of successful calls (status < 400)
// that started before okBefore and of failed calls before failedBefore (Unix
// µs), oldest first, and returns how many it removed.
func (t *Tx) DeleteHTTPLog(ctx context.Context, okBefore, failedBefore int64, limit int) (int64, error) {
	res, err := t.exec(ctx, `DELETE FROM http_log WHERE id IN (SELECT id FROM http_log
		WHERE at < ? AND ((status < 400 AND at < ?) OR (status >= 400 AND at < ?)) ORDER BY at LIMIT ?)`,
		max(okBefore, failedBefore), okBefore, failedBefore, limit)
	if err != nil {
		return 0, fmt.Errorf("remove http log rows: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

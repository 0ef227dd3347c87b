package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
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
	// Visible, when set, keeps only the rows of its callers (an administrator's scope).
	Visible *HTTPLogScope
}

// HTTPLogScope is whose requests a limited reader sees: callers in Domains (any
// kind that names its domain: instances, Bearer tokens), the Instances (user
// names) and the OAuth Clients (their Bearer tokens, Authorize and Token). An
// empty scope matches nothing; unauthenticated requests match no scope.
type HTTPLogScope struct {
	Domains, Instances, Clients []string
}

// Sees reports whether a row of that caller is in the scope: the condition of where, in Go.
func (v HTTPLogScope) Sees(kind, caller, domain string) bool {
	switch {
	case domain != "" && slices.Contains(v.Domains, domain):
		return true
	case kind == "instance":
		return slices.Contains(v.Instances, caller)
	case kind == "bearer" || kind == "client":
		return slices.Contains(v.Clients, caller)
	}
	return false
}

// where is the scope as one SQL condition with its arguments.
func (v HTTPLogScope) where() (string, []any) {
	var parts []string
	var args []any
	if len(v.Domains) > 0 {
		q, a := inQueryStrings("domain IN (?)", nil, v.Domains)
		parts, args = append(parts, q), append(args, a...)
	}
	if len(v.Instances) > 0 {
		q, a := inQueryStrings("(caller_kind = 'instance' AND caller IN (?))", nil, v.Instances)
		parts, args = append(parts, q), append(args, a...)
	}
	if len(v.Clients) > 0 {
		q, a := inQueryStrings("(caller_kind IN ('bearer', 'client') AND caller IN (?))", nil, v.Clients)
		parts, args = append(parts, q), append(args, a...)
	}
	if len(parts) == 0 {
		return "1 = 0", nil
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
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
	if f.Visible != nil {
		cond, vargs := f.Visible.where()
		add(cond, vargs...)
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

// HTTPLogEntry returns row id with its bodies, or ErrNotFound (never logged, or removed by retention).
func (s *Store) HTTPLogEntry(ctx context.Context, id int64) (HTTPLogRow, error) {
	var row HTTPLogRow
	err := s.View(ctx, func(tx *Tx) error {
		return tx.get(ctx, &row, "SELECT "+httpLogCols+" FROM http_log WHERE id = ?", id)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return row, fmt.Errorf("http log entry %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return row, fmt.Errorf("read http log entry %d: %w", id, err)
	}
	return row, nil
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

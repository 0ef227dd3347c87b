package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/jmoiron/sqlx"
)

// Single-statement reads on the hot path run outside a transaction (one
// statement reads one consistent snapshot by itself) through statements
// prepared once per pooled connection: no BEGIN/COMMIT round trip and no
// re-parsing of the SQL for every claim or message render.

// readStmts caches the read pool's prepared statements by query text.
type readStmts struct {
	mu    sync.Mutex
	stmts map[string]*sqlx.Stmt
}

func (s *Store) readStmt(ctx context.Context, q string) (*sqlx.Stmt, error) {
	q = s.r.Rebind(q)
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	if st, ok := s.reads.stmts[q]; ok {
		return st, nil
	}
	st, err := s.r.PreparexContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if s.reads.stmts == nil {
		s.reads.stmts = map[string]*sqlx.Stmt{}
	}
	s.reads.stmts[q] = st
	return st, nil
}

func (s *Store) closeReadStmts() {
	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	for q, st := range s.reads.stmts {
		_ = st.Close()
		delete(s.reads.stmts, q)
	}
}

// HasNew reports whether the instance has a New entry matching f. Claims ask
// this first, so that polling an empty mailbox takes no write transaction (on
// SQLite: no turn of the one writer).
func (s *Store) HasNew(ctx context.Context, instanceID int64, f Filter) (bool, error) {
	f.Status = ""
	cond, args := f.where([]any{instanceID, instanceID})
	st, err := s.readStmt(ctx, hasNewSQL(s.dialect, f, cond))
	if err != nil {
		return false, fmt.Errorf("look for new entries of instance %d: %w", instanceID, unavailable(err))
	}
	var n int
	if err := st.GetContext(ctx, &n, args...); err != nil {
		return false, fmt.Errorf("look for new entries of instance %d: %w", instanceID, unavailable(err))
	}
	return n > 0, nil
}

// hasNewSQL counts (0 or 1) the instance's waiting entries matching cond (f.where's); see waitingLook.
func hasNewSQL(d Dialect, f Filter, cond string) string {
	return "SELECT COUNT(*) FROM (SELECT 1 FROM " + waitingFrom(d, f) + " WHERE " + waitingLook + cond + " LIMIT 1) AS waiting"
}

// MessageWithBody returns a committed message's metadata and its stored body
// in one statement outside a transaction.
func (s *Store) MessageWithBody(ctx context.Context, id int64) (m Message, format string, body []byte, err error) {
	st, err := s.readStmt(ctx, `SELECT m.id, m.domain_id, COALESCE(m.sender_instance_id, 0) AS sender_instance_id, m.event,
		m.message_identifier, m.feed_id, m.patient_ref, m.focal_ref, m.focal_version, m.version,
		COALESCE(m.body_id, 0) AS body_id, m.is_expired, m.created_at, b.format, b.body
		FROM messages m JOIN message_bodies b ON b.id = m.body_id WHERE m.id = ?`)
	if err != nil {
		return m, "", nil, fmt.Errorf("read message %d: %w", id, unavailable(err))
	}
	var row struct {
		Message
		Format string `db:"format"`
		Body   []byte `db:"body"`
	}
	err = st.GetContext(ctx, &row, id)
	if errors.Is(err, sql.ErrNoRows) {
		return m, "", nil, fmt.Errorf("message %d (with its body): %w", id, ErrNotFound)
	}
	if err != nil {
		return m, "", nil, fmt.Errorf("read message %d: %w", id, unavailable(err))
	}
	if row.Body, err = decodeBody(row.Body); err != nil {
		return m, "", nil, fmt.Errorf("read message %d: %w", id, err)
	}
	return row.Message, row.Format, row.Body, nil
}

package store

import (
	"context"
	"sync"

	"github.com/jmoiron/sqlx"
)

// stmtCache keeps prepared statements of the SQLite writer connection, so the
// group-commit writer does not re-parse the same SQL for every request.
//
// database/sql reuses a DB-level prepared statement inside a transaction only
// when it was prepared on the transaction's connection, and the writer has
// exactly one connection — which a running batch holds. So statements are
// prepared between batches: a query seen during a batch runs unprepared and is
// queued; the committer prepares the queue after the batch's COMMIT.
type stmtCache struct {
	db      *sqlx.DB
	mu      sync.Mutex
	stmts   map[string]*sqlx.Stmt
	pending map[string]bool
}

// maxStatements bounds the cache; queries with variable IN lists could otherwise grow it without end.
const maxStatements = 256

func newStmtCache(db *sqlx.DB) *stmtCache {
	return &stmtCache{db: db, stmts: map[string]*sqlx.Stmt{}, pending: map[string]bool{}}
}

// lookup returns the prepared statement for q, or nil (and remembers q for preparing).
func (c *stmtCache) lookup(q string) *sqlx.Stmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[q]; ok {
		return st
	}
	if len(c.stmts)+len(c.pending) < maxStatements {
		c.pending[q] = true
	}
	return nil
}

// prepare prepares the queued queries; call it only while no transaction holds the connection.
func (c *stmtCache) prepare(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q := range c.pending {
		delete(c.pending, q)
		if st, err := c.db.PreparexContext(ctx, q); err == nil {
			c.stmts[q] = st
		}
		// On error the query simply keeps running unprepared.
	}
}

func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for q, st := range c.stmts {
		_ = st.Close()
		delete(c.stmts, q)
	}
}

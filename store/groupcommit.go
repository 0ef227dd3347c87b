package store

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
)

// Group commit (SQLite): concurrent Update calls are run one after another in
// one transaction, each inside its own savepoint, and answered after the
// single COMMIT (one fsync for the batch). A function that fails is rolled
// back to its savepoint and gets its own error; the others still commit. A
// call alone in its batch runs without a savepoint (its failure rolls back the
// transaction).
// PostgreSQL does not need this: it already overlaps concurrent commits.

// maxBatch bounds how many requests share one transaction.
const maxBatch = 128

type writeReq struct {
	ctx  context.Context
	fn   func(tx *Tx) error
	done chan error
}

// errClosed is returned for writes that arrive while the store closes.
var errClosed = errors.New("store: closed")

// panicError carries a panic from a batched function back to its caller.
type panicError struct{ v any }

func (p panicError) Error() string { return fmt.Sprintf("panic in transaction: %v", p.v) }

func (s *Store) startGroupCommit() {
	s.reqs = make(chan *writeReq)
	s.stmts = newStmtCache(s.w)
	s.closing = make(chan struct{})
	s.stopped = make(chan struct{})
	go s.commitLoop()
}

// stopGroupCommit lets the running batch finish and stops the committer.
func (s *Store) stopGroupCommit() {
	if s.reqs == nil {
		return
	}
	s.closeOnce.Do(func() { close(s.closing) })
	<-s.stopped
	s.stmts.close()
}

func (s *Store) commitLoop() {
	defer close(s.stopped)
	for {
		var first *writeReq
		select {
		case first = <-s.reqs:
		case <-s.closing:
			return
		}
		batch := []*writeReq{first}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-s.reqs:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		s.runBatch(batch)
		s.kickCheckpoint()
		// The connection is free again: prepare the statements this batch ran unprepared.
		s.stmts.prepare(context.Background())
	}
}

// WriterStats are cumulative counters of the SQLite group-commit writer.
type WriterStats struct {
	Batches  uint64        // transactions committed (or failed) by the writer
	Requests uint64        // Update calls they carried
	Busy     time.Duration // time the writer spent running batches, COMMIT (fsync) included
	Commit   time.Duration // of which in COMMIT: writing the WAL and fsync
}

// WriterStats returns the writer's counters (zero on PostgreSQL, which has no
// single writer). Busy divided by wall time is the writer's utilisation: near
// 1, every further write waits in line.
func (s *Store) WriterStats() WriterStats {
	return WriterStats{Batches: s.wstats.batches.Load(), Requests: s.wstats.requests.Load(),
		Busy: time.Duration(s.wstats.busyNanos.Load()), Commit: time.Duration(s.wstats.commitNanos.Load())}
}

type writerCounters struct {
	batches, requests, busyNanos, commitNanos atomic.Uint64
}

func (s *Store) runBatch(batch []*writeReq) {
	start := time.Now()
	// answer counts the batch before replying, so a caller that has its answer
	// also sees its request in WriterStats.
	answer := func(errOf func(i int) error) {
		s.wstats.batches.Add(1)
		s.wstats.requests.Add(uint64(len(batch)))
		s.wstats.busyNanos.Add(uint64(time.Since(start)))
		for i, r := range batch {
			r.done <- errOf(i)
		}
	}
	// The batch transaction is not tied to any caller's context: one caller
	// giving up must not roll back the others' writes.
	bg := context.Background()
	sqltx, err := s.w.BeginTxx(bg, nil)
	if err != nil {
		answer(func(int) error { return fmt.Errorf("store: begin: %w", err) })
		return
	}
	tx := &Tx{tx: sqltx, dialect: s.dialect, noCancel: true, stmts: s.stmts, subs: s.subs}
	if len(batch) == 1 {
		// Alone in its transaction, a request needs no savepoint: if it fails, the whole transaction is
		// rolled back. An open savepoint is not free on SQLite: every statement's own savepoint is cut
		// back on release by walking the savepoint journal, which grows with everything the request has
		// written so far (a routing transaction of many records spent a tenth of its time there).
		r := batch[0]
		err := r.ctx.Err()
		if err == nil {
			err = runGuarded(tx, r.fn)
		}
		if err != nil {
			_ = sqltx.Rollback()
			answer(func(int) error { return err })
			return
		}
		s.commit(sqltx, tx, answer, func(int) error { return nil })
		return
	}
	results := make([]error, len(batch))
	for i, r := range batch {
		if err := r.ctx.Err(); err != nil {
			results[i] = err
			continue
		}
		if _, err := sqltx.ExecContext(bg, "SAVEPOINT kp_req"); err != nil {
			results[i] = fmt.Errorf("store: savepoint: %w", err)
			continue
		}
		changedBefore := tx.instChanged
		err := runGuarded(tx, r.fn)
		if err != nil {
			tx.instChanged = changedBefore // its writes are undone
			if _, rerr := sqltx.ExecContext(bg, "ROLLBACK TO kp_req"); rerr != nil {
				// The transaction is unusable: fail everyone in it.
				_ = sqltx.Rollback()
				answer(func(int) error { return fmt.Errorf("store: rollback to savepoint: %w (after: %v)", rerr, err) })
				return
			}
		}
		if _, rerr := sqltx.ExecContext(bg, "RELEASE kp_req"); rerr != nil && err == nil {
			err = fmt.Errorf("store: release savepoint: %w", rerr)
		}
		results[i] = err
	}
	s.commit(sqltx, tx, answer, func(i int) error { return results[i] })
}

// commit commits a batch's transaction and answers its requests: each with its own result, or all with the
// commit's error.
func (s *Store) commit(sqltx *sqlx.Tx, tx *Tx, answer func(func(int) error), result func(int) error) {
	commitStart := time.Now()
	err := sqltx.Commit()
	s.wstats.commitNanos.Add(uint64(time.Since(commitStart)))
	if err != nil {
		answer(func(int) error { return fmt.Errorf("store: commit: %w", err) })
		return
	}
	if tx.instChanged {
		s.instGen.Add(1)
	}
	answer(result)
}

func runGuarded(tx *Tx, fn func(tx *Tx) error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = panicError{p}
		}
	}()
	return fn(tx)
}

// updateGrouped queues fn for the committer and waits for the batch's commit.
func (s *Store) updateGrouped(ctx context.Context, fn func(tx *Tx) error) error {
	r := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-s.closing:
		return errClosed
	}
	err := <-r.done
	var p panicError
	if errors.As(err, &p) {
		panic(p.v)
	}
	return err
}

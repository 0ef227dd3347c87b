package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"modernc.org/sqlite"
)

// ErrUnavailable marks an error of a database that cannot serve the request
// now but may again soon: PostgreSQL unreachable, shutting down, in recovery
// or read-only (a failover in progress), a disk that is full, a file system
// that went read-only. Callers answer it with 503 and Retry-After instead of
// 500; nothing was written. Test with errors.Is.
var ErrUnavailable = errors.New("store: database unavailable")

// unavailable wraps err with ErrUnavailable when it is such an error.
func unavailable(err error) error {
	if err == nil || errors.Is(err, ErrUnavailable) || !isUnavailable(err) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

func isUnavailable(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up (or its deadline passed): not the database's state
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection exception
			strings.HasPrefix(pe.Code, "53"),                           // insufficient resources: disk full, out of memory, too many connections
			strings.HasPrefix(pe.Code, "58"),                           // system error: I/O
			pe.Code == "25006",                                         // read_only_sql_transaction: a standby, or default_transaction_read_only
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03": // shutting down, crashed, not accepting connections yet
			return true
		}
		return false
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff { // primary result code
		case 5, 8, 10, 13, 14: // BUSY (after the busy timeout), READONLY, IOERR, FULL, CANTOPEN
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, driver.ErrBadConn) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) ||
		pgconn.SafeToRetry(err)
}

// health remembers whether the last commit worked, for Ready.
type health struct {
	mu       sync.Mutex
	okAt     time.Time // last successful commit (or probe)
	failAt   time.Time // last commit that failed with an ErrUnavailable error
	failErr  error
	probedAt time.Time
}

func (h *health) note(err error) {
	if err != nil && !errors.Is(err, ErrUnavailable) {
		return // the request's own error (a conflict, a bad message): says nothing about the store
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err == nil {
		h.okAt = time.Now()
	} else {
		h.failAt, h.failErr = time.Now(), err
	}
}

// probeIdle is how long without a successful commit before Ready writes a probe row.
const probeIdle = 5 * time.Second

// sqliteMinFree is the free space below which an SQLite store is not ready.
// On a nearly full disk a small commit can still fit in the WAL's reused frames
// while a POST's does not, so the commits and the probe alone would flip
// between ready and not.
const sqliteMinFree = 1 << 20

// diskFull reports an SQLite file system with less than sqliteMinFree free.
func (s *Store) diskFull() error {
	if s.dialect != SQLite {
		return nil
	}
	if free, ok := freeBytes(filepath.Dir(s.where)); ok && free < sqliteMinFree {
		return fmt.Errorf("%w: the file system of %s is full (%d bytes free, need %d)", ErrUnavailable, s.where, free, sqliteMinFree)
	}
	return nil
}

// diskCheckEvery is how long diskFullNow trusts its last look at the file system.
const diskCheckEvery = 100 * time.Millisecond

// diskFullNow is diskFull for the write path: it looks at most every diskCheckEvery.
func (s *Store) diskFullNow() error {
	if s.dialect != SQLite {
		return nil
	}
	d := &s.disk
	now := time.Now().UnixNano()
	if last := d.checked.Load(); now-last < int64(diskCheckEvery) || !d.checked.CompareAndSwap(last, now) {
		if e := d.full.Load(); e != nil {
			return *e
		}
		return nil
	}
	err := s.diskFull()
	if err != nil {
		d.full.Store(&err)
	} else {
		d.full.Store(nil)
	}
	return err
}

// diskState is the last look of diskFullNow.
type diskState struct {
	checked atomic.Int64 // Unix ns
	full    atomic.Pointer[error]
}

// canCommit reports whether the store can commit now: not on a full disk
// (SQLite); otherwise the last commit's outcome, or, when it failed or none
// was made for probeIdle, a probe write (at most one per second).
func (s *Store) canCommit(ctx context.Context) error {
	if err := s.diskFull(); err != nil {
		return err
	}
	h := &s.health
	h.mu.Lock()
	failing := h.failAt.After(h.okAt)
	due := (failing || time.Since(h.okAt) > probeIdle) && time.Since(h.probedAt) >= time.Second
	if due {
		h.probedAt = time.Now()
	}
	failErr := h.failErr
	h.mu.Unlock()
	if !due {
		if failing {
			return failErr
		}
		return nil
	}
	err := s.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, `INSERT INTO store_probe (id, written_at) VALUES (1, ?)
			ON CONFLICT (id) DO UPDATE SET written_at = excluded.written_at`, micros(time.Now()))
		return err
	})
	if err != nil && ctx.Err() == nil && !errors.Is(err, ErrUnavailable) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err) // a probe that cannot write is the store's fault whatever the code
		h.note(err)
	}
	return err
}

package store

import (
	"context"
	"fmt"
)

// Space: removed message bodies must give their space back.
//
// SQLite: a database created by this version has auto_vacuum=INCREMENTAL (it
// can only be chosen before the first table exists), and ReclaimSpace hands
// free pages back to the file system a bounded number at a time. A database
// created before (auto_vacuum NONE) reuses its free pages for new data, so it
// stops growing under steady load, but only a VACUUM (offline: it rewrites the
// whole file) makes it smaller; Open logs that once.
//
// PostgreSQL: removed rows are reclaimed by autovacuum, set (migration 0015) to
// vacuum the message, body (and its TOAST) and queue tables after 2 % dead rows.

// sqliteAutoVacuumIncremental is PRAGMA auto_vacuum's value for INCREMENTAL.
const sqliteAutoVacuumIncremental = 2

// prepareSQLiteFile reports what an older file has. A new file gets
// incremental auto-vacuum from the connection's first pragma (openSQLite),
// before its first page is written: no VACUUM, so several processes opening a
// new file together do not queue behind each other's rewrites of it.
func (s *Store) prepareSQLiteFile(ctx context.Context) error {
	if mode, err := s.SQLiteAutoVacuum(ctx); err == nil && mode != sqliteAutoVacuumIncremental {
		s.log.Info("store: this SQLite file was created without incremental auto-vacuum: space of removed messages is reused but the file does not shrink; to shrink it, stop the server and run VACUUM once (e.g. sqlite3 <file> 'PRAGMA auto_vacuum=INCREMENTAL; VACUUM')",
			"where", s.where, "auto_vacuum", mode)
	}
	return nil
}

// SQLiteAutoVacuum returns PRAGMA auto_vacuum (0 none, 1 full, 2 incremental); -1 on PostgreSQL.
func (s *Store) SQLiteAutoVacuum(ctx context.Context) (int, error) {
	if s.dialect != SQLite {
		return -1, nil
	}
	var v int
	err := s.r.GetContext(ctx, &v, "PRAGMA auto_vacuum")
	return v, err
}

// ReclaimSpace gives up to maxPages free pages of the SQLite file back to the
// file system (PRAGMA incremental_vacuum, one short write transaction) and
// returns how many it freed and how many free pages are left. On PostgreSQL,
// and on an SQLite file without incremental auto-vacuum, it does nothing.
func (s *Store) ReclaimSpace(ctx context.Context, maxPages int) (freed, left int64, err error) {
	if mode, err := s.SQLiteAutoVacuum(ctx); err != nil || mode != sqliteAutoVacuumIncremental {
		return 0, 0, err
	}
	var before, after int64
	err = s.Update(ctx, func(tx *Tx) error {
		if err := tx.tx.GetContext(ctx, &before, "PRAGMA freelist_count"); err != nil {
			return err
		}
		if before == 0 {
			after = 0
			return nil
		}
		if _, err := tx.tx.ExecContext(ctx, fmt.Sprintf("PRAGMA incremental_vacuum(%d)", maxPages)); err != nil {
			return err
		}
		return tx.tx.GetContext(ctx, &after, "PRAGMA freelist_count")
	})
	if err != nil {
		return 0, 0, fmt.Errorf("store: reclaim space in %s: %w", s.where, err)
	}
	return before - after, after, nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// The statistics keeper (PostgreSQL). A prepared statement keeps the plan
// PostgreSQL made for it on a connection — a generic plan from its sixth run —
// until the statistics of a table it reads change. Autovacuum analyses a table
// once 10 % of it changed, but looks only every autovacuum_naptime (a minute).
// On a new database the plans are made while the tables hold a few rows and
// then kept while they grow: 20 s into a load run, a POST's replacement of
// older queue entries scanned the whole queue (Seq Scan, 6,441 rows, ~25 ms)
// in 353 of the 394 POSTs that took over 25 ms, until autovacuum came by.
//
// The keeper analyses each of our tables that has more than doubled since it
// was last analysed (and holds at least analyzeMinRows rows), so the
// plans follow a table while it grows from nothing; a table that has stopped
// doubling is left to autovacuum. Every process runs a keeper; it skips a
// table another ANALYZE is busy with instead of waiting for it.

// analyzeMinRows is the least number of rows that makes a table worth analysing.
const analyzeMinRows = 1000

// defaultAnalyzeEvery is how often the keeper looks (Config.AnalyzeEvery).
const defaultAnalyzeEvery = 2 * time.Second

// grownTablesSQL lists the tables of the current schema (all, or the one named $2) that hold more than twice
// the rows they held when last analysed (reltuples is -1 before the first ANALYZE) and at least $1. Live rows,
// not changes: a small table updated all the time (resources) keeps its size, and its plans with it.
const grownTablesSQL = `SELECT t.relname FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
	WHERE t.schemaname = current_schema() AND ($2 = '' OR t.relname = $2) AND t.n_live_tup >= $1
	AND t.n_live_tup > 2 * GREATEST(c.reltuples, 0) ORDER BY t.relname`

func (s *Store) startStatsKeeper(every time.Duration) {
	s.statsStop = make(chan struct{})
	s.statsDone = make(chan struct{})
	go s.statsLoop(every)
}

// stopStatsKeeper stops the keeper and waits for it (also when Close is called again).
func (s *Store) stopStatsKeeper() {
	if s.statsStop == nil {
		return
	}
	s.statsOnce.Do(func() { close(s.statsStop) })
	<-s.statsDone
}

func (s *Store) statsLoop(every time.Duration) {
	defer close(s.statsDone)
	t := time.NewTicker(every)
	defer t.Stop()
	failing := false
	for {
		select {
		case <-s.statsStop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		_, err := s.AnalyzeGrownTables(ctx)
		cancel()
		// Once a failure, not every two seconds: an unreachable database is reported by Ready and the requests.
		if err != nil && !failing {
			s.logger().Warn("store: could not analyse grown tables (retried)", "err", err)
		}
		failing = err != nil
	}
}

// AnalyzeGrownTables runs ANALYZE on every table of the schema that has more
// than doubled since its last analysis, and returns the names of those it analysed (PostgreSQL;
// nil on SQLite, whose planner needs no statistics to pick our indexes).
func (s *Store) AnalyzeGrownTables(ctx context.Context) ([]string, error) {
	if s.dialect != Postgres {
		return nil, nil
	}
	var tables []string
	if err := s.w.SelectContext(ctx, &tables, grownTablesSQL, analyzeMinRows, ""); err != nil {
		return nil, fmt.Errorf("list grown tables: %w", err)
	}
	var analysed []string
	for _, t := range tables {
		done, err := s.analyzeSampled(ctx, t)
		if err != nil {
			return analysed, err
		}
		if done {
			analysed = append(analysed, t)
		}
	}
	return analysed, nil
}

// keeperStatisticsTarget is the statistics target of the keeper's ANALYZE: a sample of 3,000 rows instead of
// 30,000 at the default of 100. The plans need the table's size and rough distributions, which a tenth of the
// sample gives; autovacuum's own ANALYZE, once the table has stopped doubling, writes the full statistics.
// At the default target the keeper's analyses took ~10 % of the database's CPU in a load run's first 30 s
// (six of the queue's, 232 ms each).
const keeperStatisticsTarget = 10

// analyzeSampled analyses one table with keeperStatisticsTarget (SET LOCAL: only this transaction), unless
// another ANALYZE is running on it or has brought its statistics up to date since the keeper listed it: the
// keeper's sampled statistics must never replace fuller ones (autovacuum's, an operator's). It holds the lock
// ANALYZE takes (NOWAIT: a table being analysed is skipped) and looks again under it.
func (s *Store) analyzeSampled(ctx context.Context, table string) (analysed bool, err error) {
	name := pgx.Identifier{table}.Sanitize()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("analyze %s: %w", table, err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, "LOCK TABLE "+name+" IN SHARE UPDATE EXCLUSIVE MODE NOWAIT"); err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "55P03" { // lock_not_available: being analysed or vacuumed
			return false, nil
		}
		return false, fmt.Errorf("analyze %s: %w", table, err)
	}
	var grown bool
	if err := tx.QueryRowContext(ctx, "SELECT EXISTS ("+grownTablesSQL+")", analyzeMinRows, table).Scan(&grown); err != nil {
		return false, fmt.Errorf("analyze %s: %w", table, err)
	}
	if !grown {
		return false, nil
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SET LOCAL default_statistics_target = %d", keeperStatisticsTarget)); err != nil {
		return false, fmt.Errorf("analyze %s: %w", table, err)
	}
	if _, err := tx.ExecContext(ctx, "ANALYZE "+name); err != nil {
		return false, fmt.Errorf("analyze %s: %w", table, err)
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("analyze %s: %w", table, err)
	}
	return true, nil
}

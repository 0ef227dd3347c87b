package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
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
// was last analysed (and changed by at least analyzeMinChanges rows), so the
// plans follow a table while it grows from nothing; a grown table changes by
// less than that between two of autovacuum's visits and is left to it. Every
// process runs a keeper; ANALYZE (SKIP_LOCKED) never waits for another one.

// analyzeMinChanges is the least number of changed rows that makes a table worth analysing.
const analyzeMinChanges = 1000

// defaultAnalyzeEvery is how often the keeper looks (Config.AnalyzeEvery).
const defaultAnalyzeEvery = 2 * time.Second

// grownTablesSQL lists the tables of the current schema changed by more rows
// than they had when last analysed (reltuples is -1 before the first ANALYZE).
const grownTablesSQL = `SELECT t.relname FROM pg_stat_user_tables t JOIN pg_class c ON c.oid = t.relid
	WHERE t.schemaname = current_schema() AND t.n_mod_since_analyze >= $1
	AND t.n_mod_since_analyze > GREATEST(c.reltuples, 0) ORDER BY t.relname`

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
// than doubled since its last analysis, and returns their names (PostgreSQL;
// nil on SQLite, whose planner needs no statistics to pick our indexes).
func (s *Store) AnalyzeGrownTables(ctx context.Context) ([]string, error) {
	if s.dialect != Postgres {
		return nil, nil
	}
	var tables []string
	if err := s.w.SelectContext(ctx, &tables, grownTablesSQL, analyzeMinChanges); err != nil {
		return nil, fmt.Errorf("list grown tables: %w", err)
	}
	for _, t := range tables {
		if _, err := s.w.ExecContext(ctx, "ANALYZE (SKIP_LOCKED) "+pgx.Identifier{t}.Sanitize()); err != nil {
			return nil, fmt.Errorf("analyze %s: %w", t, err)
		}
	}
	return tables, nil
}

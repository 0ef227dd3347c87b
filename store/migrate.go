package store

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Migrations live in migrations/<dialect>/NNNN_name.sql, one file per version per dialect.
//
//go:embed migrations
var migrationFS embed.FS

type migration struct {
	version int
	name    string
	sql     string
}

// pgMigrationLock is the advisory-lock key that serialises concurrent migrators on PostgreSQL.
const pgMigrationLock = 0x6b70_6d69_6772 // "kpmigr"

func loadMigrations(d Dialect) ([]migration, error) {
	dir := path.Join("migrations", string(d))
	entries, err := fs.ReadDir(migrationFS, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded migrations %s: %w", dir, err)
	}
	var ms []migration
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".sql") {
			continue
		}
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil {
			return nil, fmt.Errorf("migration file %s/%s: name must start with a number and '_'", dir, e.Name())
		}
		b, err := migrationFS.ReadFile(path.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].version < ms[j].version })
	for i := range ms {
		if ms[i].version != i+1 {
			return nil, fmt.Errorf("migrations %s: version %d missing (found %s)", dir, i+1, ms[i].name)
		}
	}
	return ms, nil
}

func latestMigration(d Dialect) int {
	ms, err := loadMigrations(d)
	if err != nil || len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].version
}

// migrate applies the missing migrations in one transaction. Concurrent
// openers are serialised by an advisory lock (PostgreSQL) or the write lock
// taken at BEGIN IMMEDIATE (SQLite), so each migration runs exactly once.
func (s *Store) migrate(ctx context.Context) error { return s.migrateTo(ctx, 0) }

// migrateTo is migrate up to version upTo (0: all); upgrade tests build an
// old schema with it.
func (s *Store) migrateTo(ctx context.Context, upTo int) error {
	ms, err := loadMigrations(s.dialect)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if upTo > 0 && upTo < len(ms) {
		ms = ms[:upTo]
	}
	// Up to date (the common case at every start): no write transaction, so a
	// store that is read-only now still opens — and says so on /readyz — instead
	// of failing to start.
	var have int
	if err := s.r.GetContext(ctx, &have, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"); err == nil && have == len(ms) {
		return nil
	}
	applied := 0
	err = s.Update(ctx, func(tx *Tx) error {
		if s.dialect == Postgres {
			if _, err := tx.exec(ctx, "SELECT pg_advisory_xact_lock(?)", int64(pgMigrationLock)); err != nil {
				return fmt.Errorf("take migration lock: %w", err)
			}
		}
		if _, err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT    NOT NULL,
			applied_at BIGINT  NOT NULL)`); err != nil {
			return fmt.Errorf("create schema_migrations: %w", err)
		}
		if err := tx.get(ctx, &have, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		if have > len(ms) {
			return fmt.Errorf("database schema version %d is newer than this binary knows (%d): upgrade koppelpoort", have, len(ms))
		}
		for _, m := range ms[have:] {
			if err := tx.execScript(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
				m.version, m.name, micros(time.Now())); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
			applied++
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: migrate %s: %w", s.where, err)
	}
	if applied > 0 {
		s.log.Info("store migrations applied", "count", applied, "version", len(ms))
	}
	return nil
}

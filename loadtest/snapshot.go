package loadtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// A prefill snapshot (SelfOptions.PrefillSnapshot, --prefill-snapshot) lets
// runs that are compared start from the same prefilled database without
// writing it again: a million messages take about ten minutes to write on a
// busy machine and seconds to a minute to copy. The first run with a snapshot
// path prefills as usual and copies the closed database: on SQLite the file
// to that path, on PostgreSQL into a database of its own on the same server
// (CREATE DATABASE … TEMPLATE); <path>.json describes it (snapshotMeta).
// Every later run copies it into its fresh database instead of prefilling.
// Each run gets its own copy, so a removal in one leaves the snapshot as it
// was. A PostgreSQL snapshot database stays until dropped by hand.

// snapshotMeta is <path>.json: what was prefilled and for which scenario.
type snapshotMeta struct {
	Scenario snapshotScenario `json:"scenario"`
	Prefill  *Prefill         `json:"prefill"`
	Written  time.Time        `json:"written"`
	// PostgresDatabase is the snapshot's database on the PostgreSQL server
	// (--dsn); "" for a SQLite snapshot, which is the file at the path.
	PostgresDatabase string `json:"postgres_database,omitempty"`
}

// snapshotScenario is the part of a scenario that decides what a prefill
// writes: a run may reuse a snapshot only when its own is the same.
type snapshotScenario struct {
	Prefill             int     `json:"prefill"`
	PrefillDue          float64 `json:"prefill_due"`
	Domains             int     `json:"domains"`
	SubscribersPerEvent int     `json:"subscribers_per_event"`
	Format              string  `json:"format"`
}

func snapshotScenarioOf(sc *Scenario) snapshotScenario {
	return snapshotScenario{Prefill: sc.Prefill, PrefillDue: sc.PrefillDue, Domains: sc.Domains,
		SubscribersPerEvent: sc.SubscribersPerEvent, Format: sc.Format}
}

// prefillOrRestore fills the fresh SQLite database at dsn for sc: from the
// snapshot when there is one, else by WritePrefill (saving the snapshot
// after it when the options name one).
func (s *SelfServer) prefillOrRestore(ctx context.Context, dsn string, kt koppeltaal.Config, specs []InstanceSpec, sc *Scenario) (*Prefill, error) {
	path := s.opts.PrefillSnapshot
	if path == "" {
		return WritePrefill(ctx, dsn, s.opts.SQLiteSynchronous, kt, specs, sc, sc.Prefill, s.opts.Progress)
	}
	raw, err := os.ReadFile(path + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		p, err := WritePrefill(ctx, dsn, s.opts.SQLiteSynchronous, kt, specs, sc, sc.Prefill, s.opts.Progress)
		if err != nil {
			return nil, err
		}
		return p, s.saveSnapshot(ctx, dsn, path, snapshotMeta{Scenario: snapshotScenarioOf(sc), Prefill: p, Written: time.Now().UTC()})
	}
	if err != nil {
		return nil, fmt.Errorf("prefill snapshot: %w", err)
	}
	var meta snapshotMeta
	if err := json.Unmarshal(raw, &meta); err != nil || meta.Prefill == nil {
		return nil, fmt.Errorf("prefill snapshot %s.json: not a snapshot description (%v)", path, err)
	}
	if want := snapshotScenarioOf(sc); meta.Scenario != want {
		return nil, fmt.Errorf("prefill snapshot %s was written for %+v, this run wants %+v: remove %[1]s and %[1]s.json or name another path",
			path, meta.Scenario, want)
	}
	if (meta.PostgresDatabase != "") != (s.pgDB != "") {
		return nil, fmt.Errorf("prefill snapshot %s is of another store (PostgreSQL database %q; this run's: %q)", path, meta.PostgresDatabase, s.pgDB)
	}
	start := time.Now()
	if s.pgDB != "" {
		// The fresh database is empty yet: made again as a copy of the snapshot.
		err = s.pgExec(ctx, "DROP DATABASE "+pgx.Identifier{s.pgDB}.Sanitize(),
			"CREATE DATABASE "+pgx.Identifier{s.pgDB}.Sanitize()+" TEMPLATE "+pgx.Identifier{meta.PostgresDatabase}.Sanitize()+" STRATEGY FILE_COPY")
	} else {
		err = copySQLite(path, dsn)
	}
	if err != nil {
		return nil, fmt.Errorf("prefill snapshot: restore: %w", err)
	}
	p := *meta.Prefill
	p.Seconds, p.Snapshot = time.Since(start).Seconds(), path
	return &p, nil
}

// saveSnapshot copies the closed database at dsn to path (SQLite) or to a
// new database (PostgreSQL) and then writes the description (last: a
// snapshot without one is written again next time).
func (s *SelfServer) saveSnapshot(ctx context.Context, dsn, path string, meta snapshotMeta) error {
	var err error
	if s.pgDB != "" {
		meta.PostgresDatabase = "kp_snapshot_" + randomHex(6)
		err = s.pgExec(ctx, "CREATE DATABASE "+pgx.Identifier{meta.PostgresDatabase}.Sanitize()+" TEMPLATE "+pgx.Identifier{s.pgDB}.Sanitize()+" STRATEGY FILE_COPY")
	} else {
		err = copySQLite(dsn, path)
	}
	if err != nil {
		return fmt.Errorf("prefill snapshot: save: %w", err)
	}
	raw, err := json.MarshalIndent(meta, "", "  ")
	if err != nil {
		return fmt.Errorf("prefill snapshot: %w", err)
	}
	if err := os.WriteFile(path+".json", raw, 0o600); err != nil {
		return fmt.Errorf("prefill snapshot: %w", err)
	}
	return nil
}

// pgExec runs statements one by one on the PostgreSQL server the run's
// database is on (as its administrator, connected to another database: a
// template must have no sessions).
func (s *SelfServer) pgExec(ctx context.Context, stmts ...string) error {
	conn, err := pgx.Connect(ctx, s.pgAdmin)
	if err != nil {
		return fmt.Errorf("connect to postgres: %s", store.Redact(err.Error(), s.pgAdmin))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, q := range stmts {
		if _, err := conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("%s: %w", q, err)
		}
	}
	return nil
}

// copySQLite copies a closed SQLite database with its write-ahead log, if it
// left one (closing the last connection normally checkpoints and removes it).
func copySQLite(from, to string) error {
	if err := copyFile(from, to); err != nil {
		return err
	}
	_ = os.Remove(to + "-shm")
	if err := copyFile(from+"-wal", to+"-wal"); err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		if err := os.Remove(to + "-wal"); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// copyFile copies from to to (the kernel copies: os.File.ReadFrom uses copy_file_range).
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	if err := out.Sync(); err != nil {
		out.Close()
		return fmt.Errorf("copy %s to %s: %w", from, to, err)
	}
	return out.Close()
}

// holdRemovalJob takes the removal job's lease in the database at dsn for d
// (store.TakeLease) and closes it again: the server's removal job polls for
// the lease and runs as soon as it is free, d from now, instead of at start.
func holdRemovalJob(ctx context.Context, dsn, synchronous string, d time.Duration) error {
	st, err := store.Open(ctx, store.Config{DSN: dsn, SQLiteSynchronous: synchronous}, nil)
	if err != nil {
		return fmt.Errorf("hold the removal job: open the store: %w", err)
	}
	ok, err := st.TakeLease(ctx, koppeltaal.RetentionJob, d)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("hold the removal job's lease: %w", err)
	}
	if !ok {
		return errors.New("hold the removal job's lease: another holder has it")
	}
	return nil
}

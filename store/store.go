// Package store persists Koppelpoort's state in SQLite (embedded default) or
// PostgreSQL (production, several processes) through one repository API.
//
// Writes go through Update, a function-shaped transaction, so that group commit
// can be slotted in without changing callers. Reads go through View.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/jmoiron/sqlx"
	"modernc.org/sqlite" // also registers driver "sqlite"
)

// Dialect names the SQL backend of a Store.
type Dialect string

// The supported dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// Config configures Open. The zero value of every field except DSN has a documented default.
type Config struct {
	// DSN is a SQLite file path (or a "sqlite:"/"file:" URL) or a "postgres://"/"postgresql://" URL.
	DSN string
	// SQLiteSynchronous is FULL (default: every commit is fsynced) or NORMAL.
	SQLiteSynchronous string
	// BusyTimeout is how long SQLite waits for a lock held by another process. Default 10s.
	BusyTimeout time.Duration
	// MaxOpenConns bounds the read pool (SQLite) or the whole pool (PostgreSQL). Default 10.
	MaxOpenConns int
	// ConnectTimeout bounds the first connection to PostgreSQL. Default 5s.
	ConnectTimeout time.Duration
	// NoGroupCommit turns off group commit on SQLite (see Update). Default: group commit on.
	NoGroupCommit bool
	// CacheTTL bounds how long rows cached from the database (application
	// instances, subscriptions, OAuth clients) are used before being read again.
	// This process's own changes drop them at once (InstancesGeneration); the
	// TTL bounds how long another process's change on a shared PostgreSQL goes
	// unseen. Default 1s.
	CacheTTL time.Duration
	// AnalyzeEvery is how often PostgreSQL tables that have more than doubled since their last
	// statistics are analysed (pgstats.go). Default 2s; negative turns it off.
	AnalyzeEvery time.Duration
	// Existing opens only a store that is there: a SQLite file that does not exist is ErrNoStore instead of
	// a new, empty database (for commands that read or repair what serve left, such as replay).
	Existing bool
}

// ErrNoStore is Open's error for Config.Existing when the SQLite file does not exist.
var ErrNoStore = errors.New("no store there")

func (c *Config) setDefaults() {
	if c.SQLiteSynchronous == "" {
		c.SQLiteSynchronous = "FULL"
	}
	c.SQLiteSynchronous = strings.ToUpper(c.SQLiteSynchronous)
	if c.BusyTimeout <= 0 {
		c.BusyTimeout = 10 * time.Second
	}
	if c.MaxOpenConns <= 0 {
		c.MaxOpenConns = 10
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 5 * time.Second
	}
	if c.CacheTTL <= 0 {
		c.CacheTTL = time.Second
	}
	if c.AnalyzeEvery == 0 {
		c.AnalyzeEvery = defaultAnalyzeEvery
	}
}

// Validate reports a configuration error, naming the offending field.
func (c Config) Validate() error {
	if strings.TrimSpace(c.DSN) == "" {
		return errors.New("store: dsn is empty (want a SQLite file path or a postgres:// URL)")
	}
	switch strings.ToUpper(c.SQLiteSynchronous) {
	case "", "FULL", "NORMAL":
	default:
		return fmt.Errorf("store: sqlite_synchronous %q is not FULL or NORMAL", c.SQLiteSynchronous)
	}
	return nil
}

// Store is an open database with migrations applied.
type Store struct {
	dialect Dialect
	w       *sqlx.DB // the single writer connection (SQLite) or the pool (PostgreSQL)
	r       *sqlx.DB // the read pool; same as w on PostgreSQL
	log     *slog.Logger
	where   string // DSN without secrets, for error messages
	holder  string // this Store's name in runner_leases (see RunExclusive)
	// roundTrips counts round trips to PostgreSQL (roundtrips.go).
	roundTrips atomic.Uint64
	// health is the outcome of the last commits, for Ready (health.go).
	health health
	disk   diskState // SQLite: a nearly full file system refuses writes (health.go)

	// group commit (SQLite): requests, shutdown signal, committer finished
	reqs      chan *writeReq
	ckptKick  chan struct{} // background WAL checkpoints (see checkpoint.go)
	ckptDone  chan struct{}
	wstats    writerCounters
	stmts     *stmtCache
	closing   chan struct{}
	stopped   chan struct{}
	closeOnce sync.Once
	// the statistics keeper (PostgreSQL, pgstats.go)
	statsStop, statsDone chan struct{}
	statsOnce            sync.Once

	// instGen counts committed changes to application instances (see InstancesGeneration).
	instGen  atomic.Uint64
	cacheTTL time.Duration // Config.CacheTTL
	subs     *subsCache
	reads    readStmts // prepared single-statement reads on r (see reads.go)
	// id is the identity of the database (see identity.go and Epoch).
	id identity
}

// InstancesGeneration changes after every committed transaction of this Store
// that created or changed an application instance or its subscriptions
// (PutApplication, PutInstance, DisableInstance, SetSubscriptions), and when the Epoch
// moves. Caches of instance rows compare it to drop what they read before such
// a change. Changes made by another process on a shared PostgreSQL database are
// not seen.
func (s *Store) InstancesGeneration() uint64 {
	s.Epoch() // looks at the SQLite file now and then
	return s.instGen.Load()
}

// CacheTTL is how long a cache of database rows may use an entry of the same
// InstancesGeneration before reading it again (Config.CacheTTL).
func (s *Store) CacheTTL() time.Duration { return s.cacheTTL }

// Open opens (creating when needed) the database named by cfg.DSN and applies
// the embedded migrations. An unreachable PostgreSQL gives one clear error after
// at most cfg.ConnectTimeout.
func Open(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s, err := openUnmigrated(ctx, cfg, logger)
	if err != nil {
		return nil, err
	}
	if s.dialect == SQLite {
		if err := s.prepareSQLiteFile(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, err
	}
	if s.dialect == SQLite && !cfg.NoGroupCommit {
		s.startGroupCommit()
		s.startCheckpointer()
	}
	if s.dialect == Postgres && cfg.AnalyzeEvery > 0 {
		s.startStatsKeeper(cfg.AnalyzeEvery)
	}
	s.log.Info("store opened", "dialect", string(s.dialect), "where", s.where)
	return s, nil
}

// openUnmigrated connects to cfg.DSN (defaults applied) without touching the schema.
func openUnmigrated(ctx context.Context, cfg Config, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var s *Store
	var err error
	if isPostgresDSN(cfg.DSN) {
		s, err = openPostgres(ctx, cfg)
	} else {
		s, err = openSQLite(ctx, cfg)
	}
	if err != nil {
		return nil, err
	}
	s.log = logger
	s.holder = newHolder()
	s.cacheTTL = cfg.CacheTTL
	s.subs = &subsCache{gen: &s.instGen, ttl: cfg.CacheTTL, m: map[subsKey]subsEntry{}}
	s.id.onChange = func() { s.instGen.Add(1) } // instance and subscriber caches start over
	return s, nil
}

// logger is s.log, or a discarding logger while Open has not set it yet.
func (s *Store) logger() *slog.Logger {
	if s.log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.log
}

func isPostgresDSN(dsn string) bool {
	return strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://")
}

// sqlitePath turns a path, "sqlite:<path>" or "file:<path>" into a file path.
func sqlitePath(dsn string) string {
	for _, p := range []string{"sqlite://", "sqlite:", "file://", "file:"} {
		if strings.HasPrefix(dsn, p) {
			dsn = strings.TrimPrefix(dsn, p)
			break
		}
	}
	if i := strings.IndexByte(dsn, '?'); i >= 0 {
		dsn = dsn[:i]
	}
	return dsn
}

func openSQLite(ctx context.Context, cfg Config) (*Store, error) {
	path := sqlitePath(cfg.DSN)
	if path == "" || path == ":memory:" {
		return nil, fmt.Errorf("store: sqlite dsn %q: a file path is required (in-memory databases lose writes)", cfg.DSN)
	}
	if _, err := os.Stat(path); cfg.Existing && errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("store: SQLite %s: %w (nothing has run on it)", path, ErrNoStore)
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: create directory for %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous("+cfg.SQLiteSynchronous+")")
	q.Add("_pragma", "foreign_keys(1)")
	base := "file:" + path + "?"
	// The writer takes the write lock at BEGIN, so a transaction never has to
	// upgrade its lock (which could fail with SQLITE_BUSY across processes).
	// The writer gets a larger page cache than SQLite's 2 MiB default: a
	// group-commit batch touches many index pages, and a spilled or re-read
	// page costs a system call in the one goroutine every write waits for.
	// Each group-commit request runs in a savepoint; temp_store(MEMORY) keeps
	// the savepoint journal (original copies of the pages a request changes)
	// in memory instead of writing it to a temporary file with a system call
	// per page. It never needs to survive a crash: the WAL does.
	wq := url.Values{}
	if fi, err := os.Stat(path); err != nil || fi.Size() == 0 {
		// A new file: the driver runs auto_vacuum before the _pragma list, so
		// the first page, written by journal_mode(WAL), has incremental
		// auto-vacuum (space.go). Only then: on a file with tables the pragma
		// rewrites a header field, and an up-to-date store opens without a write.
		wq.Add("_auto_vacuum", "INCREMENTAL")
	}
	wq.Add("_pragma", "cache_size(-16384)") // KiB
	wq.Add("_pragma", "temp_store(MEMORY)")
	if !cfg.NoGroupCommit {
		// Checkpoints run mostly in the background instead of inside the writer's commits
		// (see checkpoint.go); the writer's own, rarer ones keep the WAL from growing.
		wq.Add("_pragma", fmt.Sprintf("wal_autocheckpoint(%d)", writerCheckpointPages))
	}
	w, err := sqlx.Open("sqlite", base+q.Encode()+"&"+wq.Encode()+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := pingSQLite(ctx, w, cfg.BusyTimeout); err != nil {
		w.Close()
		if werr := dirWritable(filepath.Dir(path)); werr != nil {
			// SQLite says only "unable to open database file".
			return nil, fmt.Errorf("store: open sqlite %s: %w: SQLite needs to write its -wal and -shm files next to the database: %v", path, err, werr)
		}
		return nil, fmt.Errorf("store: open sqlite %s: %w", path, err)
	}
	r, err := sqlx.Open("sqlite", base+q.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("store: open sqlite read pool %s: %w", path, err)
	}
	r.SetMaxOpenConns(cfg.MaxOpenConns)
	r.SetMaxIdleConns(cfg.MaxOpenConns)
	s := &Store{dialect: SQLite, w: w, r: r, where: path}
	if err := s.id.watchFile(path); err != nil {
		w.Close()
		r.Close()
		return nil, err
	}
	return s, nil
}

// pingSQLite opens db's first connection. Its journal_mode(WAL) pragma on a new
// file reads the header and then upgrades to a write lock, and SQLite fails an
// upgrade that waits for another connection with SQLITE_BUSY at once, without
// the busy timeout: two processes creating the file together get it. The
// pragma is idempotent, so it is retried until the busy timeout.
func pingSQLite(ctx context.Context, db *sqlx.DB, busyTimeout time.Duration) error {
	deadline := time.Now().Add(busyTimeout)
	for {
		err := db.PingContext(ctx)
		var se *sqlite.Error
		if err == nil || !errors.As(err, &se) || se.Code()&0xff != 5 || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// dirWritable reports why files cannot be created in dir (a read-only file
// system, permissions), or nil.
func dirWritable(dir string) error {
	f, err := os.CreateTemp(dir, ".koppelpoort-writable-*")
	if err != nil {
		return fmt.Errorf("the directory is not writable (%w)", err)
	}
	f.Close()
	return os.Remove(f.Name())
}

func openPostgres(ctx context.Context, cfg Config) (*Store, error) {
	pc, err := pgx.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("store: postgres dsn: %s", redactErr(err, cfg.DSN))
	}
	pc.ConnectTimeout = cfg.ConnectTimeout
	where := fmt.Sprintf("postgres %s:%d/%s", pc.Host, pc.Port, pc.Database)
	s := &Store{dialect: Postgres, where: where}
	pc.DialFunc = countingDial(pc.DialFunc, &s.roundTrips) // also dials the other hosts of a multi-host DSN
	db := sqlx.NewDb(stdlib.OpenDB(*pc, stdlib.OptionAfterConnect(s.pgAfterConnect)), "pgx")
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxOpenConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	pctx, cancel := context.WithTimeout(ctx, cfg.ConnectTimeout+time.Second)
	defer cancel()
	if err := db.PingContext(pctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: cannot reach %s: %s", where, oneLine(redactErr(err, cfg.DSN)))
	}
	s.w, s.r = db, db
	return s, nil
}

// redactErr renders err without the password that may be part of dsn.
func redactErr(err error, dsn string) string { return Redact(err.Error(), dsn) }

// Redact removes the password of a postgres:// dsn from s (an error message, a log line, the dsn itself),
// so whatever quotes the DSN can be shown on a console or written to a log.
func Redact(s, dsn string) string {
	if u, perr := url.Parse(dsn); perr == nil && u.User != nil {
		if pw, ok := u.User.Password(); ok && pw != "" {
			s = strings.ReplaceAll(s, pw, "xxxxx")
		}
	}
	return s
}

// Where describes the database without secrets: "SQLite <path>" or "PostgreSQL <host>:<port>/<db>".
func (s *Store) Where() string {
	if s.dialect == Postgres {
		return "PostgreSQL " + strings.TrimPrefix(s.where, "postgres ")
	}
	return "SQLite " + s.where
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// IsFile reports whether path is this store's SQLite file (false on PostgreSQL): a second connection that
// writes to it would be a second writer beside the store's one (decision 2).
func (s *Store) IsFile(path string) bool {
	if s.dialect != SQLite {
		return false
	}
	mine, err1 := os.Stat(s.where)
	other, err2 := os.Stat(path)
	return err1 == nil && err2 == nil && os.SameFile(mine, other)
}

// Dialect reports which backend this store runs on.
func (s *Store) Dialect() Dialect { return s.dialect }

// Close closes all connections. It is safe to call on a half-opened store.
func (s *Store) Close() error {
	s.stopStatsKeeper()
	s.stopGroupCommit()
	s.finalCheckpoint()
	s.closeReadStmts()
	var errs []error
	if s.r != nil && s.r != s.w {
		errs = append(errs, s.r.Close())
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	return errors.Join(errs...)
}

// Ready reports whether the database is reachable, all migrations are
// applied and it can commit: when the last commit failed with ErrUnavailable,
// or the store made none for a few seconds and a probe write fails (read-only
// file system, full disk, a PostgreSQL standby, primary gone), it is not
// ready, although reads may still work.
func (s *Store) Ready(ctx context.Context) error {
	if err := s.fileReplaced(); err != nil {
		return err
	}
	var v int
	if err := s.r.GetContext(ctx, &v, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"); err != nil {
		return fmt.Errorf("store not ready (%s): %w", s.where, unavailable(err))
	}
	if want := latestMigration(s.dialect); v < want {
		return fmt.Errorf("store not ready (%s): schema version %d, want %d", s.where, v, want)
	}
	if err := s.canCommit(ctx); err != nil {
		return fmt.Errorf("store not ready (%s): cannot commit: %w", s.where, err)
	}
	return nil
}

// Tx is one database transaction; the repository methods hang off it.
type Tx struct {
	tx      *sqlx.Tx // SQLite
	pg      *pgTx    // PostgreSQL (see pgtx.go)
	dialect Dialect
	// noCancel: statements ignore the caller's cancellation (group commit: an
	// interrupted SQLite statement could roll back other requests' writes).
	noCancel bool
	// stmts: prepared statements of the SQLite writer (group commit), or nil.
	stmts *stmtCache
	// instChanged: an application instance or subscription was written; see InstancesGeneration.
	instChanged bool
	// subs: the Store's subscriber cache (nil: no caching).
	subs *subsCache
}

// stmt returns the cached prepared statement for q bound to this transaction, or nil.
func (t *Tx) stmt(ctx context.Context, q string) *sqlx.Stmt {
	if t.stmts == nil {
		return nil
	}
	if st := t.stmts.lookup(q); st != nil {
		return t.tx.StmtxContext(ctx, st)
	}
	return nil
}

func (t *Tx) c(ctx context.Context) context.Context {
	if t.noCancel {
		return context.WithoutCancel(ctx)
	}
	return ctx
}

// Dialect reports the backend of this transaction.
func (t *Tx) Dialect() Dialect { return t.dialect }

func (t *Tx) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	if t.pg != nil {
		tag, err := t.pg.exec(ctx, sqlx.Rebind(sqlx.DOLLAR, q), args)
		return pgResult{tag}, err
	}
	q = t.tx.Rebind(q)
	if st := t.stmt(ctx, q); st != nil {
		return st.ExecContext(t.c(ctx), args...)
	}
	return t.tx.ExecContext(t.c(ctx), q, args...)
}

// queue runs a statement whose result is not needed: on PostgreSQL it is sent
// with the transaction's next statement or its COMMIT (no round trip of its
// own), and an error it causes is returned from there; elsewhere it runs now.
func (t *Tx) queue(ctx context.Context, q string, args ...any) error {
	if t.pg != nil {
		t.pg.queue(sqlx.Rebind(sqlx.DOLLAR, q), args)
		return nil
	}
	_, err := t.exec(ctx, q, args...)
	return err
}

func (t *Tx) get(ctx context.Context, dest any, q string, args ...any) error {
	if t.pg != nil {
		return t.pg.query(ctx, sqlx.Rebind(sqlx.DOLLAR, q), args, func(rows pgx.Rows) error { return scanOne(rows, dest) })
	}
	q = t.tx.Rebind(q)
	if st := t.stmt(ctx, q); st != nil {
		return st.GetContext(t.c(ctx), dest, args...)
	}
	return t.tx.GetContext(t.c(ctx), dest, q, args...)
}

func (t *Tx) sel(ctx context.Context, dest any, q string, args ...any) error {
	if t.pg != nil {
		return t.pg.query(ctx, sqlx.Rebind(sqlx.DOLLAR, q), args, func(rows pgx.Rows) error { return scanAll(rows, dest) })
	}
	q = t.tx.Rebind(q)
	if st := t.stmt(ctx, q); st != nil {
		return st.SelectContext(t.c(ctx), dest, args...)
	}
	return t.tx.SelectContext(t.c(ctx), dest, q, args...)
}

// insertID runs an INSERT and returns the new row's id (RETURNING works on both dialects).
func (t *Tx) insertID(ctx context.Context, q string, args ...any) (int64, error) {
	var id int64
	if t.pg != nil {
		err := t.get(ctx, &id, q+" RETURNING id", args...)
		return id, err
	}
	q = t.tx.Rebind(q + " RETURNING id")
	if st := t.stmt(ctx, q); st != nil {
		err := st.QueryRowxContext(t.c(ctx), args...).Scan(&id)
		return id, err
	}
	err := t.tx.QueryRowxContext(t.c(ctx), q, args...).Scan(&id)
	return id, err
}

// execScript runs SQL that may hold several statements (a migration file).
func (t *Tx) execScript(ctx context.Context, script string) error {
	if t.pg != nil {
		if err := t.pg.flush(ctx); err != nil { // BEGIN and anything queued
			return err
		}
		_, err := t.pg.pc.Exec(ctx, script) // no arguments: simple protocol, several statements allowed
		return err
	}
	_, err := t.tx.ExecContext(ctx, script)
	return err
}

// Update runs fn in a write transaction and commits it; any error from fn (or
// a panic, re-raised in the caller) rolls back everything fn wrote. When Update
// returns nil the writes are durable (fsynced on SQLite with synchronous=FULL).
//
// On SQLite, concurrent Updates are group-committed: several callers' functions
// run one after another in one transaction, each in its own savepoint, and all
// are answered after one COMMIT. fn must therefore only touch the database
// through tx, must not call Update or View itself, and must not rely on
// running in a transaction of its own (it sees earlier callers' writes of the
// same batch, which is what a serial order would show too).
//
// An error of a database that cannot commit now (unreachable, read-only, disk
// full) matches ErrUnavailable.
func (s *Store) Update(ctx context.Context, fn func(tx *Tx) error) error {
	// A nearly full disk refuses every write, not only those whose pages no
	// longer fit in the WAL: /readyz and the answers agree.
	err := s.diskFullNow()
	switch {
	case err != nil:
	case s.reqs != nil:
		err = s.updateGrouped(ctx, fn)
	default:
		err = s.run(ctx, s.w, false, fn)
	}
	err = unavailable(err)
	s.health.note(err)
	return err
}

// View runs fn in a read-only transaction on the read pool. An error of a
// database that cannot be read now matches ErrUnavailable.
func (s *Store) View(ctx context.Context, fn func(tx *Tx) error) error {
	return unavailable(s.run(ctx, s.r, true, fn))
}

func (s *Store) run(ctx context.Context, db *sqlx.DB, readOnly bool, fn func(tx *Tx) error) (err error) {
	if s.dialect == Postgres {
		return s.runPG(ctx, db, readOnly, fn)
	}
	sqltx, err := db.BeginTxx(ctx, &sql.TxOptions{})
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = sqltx.Rollback()
			panic(p)
		}
	}()
	tx := &Tx{tx: sqltx, dialect: s.dialect, subs: s.subs}
	if err := fn(tx); err != nil {
		if rerr := sqltx.Rollback(); rerr != nil && !errors.Is(rerr, sql.ErrTxDone) {
			s.log.Warn("store: rollback failed", "err", rerr)
		}
		return err
	}
	if err := sqltx.Commit(); err != nil {
		return fmt.Errorf("store: commit: %w", err)
	}
	if tx.instChanged {
		s.instGen.Add(1)
	}
	return nil
}

// runPG is run on PostgreSQL: a pipelined transaction (pgtx.go).
func (s *Store) runPG(ctx context.Context, db *sqlx.DB, readOnly bool, fn func(tx *Tx) error) error {
	p, err := beginPG(ctx, db, readOnly)
	if err != nil {
		return fmt.Errorf("store: begin: %w", err)
	}
	defer p.end()
	defer func() {
		if r := recover(); r != nil {
			_ = p.rollback()
			panic(r)
		}
	}()
	tx := &Tx{pg: p, dialect: s.dialect, subs: s.subs}
	if err := fn(tx); err != nil {
		if rerr := p.rollback(); rerr != nil {
			s.log.Warn("store: rollback failed", "err", rerr)
		}
		return err
	}
	if err := p.commit(ctx); err != nil {
		_ = p.rollback()
		return fmt.Errorf("store: commit: %w", err)
	}
	if tx.instChanged {
		s.instGen.Add(1)
	}
	return nil
}

// now is the store's clock in Unix microseconds.
func micros(t time.Time) int64 { return t.UTC().UnixMicro() }

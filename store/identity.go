package store

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
)

// The identity of the database a Store is connected to, so that caches of
// database state (message bodies by id, instance rows, subscriber lists) are
// dropped when the database underneath is no longer the one they were filled
// from: after a PostgreSQL failover to a standby that had not received the
// last transactions, ids are handed out again for other rows (issue 15: a
// cached message of one patient was returned for another patient's queue
// entry). Caches validate their entries too (koppeltaal's message cache checks
// the queue row's message fields); the epoch is the second line, for every
// cache at once.
//
// PostgreSQL: cluster system identifier, timeline of the current WAL (a
// promoted standby is on a new one) and the database's oid (a database dropped
// and restored under the same name gets a new one), read on every new
// connection. SQLite: the file's identity (device and inode), checked at most
// once a second; a file replaced under a running process also makes Ready fail,
// because the open connections keep writing to the old one.

// identityCheckEvery is how often Epoch looks at the SQLite file.
const identityCheckEvery = time.Second

// identity tracks the database identity and the epoch.
type identity struct {
	epoch atomic.Uint64
	// onChange runs after the epoch moved (the Store drops its caches).
	onChange func()

	mu      sync.Mutex
	current string      // PostgreSQL: last identity seen
	file    os.FileInfo // SQLite: the file as opened
	path    string
	checked atomic.Int64 // SQLite: Unix ns of the last file check
	// replaced is set once the SQLite file at path is another file than the one opened.
	replaced atomic.Bool
}

// Epoch changes whenever the Store finds itself connected to another database
// than before (see identity.go): a PostgreSQL failover, a database dropped and
// restored, a SQLite file replaced. Caches of database state compare it and
// start over when it moved; InstancesGeneration moves with it.
func (s *Store) Epoch() uint64 {
	if s.id.path != "" {
		s.id.checkFile(s.logger())
	}
	return s.id.epoch.Load()
}

// see records identity seen on a (new) connection; a different one than
// before moves the epoch.
func (id *identity) see(seen string, log func(old, seen string)) {
	id.mu.Lock()
	old := id.current
	id.current = seen
	id.mu.Unlock()
	if old != "" && old != seen {
		id.moved()
		log(old, seen)
	}
}

func (id *identity) moved() {
	id.epoch.Add(1)
	if id.onChange != nil {
		id.onChange()
	}
}

// pgIdentitySQL names the database a connection reaches. pg_current_wal_lsn
// fails during recovery, hence the CASE (a standby is never written to).
const pgIdentitySQL = `SELECT COALESCE((SELECT system_identifier::text FROM pg_control_system()), '') || '/' ||
	(SELECT oid::text FROM pg_database WHERE datname = current_database()) || '/' ||
	CASE WHEN pg_is_in_recovery() THEN 'recovery' ELSE substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) END`

// pgAfterConnect is the pgx hook that reads the identity of every new connection.
func (s *Store) pgAfterConnect(ctx context.Context, conn *pgx.Conn) error {
	var seen string
	if err := conn.QueryRow(ctx, pgIdentitySQL).Scan(&seen); err != nil {
		// Without pg_control_system (a restricted role) fall back to the database oid.
		if err := conn.QueryRow(ctx, "SELECT oid::text FROM pg_database WHERE datname = current_database()").Scan(&seen); err != nil {
			return fmt.Errorf("store: read database identity: %w", err)
		}
	}
	s.id.see(seen, func(old, seen string) {
		s.logger().Warn("store: connected to another database than before (failover, restore or a recreated database); caches dropped",
			"where", s.where, "before", old, "now", seen)
	})
	return nil
}

// watchFile remembers the SQLite file as opened.
func (id *identity) watchFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("store: stat %s: %w", path, err)
	}
	id.path, id.file = path, fi
	id.checked.Store(time.Now().UnixNano())
	return nil
}

// checkFile compares the file at path with the one opened, at most once per identityCheckEvery.
func (id *identity) checkFile(log *slog.Logger) {
	now := time.Now().UnixNano()
	last := id.checked.Load()
	if now-last < int64(identityCheckEvery) || !id.checked.CompareAndSwap(last, now) || id.replaced.Load() {
		return
	}
	fi, err := os.Stat(id.path)
	if err == nil && os.SameFile(fi, id.file) {
		return
	}
	id.replaced.Store(true)
	id.moved()
	log.Error("store: the SQLite database file was replaced or removed while Koppelpoort has it open; restart Koppelpoort (the open connections still use the old file)",
		"path", id.path, "err", err)
}

// fileReplaced reports a SQLite file replaced under the running process (for Ready).
func (s *Store) fileReplaced() error {
	if s.id.path == "" {
		return nil
	}
	s.id.checked.Store(0) // Ready looks now
	s.id.checkFile(s.logger())
	if s.id.replaced.Load() {
		return fmt.Errorf("store not ready (%s): the database file was replaced or removed while open; restart Koppelpoort", s.where)
	}
	return nil
}

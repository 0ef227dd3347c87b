package runtime

import (
	"database/sql"
	"fmt"
	"strings"

	"github.com/koppelpoort/koppelpoort/routes/transport"
)

// OpenDB opens the store database named by dsn for gateway tools (replay, dead-letter listing) that run
// without the store: a postgres:// URL or a SQLite path ("sqlite:" and "file:" prefixes allowed).
func OpenDB(dsn string) (*sql.DB, string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		db, err := sql.Open("pgx", dsn)
		if err != nil {
			return nil, "", fmt.Errorf("open postgres: %w", err)
		}
		if err := db.Ping(); err != nil {
			db.Close()
			return nil, "", fmt.Errorf("connect postgres: %w", err)
		}
		return db, transport.Postgres, nil
	}
	path := dsn
	for _, p := range []string{"sqlite://", "sqlite:", "file://", "file:"} {
		if strings.HasPrefix(path, p) {
			path = strings.TrimPrefix(path, p)
			break
		}
	}
	if i := strings.IndexByte(path, '?'); i >= 0 {
		path = path[:i]
	}
	db, err := transport.OpenSQLite(path, 1)
	if err != nil {
		return nil, "", err
	}
	return db, transport.SQLite, nil
}

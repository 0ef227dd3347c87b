// Package storetest opens real test stores on every available backend: a SQLite
// file in a temp dir always, and a private PostgreSQL database when
// KOPPELPOORT_TEST_POSTGRES_DSN is set (otherwise that lane is skipped, saying so).
package storetest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx" for database admin
	"github.com/koppelpoort/koppelpoort/store"
)

// EnvPostgresDSN names the environment variable with the PostgreSQL admin DSN.
const EnvPostgresDSN = "KOPPELPOORT_TEST_POSTGRES_DSN"

// Backend is one database a test can run on.
type Backend struct {
	Name string
	// DSN opens the same database every time (for restart tests and second processes).
	DSN string
}

// Open opens a store on b, closed at test cleanup.
func (b Backend) Open(t testing.TB) *store.Store {
	t.Helper()
	s, err := store.Open(context.Background(), store.Config{DSN: b.DSN}, nil)
	if err != nil {
		t.Fatalf("open %s store: %v", b.Name, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// Run runs fn as a subtest once per backend, each with a fresh empty database.
func Run(t *testing.T, fn func(t *testing.T, b Backend)) {
	t.Run("sqlite", func(t *testing.T) {
		fn(t, Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "data", "kp.db")})
	})
	t.Run("postgres", func(t *testing.T) {
		fn(t, NewPostgres(t))
	})
}

// NewPostgres creates a private database for t (dropped at cleanup), or skips t
// when no PostgreSQL DSN is configured.
func NewPostgres(t testing.TB) Backend {
	t.Helper()
	admin := os.Getenv(EnvPostgresDSN)
	if admin == "" {
		t.Skipf("PostgreSQL lane skipped: set %s (e.g. postgres://postgres@127.0.0.1:55432/postgres?sslmode=disable)", EnvPostgresDSN)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("%s: %v", EnvPostgresDSN, err)
	}
	var rb [6]byte
	_, _ = rand.Read(rb[:])
	name := "kp_test_" + hex.EncodeToString(rb[:])
	db, err := sql.Open("pgx", admin)
	if err != nil {
		t.Fatalf("open admin connection: %v", err)
	}
	if _, err := db.Exec("CREATE DATABASE " + name); err != nil {
		db.Close()
		t.Fatalf("create test database: %v", err)
	}
	t.Cleanup(func() {
		if _, err := db.Exec(fmt.Sprintf("DROP DATABASE IF EXISTS %s WITH (FORCE)", name)); err != nil {
			t.Logf("drop test database %s: %v", name, err)
		}
		db.Close()
	})
	u.Path = "/" + name
	return Backend{Name: "postgres", DSN: u.String()}
}

// DisableInstance removes the instance with that login from service as a
// restart without it in the configuration does (store.Tx.DisableInstance).
func DisableInstance(t testing.TB, s *store.Store, username string) {
	t.Helper()
	ctx := context.Background()
	err := s.Update(ctx, func(tx *store.Tx) error {
		in, err := tx.InstanceByUsername(ctx, username)
		if err != nil {
			return err
		}
		_, err = tx.DisableInstance(ctx, in.ID)
		return err
	})
	if err != nil {
		t.Fatalf("disable instance %s: %v", username, err)
	}
}

package runtime

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	_ "github.com/koppelpoort/koppelpoort/adapters/all" // the built-in adapters
	"github.com/koppelpoort/koppelpoort/routes"
)

// ServeOptions is what `koppelpoort serve` knows: the config file's directory, its `routes:` patterns, and
// the store (either its *sql.DB and dialect, or its DSN to open a connection of the gateway's own).
type ServeOptions struct {
	// ConfigDir resolves relative route patterns (the directory of the config file; "" = working directory).
	ConfigDir string
	// Patterns are the `routes:` entries: files or globs.
	Patterns []string
	// Routes, when set, are the routes already loaded and checked (serve loads them before it opens the
	// store, so a broken route changes nothing); ConfigDir and Patterns are then ignored.
	Routes []*routes.Route
	// DB and Dialect: the store's database. When DB is nil, DSN is opened with OpenDB.
	DB      *sql.DB
	Dialect string
	DSN     string
	Logger  *slog.Logger
	// Registerer receives the per-route metrics (the server's /metrics registry).
	Registerer prometheus.Registerer
}

// ForServe loads and checks every route, then provisions them. A route with a problem stops it with every
// problem listed (the error is routes.Diagnostics: file:line:col, message, source line and caret), so serve
// refuses to start with an invalid route and says why. With no patterns it returns (nil, nil).
// The caller mounts the result (Mount) on its router, runs Run(ctx) as a worker and calls Close at the end.
func ForServe(ctx context.Context, o ServeOptions) (*Runtime, error) {
	rs := o.Routes
	if rs == nil {
		if len(o.Patterns) == 0 {
			return nil, nil
		}
		var patterns []string
		for _, p := range o.Patterns {
			if !filepath.IsAbs(p) && o.ConfigDir != "" {
				p = filepath.Join(o.ConfigDir, p)
			}
			patterns = append(patterns, p)
		}
		var err error
		if rs, err = routes.LoadFiles(patterns...); err != nil {
			return nil, fmt.Errorf("routes are not valid:\n%w", err)
		}
		if len(rs) == 0 {
			return nil, fmt.Errorf("routes: %v match no route files", o.Patterns)
		}
	}
	var err error
	db, dialect := o.DB, o.Dialect
	var own *sql.DB
	if db == nil {
		if db, dialect, err = OpenDB(o.DSN); err != nil {
			return nil, fmt.Errorf("gateway database: %w", err)
		}
		own = db
	}
	rt, err := New(ctx, Config{DB: db, Dialect: dialect, Routes: rs, Logger: o.Logger, Registerer: o.Registerer})
	if err != nil {
		if own != nil {
			own.Close()
		}
		return nil, err
	}
	rt.ownDB = own
	for _, r := range rs {
		rt.log.Info("route loaded", "route", r.Name, "file", r.File, "input", r.Input.Registration.ID, "outputs", len(r.Outputs))
	}
	return rt, nil
}

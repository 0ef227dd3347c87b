package runtime

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/store"
)

// ServeOptions is what `koppelpoort serve` knows: the config file's directory, its `routes:` patterns,
// the store, and the Koppeltaal server the process runs. The adapters the routes name must be registered
// (the binary imports adapters/all).
type ServeOptions struct {
	// ConfigDir resolves relative route patterns (the directory of the config file; "" = working directory).
	ConfigDir string
	// Patterns are the `routes:` entries: files or globs.
	Patterns []string
	// Routes, when set, are the routes already loaded and checked (serve loads them before it opens the
	// store, so a broken route changes nothing); ConfigDir and Patterns are then ignored.
	Routes []*routes.Route
	Store  *store.Store
	// Koppeltaal is the process's Koppeltaal server (nil: none); local Koppeltaal adapters work on it.
	Koppeltaal *koppeltaal.Service
	Logger     *slog.Logger
	// Registerer receives the per-route metrics (the server's /metrics registry).
	Registerer prometheus.Registerer
}

// ForServe loads and checks every route, then provisions them. A route with a problem stops it with every
// problem listed (the error is strictyaml.Diagnostics: file:line:col, message, source line and caret), so serve
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
	rt, err := New(ctx, Config{Store: o.Store, Koppeltaal: o.Koppeltaal, Routes: rs, Logger: o.Logger, Registerer: o.Registerer})
	if err != nil {
		return nil, err
	}
	return rt, nil
}

// Package console is the Koppelpoort web console: a single-page app (Preact,
// built with esbuild from web/ into dist/, embedded and committed) over the
// Support API, plus the few JSON endpoints it needs besides it (the dashboard
// and the Test Portal). The console is a client of the Support API: whatever
// an administrator does in it, a script can do with an API token.
package console

import (
	"embed"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"path"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/supportapi"
	"github.com/koppelpoort/koppelpoort/store"
)

// Path is where the console is served.
const Path = "/console/"

//go:embed dist
var dist embed.FS

// Options configure New.
type Options struct {
	Accounts *admin.Accounts
	Support  *supportapi.API
	// Gatherer supplies the route counters of this process for the dashboard; nil: none shown.
	Gatherer prometheus.Gatherer
	// Portal is what the Test Portal uses; without a Service it answers 501.
	Portal Portal
	Logger *slog.Logger
}

// Console serves the web console.
type Console struct {
	acc    *admin.Accounts
	api    *supportapi.API
	st     *store.Store
	gather prometheus.Gatherer
	portal Portal
	log    *slog.Logger
	files  fs.FS
}

// New returns the console.
func New(opts Options) (*Console, error) {
	if opts.Accounts == nil || opts.Support == nil {
		return nil, errors.New("console: New needs Accounts and Support")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	files, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, err
	}
	return &Console{acc: opts.Accounts, api: opts.Support, st: opts.Accounts.Store(), gather: opts.Gatherer,
		portal: opts.Portal, log: opts.Logger, files: files}, nil
}

// Mount registers the console's pages and endpoints.
func (c *Console) Mount(r chi.Router) {
	r.Get("/console", http.RedirectHandler(Path, http.StatusMovedPermanently).ServeHTTP)
	r.Get(Path+"*", c.static)
	r.Route("/console/api", func(r chi.Router) {
		r.Use(c.acc.Require)
		r.Get("/dashboard", c.dashboard)
		c.mountPortal(r)
	})
}

// static serves the embedded build with headers that keep it to itself: a
// strict Content-Security-Policy (no inline script, nothing from elsewhere),
// no framing, no sniffing.
func (c *Console) static(w http.ResponseWriter, r *http.Request) {
	name := strings.TrimPrefix(r.URL.Path, Path)
	if name == "" || !strings.Contains(path.Base(name), ".") {
		name = "index.html"
	}
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "no-referrer")
	if name == "index.html" {
		h.Set("Cache-Control", "no-cache")
	} else {
		h.Set("Cache-Control", "public, max-age=300")
	}
	b, err := fs.ReadFile(c.files, name)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	switch path.Ext(name) {
	case ".html":
		h.Set("Content-Type", "text/html; charset=utf-8")
	case ".js":
		h.Set("Content-Type", "text/javascript; charset=utf-8")
	case ".css":
		h.Set("Content-Type", "text/css; charset=utf-8")
	default:
		h.Set("Content-Type", "text/plain; charset=utf-8")
	}
	_, _ = w.Write(b)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

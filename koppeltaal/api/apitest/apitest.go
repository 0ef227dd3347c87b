// Package apitest starts a Koppeltaal API behind a real HTTP listener for tests
// of packages that talk to it (clients, adapters, extensions, examples).
package apitest

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
)

// Serve provisions opts.Config (unless opts.SkipApply), mounts the API on a
// chi router and serves it until the test ends.
func Serve(t testing.TB, opts api.Options) *httptest.Server {
	t.Helper()
	srv, err := api.New(context.Background(), opts)
	if err != nil {
		t.Fatalf("koppeltaal api: %v", err)
	}
	r := chi.NewRouter()
	srv.Mount(r)
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return ts
}

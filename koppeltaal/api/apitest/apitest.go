// Package apitest starts a Koppeltaal API behind a real HTTP listener for tests
// of packages that talk to it (clients, adapters, extensions, examples).
package apitest

import (
	"bufio"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
)

// NewServer starts a test HTTP server whose handler build makes, knowing the
// server's URL first: the Koppeltaal server writes its links from its
// configured public URL (koppeltaal.Config.PublicURL), never from the request.
func NewServer(t testing.TB, build func(publicURL string) http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewUnstartedServer(nil)
	ts.Config.Handler = build("http://" + ts.Listener.Addr().String())
	ts.Start()
	t.Cleanup(ts.Close)
	return ts
}

// Serve provisions opts.Config (unless opts.SkipApply), mounts the API on a
// chi router and serves it until the test ends; an empty Config.PublicURL is
// the test server's URL.
func Serve(t testing.TB, opts api.Options) *httptest.Server {
	t.Helper()
	return NewServer(t, func(public string) http.Handler {
		if opts.Config.PublicURL == "" {
			opts.Config.PublicURL = public
		}
		srv, err := api.New(context.Background(), opts)
		if err != nil {
			t.Fatalf("koppeltaal api: %v", err)
		}
		r := chi.NewRouter()
		srv.Mount(r)
		return r
	})
}

// ServeOnSQLite serves cfg from a fresh SQLite store in the test's temporary
// directory and returns the server's base URL.
func ServeOnSQLite(t testing.TB, cfg koppeltaal.Config) string {
	t.Helper()
	st, err := store.Open(context.Background(), store.Config{DSN: filepath.Join(t.TempDir(), "kt.db")}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return Serve(t, api.Options{Store: st, Config: cfg}).URL
}

// MissingRequired parses a reply body of the Koppeltaal API (a bundle or one resource) and returns the
// elements DSTU1 marks 1..1 that are missing from what the server wrote (dstu1.Resource.MissingRequired):
// a resource (OperationOutcome, Conformance, MessageHeader), every entry of a search bundle, and the
// MessageHeader of a message bundle — the message's other entries are the sender's resources, passed on as
// they were posted. Clients that parse replies with the DSTU1 cardinalities (the Python connector) refuse a
// reply that misses one (CLIENTS.md "Fields clients require in replies").
func MissingRequired(body []byte, f dstu1.Format) ([]string, error) {
	if r, err := dstu1.ParseResource(body, f); err == nil {
		return r.MissingRequired(), nil
	}
	b, err := dstu1.ParseBundle(body, f)
	if err != nil {
		return nil, err
	}
	if b.IsMessage() && len(b.Entries) > 0 {
		b.Entries = b.Entries[:1]
	}
	return b.MissingRequired(), nil
}

// Stream sends r (a request for the live stream, credentials set) and returns
// the lines of the event stream as they arrive; the channel closes when the
// server ends the stream. Any other reply than 200 fails the test.
func Stream(t testing.TB, r *http.Request) <-chan string {
	t.Helper()
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	t.Cleanup(cancel)
	resp, err := http.DefaultClient.Do(r.WithContext(ctx))
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		t.Fatalf("stream: %d", resp.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	return lines
}

package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
)

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func startServer(t *testing.T, opts Options) (base string, stop func() error) {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	s := New(opts)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	errc := make(chan error, 1)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { errc <- s.Serve(ctx, ln, func(a net.Addr) { addrc <- a }) }()
	select {
	case a := <-addrc:
		base = "http://" + a.String()
		if opts.TLS != nil {
			base = "https://" + a.String()
		}
	case err := <-errc:
		t.Fatalf("server did not start: %v", err)
	}
	return base, func() error { cancel(); return <-errc }
}

func get(t *testing.T, url string) (int, string, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func TestOperationalEndpoints(t *testing.T) {
	var notReady error = errors.New("store unreachable: dial tcp 127.0.0.1:1: connection refused")
	ready := func(context.Context) error { return notReady }
	base, stop := startServer(t, Options{Ready: ready, Mounts: []Mounter{MountFunc(func(r chi.Router) {
		r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("kaboom") })
	})}})
	defer func() {
		if err := stop(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	}()

	if code, body, h := get(t, base+"/healthz"); code != 200 || !strings.Contains(body, `"ok"`) || h.Get("X-Request-Id") == "" {
		t.Errorf("/healthz = %d %q (request id %q)", code, body, h.Get("X-Request-Id"))
	}
	if code, body, _ := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "store unreachable") {
		t.Errorf("/readyz while not ready = %d %q", code, body)
	}
	notReady = nil
	if code, _, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz when ready = %d", code)
	}
	if code, _, _ := get(t, base+"/boom"); code != 500 {
		t.Errorf("panicking handler = %d, want 500", code)
	}
	code, body, _ := get(t, base+"/metrics")
	if code != 200 || !strings.Contains(body, `koppelpoort_http_requests_total{code="500",method="GET",route="/boom"} 1`) {
		t.Errorf("/metrics = %d, missing request counter for /boom:\n%s", code, body)
	}
}

func TestGracefulShutdownWaitsForInFlightRequest(t *testing.T) {
	started := make(chan struct{})
	base, stop := startServer(t, Options{Mounts: []Mounter{MountFunc(func(r chi.Router) {
		r.Get("/slow", func(w http.ResponseWriter, _ *http.Request) {
			close(started)
			time.Sleep(300 * time.Millisecond)
			_, _ = w.Write([]byte("done"))
		})
	})}})
	result := make(chan string, 1)
	go func() {
		_, body, _ := get(t, base+"/slow")
		result <- body
	}()
	<-started
	if err := stop(); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if got := <-result; got != "done" {
		t.Fatalf("in-flight request got %q, want it to complete", got)
	}
}

// /readyz runs every named check and reports each: one failing check makes the server unready and names
// itself, the others still say ok.
func TestReadyzNamedChecks(t *testing.T) {
	var routeErr error
	base, stop := startServer(t, Options{
		Ready:  func(context.Context) error { return nil },
		Checks: []Check{{Name: "route epd-patients", Fn: func(context.Context) error { return routeErr }}},
	})
	defer stop()
	if code, body, _ := get(t, base+"/readyz"); code != 200 || body != `{"checks":{"route epd-patients":"ok","store":"ok"},"status":"ready"}`+"\n" {
		t.Errorf("ready: %d %s", code, body)
	}
	routeErr = errors.New("output koppeltaal failing for 3m0s")
	code, body, _ := get(t, base+"/readyz")
	if code != 503 || body != `{"checks":{"route epd-patients":"output koppeltaal failing for 3m0s","store":"ok"},"error":"route epd-patients: output koppeltaal failing for 3m0s","status":"unavailable"}`+"\n" {
		t.Errorf("a failing check: %d %s", code, body)
	}
}

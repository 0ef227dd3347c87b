// Package server is Koppelpoort's HTTP front door: one chi router with request
// ids, panic recovery, access logs and metrics, the operational endpoints
// (/healthz, /readyz, /metrics), the API handlers that other packages mount,
// and graceful shutdown.
package server

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Mounter registers its routes on the shared router.
type Mounter interface {
	Mount(r chi.Router)
}

// StatusWriter is an optional interface of a Mounter: it answers the router's
// 404 and 405 for the paths it owns, in its own format (the root router
// answers those for methods it cannot route at all, such as FOO or a
// lower-case get, before any mounted router sees them). It reports false for
// a path it does not own.
type StatusWriter interface {
	WriteStatus(w http.ResponseWriter, r *http.Request, status int) bool
}

// MountFunc adapts a function to Mounter.
type MountFunc func(r chi.Router)

// Mount implements Mounter.
func (f MountFunc) Mount(r chi.Router) { f(r) }

// Options configures a Server. Zero values get the documented defaults.
type Options struct {
	// Logger receives access and error logs. Default slog.Default().
	Logger *slog.Logger
	// Registry collects the metrics served on /metrics. Default: a new registry
	// with the Go and process collectors.
	Registry *prometheus.Registry
	// Ready reports whether the server can serve traffic (store reachable,
	// migrations applied); /readyz answers 503 with its error otherwise. It is
	// the check named "store"; Checks adds more.
	Ready func(ctx context.Context) error
	// Checks are further named readiness checks (a route whose output has been
	// failing too long, ...). /readyz runs them all and reports each.
	Checks []Check
	// Mounts register the API handlers.
	Mounts []Mounter
	// ReadTimeout, WriteTimeout bound one request. Defaults 30s and 60s.
	ReadTimeout, WriteTimeout time.Duration
	// ShutdownTimeout is how long in-flight requests get to finish. Default 15s.
	ShutdownTimeout time.Duration
	// TrustedProxies are the reverse proxies whose X-Forwarded-For, Forwarded
	// and X-Forwarded-Proto headers are believed (forwarded.go). Default none.
	TrustedProxies []netip.Prefix
	// MetricsAddr, when set, serves /metrics on a listen address of its own
	// instead of the main one. Default: on the main address.
	MetricsAddr string
	// MetricsToken, when set, makes /metrics require "Authorization: Bearer <token>".
	MetricsToken string
	// RequestLog, when set, wraps every request inside the request id and the
	// access log (httplog.Recorder.Middleware: the request log in the database).
	RequestLog func(http.Handler) http.Handler
	// TLS, when set, makes Serve speak HTTPS only, with its certificate
	// (NewTLS, watched for changes while Serve runs), and every reply carry
	// Strict-Transport-Security.
	TLS *TLS
	// HSTS adds Strict-Transport-Security to every reply without TLS here:
	// for a server whose public URL is https behind a TLS-terminating proxy.
	HSTS bool
	// Tracing makes a span per request (tracing.Middleware); serve sets it
	// when tracing.otlp_endpoint is configured.
	Tracing bool
}

// Server is the HTTP server.
type Server struct {
	opts    Options
	router  chi.Router
	log     *slog.Logger
	metrics *httpMetrics
}

// New builds the router and its middleware.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Registry == nil {
		opts.Registry = NewRegistry()
	}
	if opts.ReadTimeout == 0 {
		opts.ReadTimeout = 30 * time.Second
	}
	if opts.WriteTimeout == 0 {
		opts.WriteTimeout = 60 * time.Second
	}
	if opts.ShutdownTimeout == 0 {
		opts.ShutdownTimeout = 15 * time.Second
	}
	s := &Server{opts: opts, log: opts.Logger, metrics: newHTTPMetrics(opts.Registry)}
	r := chi.NewRouter()
	if opts.TLS != nil || opts.HSTS {
		r.Use(hsts)
	}
	requestLog := opts.RequestLog
	if requestLog == nil {
		requestLog = func(next http.Handler) http.Handler { return next }
	}
	r.Use(middleware.RequestID)
	if opts.Tracing {
		r.Use(tracing.Middleware) // outside the access log: its line carries the trace id
	}
	r.Use(s.trustForwarded, s.echoRequestID, noSniff, s.accessLog, requestLog, s.recoverer)
	r.NotFound(s.status(http.StatusNotFound))
	r.MethodNotAllowed(s.status(http.StatusMethodNotAllowed))
	r.Get("/healthz", s.healthz)
	r.Get("/readyz", s.readyz)
	if opts.MetricsAddr == "" {
		r.Handle("/metrics", s.metricsHandler())
	}
	for _, m := range opts.Mounts {
		m.Mount(r)
	}
	s.router = r
	return s
}

// noSniff: browsers must not guess a reply's type (an error echoing input
// must never run as HTML or script).
func noSniff(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		next.ServeHTTP(w, r)
	})
}

// status answers 404 and 405 through the mount that owns the path, or as JSON.
func (s *Server) status(code int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, m := range s.opts.Mounts {
			if sw, ok := m.(StatusWriter); ok && sw.WriteStatus(w, r, code) {
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		_, _ = fmt.Fprintf(w, "{\"error\":%q}\n", http.StatusText(code))
	}
}

// metricsHandler serves the registry, behind MetricsToken when set.
func (s *Server) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(s.opts.Registry, promhttp.HandlerOpts{Registry: s.opts.Registry})
	if s.opts.MetricsToken == "" {
		return h
	}
	want := sha256.Sum256([]byte("Bearer " + s.opts.MetricsToken))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := sha256.Sum256([]byte(r.Header.Get("Authorization")))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="metrics"`)
			http.Error(w, "metrics: Authorization: Bearer <server.metrics.token> required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveMetrics serves /metrics alone on MetricsAddr until stop is called.
func (s *Server) serveMetrics(errorLog *log.Logger) (stop func(), err error) {
	ln, err := net.Listen("tcp", s.opts.MetricsAddr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", s.opts.MetricsAddr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", s.metricsHandler())
	ms := &http.Server{Handler: noSniff(mux), ReadHeaderTimeout: 10 * time.Second, ErrorLog: errorLog}
	go func() { _ = ms.Serve(ln) }()
	s.log.Info("metrics listening", "addr", ln.Addr().String())
	return func() { _ = ms.Close() }, nil
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors. The runtime's scheduler latencies (go_sched_latencies_seconds:
// how long goroutines wait for a CPU) are included: when they grow, the CPU is
// the limit, and the SQLite writer waits in that line too.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(collectors.MetricsGC, collectors.MetricsScheduler)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler returns the root handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.router }

// Serve serves on ln until ctx is cancelled, then shuts down gracefully. ready, if not nil, receives the
// bound address once listening (useful with port 0).
func (s *Server) Serve(ctx context.Context, ln net.Listener, ready func(addr net.Addr)) error {
	hs := &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       s.opts.ReadTimeout,
		WriteTimeout:      s.opts.WriteTimeout,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.opts.MetricsAddr != "" {
		stop, err := s.serveMetrics(hs.ErrorLog)
		if err != nil {
			return err
		}
		defer stop()
	}
	errc := make(chan error, 1)
	if s.opts.TLS != nil {
		hs.TLSConfig = s.opts.TLS.Config()
		go func() { _ = s.opts.TLS.Watch(ctx) }()       // a certificate renewed on disk is served without a signal
		go func() { errc <- hs.ServeTLS(ln, "", "") }() // the certificate comes from TLSConfig.GetCertificate
	} else {
		go func() { errc <- hs.Serve(ln) }()
	}
	if ready != nil {
		ready(ln.Addr())
	}
	s.log.Info("listening", "addr", ln.Addr().String(), "tls", s.opts.TLS != nil)
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	s.log.Info("shutting down", "grace", s.opts.ShutdownTimeout.String())
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		_ = hs.Close()
		return fmt.Errorf("graceful shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve: %w", err)
	}
	return nil
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Check is one named readiness check: nil when fine, an error saying what is wrong otherwise.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// readyz answers 200 when every check passes and 503 otherwise, with each check's verdict:
// {"status":"unavailable","error":"route epd-patients: ...","checks":{"store":"ok","route epd-patients":"..."}}.
// "error" is the first failing check's message (what a load balancer log shows).
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
	defer cancel()
	checks := s.opts.Checks
	if s.opts.Ready != nil {
		checks = append([]Check{{Name: "store", Fn: s.opts.Ready}}, checks...)
	}
	results := make(map[string]string, len(checks))
	first := ""
	for _, c := range checks {
		if err := c.Fn(ctx); err != nil {
			results[c.Name] = err.Error()
			if first == "" {
				first = c.Name + ": " + err.Error()
			}
			continue
		}
		results[c.Name] = "ok"
	}
	body := map[string]any{"status": "ready", "checks": results}
	status := http.StatusOK
	if first != "" {
		body["status"], body["error"], status = "unavailable", first, http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

package server

import (
	"fmt"
	"log/slog"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/internal/tracing"
)

type httpMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	inflight prometheus.Gauge
}

func newHTTPMetrics(reg prometheus.Registerer) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "koppelpoort_http_requests_total",
			Help: "HTTP requests by method, route pattern and status code.",
		}, []string{"method", "route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "koppelpoort_http_request_duration_seconds",
			Help:    "HTTP request latency by method and route pattern.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"method", "route"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "koppelpoort_http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.inflight)
	return m
}

// echoRequestID returns the request id to the client so a support call can quote it.
func (s *Server) echoRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := middleware.GetReqID(r.Context()); id != "" {
			w.Header().Set("X-Request-Id", id)
		}
		next.ServeHTTP(w, r)
	})
}

// accessLog logs one line per request and records metrics. It logs the path
// but not the query string: Koppeltaal queries carry patient URLs.
func (s *Server) accessLog(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		s.metrics.inflight.Inc()
		defer func() {
			s.metrics.inflight.Dec()
			elapsed := time.Since(start)
			route := chi.RouteContext(r.Context()).RoutePattern()
			if route == "" {
				route = "unmatched"
			}
			code := ww.Status()
			if code == 0 {
				code = http.StatusOK
			}
			s.metrics.requests.WithLabelValues(r.Method, route, strconv.Itoa(code)).Inc()
			s.metrics.duration.WithLabelValues(r.Method, route).Observe(elapsed.Seconds())
			if route == "/healthz" || route == "/readyz" || route == "/metrics" {
				return
			}
			logRequest(s.log, r, code, ww.BytesWritten(), elapsed)
		}()
		next.ServeHTTP(ww, r)
	})
}

// logRequest writes the one line per request: the path but not the query string (Koppeltaal queries carry
// patient URLs).
func logRequest(log *slog.Logger, r *http.Request, code, bytes int, elapsed time.Duration) {
	attrs := []slog.Attr{
		slogStr("request_id", middleware.GetReqID(r.Context())),
		slogStr("method", r.Method),
		slogStr("path", r.URL.Path),
		slogInt("status", code),
		slogInt("bytes", bytes),
		slogDur("duration", elapsed),
		slogStr("remote", r.RemoteAddr),
	}
	if peer := Peer(r); peer != "" {
		attrs = append(attrs, slogStr("proxy", peer)) // remote is then the client a trusted proxy named
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		attrs = append(attrs, slogStr("client_cert", r.TLS.PeerCertificates[0].Subject.String())) // verified in the handshake
	}
	log.LogAttrs(r.Context(), levelFor(code), "http request", attrs...)
}

// RequestLog gives a handler served outside the main router (an inbound adapter's own listener) the same
// request ids and request log lines as the server, and its traces when tracing is on.
func RequestLog(log *slog.Logger, next http.Handler) http.Handler {
	logged := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		if id := middleware.GetReqID(r.Context()); id != "" {
			w.Header().Set("X-Request-Id", id)
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		defer func() {
			code := ww.Status()
			if code == 0 {
				code = http.StatusOK
			}
			logRequest(log, r, code, ww.BytesWritten(), time.Since(start))
		}()
		next.ServeHTTP(ww, r)
	})
	if tracing.Enabled() {
		return middleware.RequestID(tracing.Middleware(logged))
	}
	return middleware.RequestID(logged)
}

// recoverer turns a panic into a logged 500 instead of a dropped connection.
// API packages that need a specific error body (OperationOutcome) install
// their own recovery inside their route group; this is the last line.
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if rec := recover(); rec != nil {
				if rec == http.ErrAbortHandler {
					panic(rec)
				}
				s.log.Error("panic serving request",
					"request_id", middleware.GetReqID(r.Context()),
					"path", r.URL.Path, "panic", fmt.Sprint(rec), "stack", string(debug.Stack()))
				if strings.Contains(r.Header.Get("Accept"), "json") {
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusInternalServerError)
					_, _ = fmt.Fprintf(w, "{\"error\":\"internal server error\",\"request_id\":%q}\n", middleware.GetReqID(r.Context()))
					return
				}
				http.Error(w, "internal server error (request "+middleware.GetReqID(r.Context())+")", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

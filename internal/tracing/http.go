package tracing

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

var traceContext = propagation.TraceContext{}

// Middleware makes one server span per request, the child of the caller's W3C traceparent when it sent one.
// The span is named by the method and the route pattern — chi's (POST /FHIR/Koppeltaal/Mailbox,
// GET /FHIR/Koppeltaal/{type}/{id}) or a ServeMux's — never the path, whose ids can name a patient, and
// carries the status and the request id. Put it outside the access log, so that the log line carries the
// trace id.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := traceContext.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		pattern := new(string) // filled by Pattern deeper in: middleware between here and a ServeMux copies the request
		ctx = context.WithValue(ctx, patternKey{}, pattern)
		ctx, span := (*tracer.Load()).Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method), attribute.String("url.scheme", scheme(r))))
		if !span.IsRecording() {
			span.End()
			next.ServeHTTP(w, r.WithContext(ctx)) // not sampled: the trace id still reaches the log lines
			return
		}
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		inner := r.WithContext(ctx) // a ServeMux writes its pattern into the request it is handed
		defer func() {
			code := ww.Status()
			if code == 0 {
				code = http.StatusOK
			}
			route := routePattern(inner, *pattern)
			span.SetName(r.Method + " " + route)
			span.SetAttributes(attribute.String("http.route", route), attribute.Int("http.response.status_code", code),
				attribute.String("koppelpoort.request_id", middleware.GetReqID(r.Context())))
			if code >= http.StatusInternalServerError {
				span.SetStatus(codes.Error, "")
			}
			span.End()
		}()
		next.ServeHTTP(ww, inner)
	})
}

type patternKey struct{}

// Pattern wraps a handler registered on a ServeMux so that the span of Middleware further out is named by
// the mux's pattern: the mux writes its pattern only into the request it is handed, and a middleware in
// between (the database request log) hands it a copy.
func Pattern(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p, ok := r.Context().Value(patternKey{}).(*string); ok {
			*p = r.Pattern
		}
		next.ServeHTTP(w, r)
	})
}

// routePattern is the pattern that matched r: chi's, or a ServeMux's without its method (seen on r or
// recorded by Pattern); "unmatched" when none did.
func routePattern(r *http.Request, recorded string) string {
	if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
		return rc.RoutePattern()
	}
	for _, p := range []string{r.Pattern, recorded} {
		if p == "" {
			continue
		}
		if _, path, ok := strings.Cut(p, " "); ok {
			return path
		}
		return p
	}
	return "unmatched"
}

// Inject adds the W3C traceparent of the span in ctx to an outgoing request's headers (nothing outside a
// trace).
func Inject(ctx context.Context, h http.Header) {
	traceContext.Inject(ctx, propagation.HeaderCarrier(h))
}

func scheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	return "http"
}

// LogHandler adds trace_id and span_id to every record logged with a context inside a span (slog's
// ...Context methods and LogAttrs), so a log line leads to its trace and back.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ slog.Handler }

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(as)}
}
func (h logHandler) WithGroup(name string) slog.Handler { return logHandler{h.Handler.WithGroup(name)} }

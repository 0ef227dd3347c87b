package tracing

import (
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

func TestConfigValidate(t *testing.T) {
	half, two := 0.5, 2.0
	good := []Config{{}, {OTLPEndpoint: "http://127.0.0.1:4318", SampleRatio: &half}, {OTLPEndpoint: "https://otel.example.org/v1/traces"}}
	for _, c := range good {
		c.SetDefaults()
		if err := c.Validate(); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	bad := []struct {
		c    Config
		want string
	}{
		{Config{OTLPEndpoint: "127.0.0.1:4318"}, "want the collector's OTLP/HTTP URL"},
		{Config{OTLPEndpoint: "grpc://127.0.0.1:4317"}, "want the collector's OTLP/HTTP URL"},
		{Config{OTLPEndpoint: "http://127.0.0.1:4318", SampleRatio: &two}, "tracing.sample_ratio: 2 is not between 0 and 1"},
		{Config{Headers: map[string]string{"Authorization": "x"}}, "tracing.otlp_endpoint is not"},
	}
	for _, b := range bad {
		if err := b.c.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%+v: %v; want %q", b.c, err, b.want)
		}
	}
	if u, _ := exportURL("http://127.0.0.1:4318"); u != "http://127.0.0.1:4318/v1/traces" {
		t.Errorf("export URL %q", u)
	}
}

// A request span is named by the route pattern, follows the caller's traceparent, holds no path id or query
// value; steps are its children; the log line written in it carries its ids; without a sampled trace no step
// span is made.
func TestMiddleware(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	install(sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp)))
	defer install(noop.NewTracerProvider())
	logs := &testkit.Buffer{}
	log := slog.New(LogHandler(slog.NewJSONHandler(logs, nil)))
	r := chi.NewRouter()
	r.Use(Middleware)
	r.Get("/Patient/{id}", func(w http.ResponseWriter, r *http.Request) {
		_, step := Start(r.Context(), "step")
		End(step, context.DeadlineExceeded)
		log.InfoContext(r.Context(), "handled")
		w.WriteHeader(http.StatusServiceUnavailable)
	})
	req := httptest.NewRequest("GET", "/Patient/1001?name=Jansen", nil)
	req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	r.ServeHTTP(httptest.NewRecorder(), req)

	spans := exp.GetSpans()
	if len(spans) != 2 {
		t.Fatalf("%d spans: %v", len(spans), spans)
	}
	step, server := spans[0], spans[1]
	if server.Name != "GET /Patient/{id}" || server.Parent.SpanID().String() != "00f067aa0ba902b7" ||
		server.SpanContext.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || server.Status.Code != codes.Error {
		t.Errorf("server span %q parent %s trace %s status %v", server.Name, server.Parent.SpanID(), server.SpanContext.TraceID(), server.Status)
	}
	if step.Parent.SpanID() != server.SpanContext.SpanID() || step.Status.Code != codes.Error || step.Status.Description != "" {
		t.Errorf("step: parent %s, status %+v", step.Parent.SpanID(), step.Status)
	}
	for _, s := range spans {
		for _, a := range s.Attributes {
			if v := a.Value.String(); strings.Contains(v, "1001") || strings.Contains(v, "Jansen") {
				t.Errorf("%s: %s = %q", s.Name, a.Key, v)
			}
		}
	}
	if !strings.Contains(logs.String(), `"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"`+server.SpanContext.SpanID().String()+`"`) {
		t.Errorf("log line: %s", logs)
	}

	// Outside a sampled trace (a background job), Start makes nothing.
	exp.Reset()
	_, s := Start(context.Background(), "background")
	s.End()
	if len(exp.GetSpans()) != 0 {
		t.Errorf("a step span without a trace: %v", exp.GetSpans())
	}
}

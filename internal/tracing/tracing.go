// Package tracing is Koppelpoort's OpenTelemetry tracing, off by default: with tracing.otlp_endpoint set, a
// trace per HTTP request and per gateway delivery goes to an OTLP/HTTP collector, with spans for the steps
// (parse, checks, the store transaction, fan-out). Spans carry route patterns, statuses, counts and names of
// routes and instances — never a query value, a body, a path with ids in it or anything else that can name a
// patient. Log lines written with a request's context carry its trace_id and span_id (LogHandler).
package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config is the `tracing:` section of the configuration file.
type Config struct {
	// OTLPEndpoint is the collector's OTLP/HTTP URL, such as http://127.0.0.1:4318 (the path /v1/traces is
	// added when the URL has none; https:// for TLS). Empty (the default): no tracing.
	OTLPEndpoint string `yaml:"otlp_endpoint"`
	// SampleRatio is the share of traces kept (0..1) when the caller sent no traceparent; a sampled incoming
	// traceparent is always followed. Default 1 (every trace).
	SampleRatio *float64 `yaml:"sample_ratio"`
	// ServiceName is service.name on every span. Default koppelpoort.
	ServiceName string `yaml:"service_name"`
	// Headers are sent with every export (a collector's API key: use ${VAR}).
	Headers map[string]string `yaml:"headers"`
}

// Enabled reports whether spans are exported.
func (c Config) Enabled() bool { return c.OTLPEndpoint != "" }

// SetDefaults fills in the documented defaults.
func (c *Config) SetDefaults() {
	if c.SampleRatio == nil {
		one := 1.0
		c.SampleRatio = &one
	}
	if c.ServiceName == "" {
		c.ServiceName = "koppelpoort"
	}
}

// Validate checks the settings (after SetDefaults).
func (c Config) Validate() error {
	var errs []error
	if c.OTLPEndpoint != "" {
		if _, err := exportURL(c.OTLPEndpoint); err != nil {
			errs = append(errs, err)
		}
	}
	if r := c.SampleRatio; r != nil && (*r < 0 || *r > 1) {
		errs = append(errs, fmt.Errorf("tracing.sample_ratio: %v is not between 0 and 1", *r))
	}
	if !c.Enabled() && len(c.Headers) > 0 {
		errs = append(errs, fmt.Errorf("tracing.headers are set but tracing.otlp_endpoint is not"))
	}
	return errors.Join(errs...)
}

// exportURL is the URL spans are posted to.
func exportURL(endpoint string) (string, error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return "", fmt.Errorf("tracing.otlp_endpoint %q: want the collector's OTLP/HTTP URL, such as http://127.0.0.1:4318", endpoint)
	}
	if strings.Trim(u.Path, "/") == "" {
		u.Path = "/v1/traces"
	}
	return u.String(), nil
}

// tracer is what Start uses: a no-op until Setup installs the exporter.
var tracer atomic.Pointer[trace.Tracer]

// enabled is true while Setup's exporter runs.
var enabled atomic.Bool

// Enabled reports whether this process exports spans (for handlers served outside the main router, which
// add Middleware only then).
func Enabled() bool { return enabled.Load() }

// Setup starts exporting spans as c says, for this process, and returns the function that flushes and stops
// it. With tracing off it does nothing (and stop too).
func Setup(c Config, version string, logger *slog.Logger) (stop func(context.Context) error, err error) {
	if !c.Enabled() {
		return func(context.Context) error { return nil }, nil
	}
	c.SetDefaults()
	endpoint, err := exportURL(c.OTLPEndpoint)
	if err != nil {
		return nil, err
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint), otlptracehttp.WithTimeout(10 * time.Second)}
	if len(c.Headers) > 0 {
		opts = append(opts, otlptracehttp.WithHeaders(c.Headers))
	}
	exp, err := otlptracehttp.New(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("tracing: OTLP exporter for %s: %w", endpoint, err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", c.ServiceName), attribute.String("service.version", version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp), // off the request path: spans queue and go out in batches
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(*c.SampleRatio))),
	)
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		logger.Warn("tracing: export failed", "endpoint", endpoint, "error", err.Error())
	}))
	install(tp)
	enabled.Store(true)
	logger.Info("tracing: exporting spans", "endpoint", endpoint, "sample_ratio", *c.SampleRatio, "service_name", c.ServiceName)
	return func(ctx context.Context) error {
		enabled.Store(false)
		install(noop.NewTracerProvider())
		return tp.Shutdown(ctx) // exports what is still queued
	}, nil
}

// install makes tp the provider of Start (and of OpenTelemetry's global, for libraries).
func install(tp trace.TracerProvider) {
	t := tp.Tracer("github.com/koppelpoort/koppelpoort")
	tracer.Store(&t)
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
}

func init() { install(noop.NewTracerProvider()) }

// Start begins a span named name as a child of the span in ctx. Spans of steps (parse, store transaction)
// are only made inside a sampled trace: a background job's transaction starts none of its own.
func Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !trace.SpanFromContext(ctx).IsRecording() {
		return ctx, trace.SpanFromContext(context.Background()) // a no-op span: the parent is left alone
	}
	return (*tracer.Load()).Start(ctx, name, trace.WithAttributes(attrs...))
}

// StartRoot begins a new trace (a gateway delivery), linked to nothing in ctx.
func StartRoot(ctx context.Context, name string, kind trace.SpanKind, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	return (*tracer.Load()).Start(ctx, name, trace.WithNewRoot(), trace.WithSpanKind(kind), trace.WithAttributes(attrs...))
}

// End ends span, marking it failed when err is not nil — with the error's Go type as error.type, never its
// text: refusals quote the resource URLs of the message, and those name patients.
func End(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "")
		span.SetAttributes(attribute.String("error.type", fmt.Sprintf("%T", err)))
	}
	span.End()
}

// Package http is the HTTP adapter: inbound it accepts POSTed JSON, NDJSON or CSV on a path with bearer or
// Basic auth and answers only after the records are durable; outbound it calls a REST API with the
// transformed fields as JSON body, an Idempotency-Key header, and retries on 5xx, 429 and timeouts.
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/transforms"
)

func init() {
	adapters.Register(adapters.Registration{ID: "inbound.http", Spec: InboundSpec, New: func() any { return new(Inbound) }})
	adapters.Register(adapters.Registration{ID: "outbound.http", Spec: OutboundSpec, New: func() any { return new(Outbound) }})
}

// OutboundSpec is the outbound HTTP adapter's settings.
var OutboundSpec = adapters.Spec{
	Summary: "Call a REST API with the transformed fields as JSON body. 2xx is success; 5xx, 429, timeouts and connection errors are retried with backoff; other 4xx dead-letter at once.",
	Fields: []adapters.Field{
		{Name: "url", Type: adapters.TypeString, Required: true, Description: "URL; {name} is replaced by the (URL-escaped) field name of the transformed record, e.g. https://epd/api/patients/{patient_id}."},
		{Name: "method", Type: adapters.TypeString, Default: "POST", Enum: []string{"POST", "PUT", "PATCH"}, Description: "HTTP method."},
		{Name: "headers", Type: adapters.TypeMap, Description: "Extra request headers; values may use ${ENV} and {field} of the transformed record (e.g. X-Patient: {patient_id})."},
		{Name: "auth", Type: adapters.TypeString, Default: "none", Enum: []string{"none", "bearer", "basic"}, Description: "Authentication scheme."},
		{Name: "token", Type: adapters.TypeSecret, Description: "Bearer token (auth: bearer), usually ${ENV_VAR}."},
		{Name: "username", Type: adapters.TypeString, Description: "User name (auth: basic)."},
		{Name: "password", Type: adapters.TypeSecret, Description: "Password (auth: basic), usually ${ENV_VAR}."},
		{Name: "timeout", Type: adapters.TypeDuration, Default: "30s", Description: "Timeout of one call."},
		{Name: "body", Type: adapters.TypeString, Default: "fields", Enum: []string{"fields", "envelope"}, Description: "fields: the transformed fields; envelope: {route, record_key, idempotency_key, fields, koppeltaal}."},
	},
}

// Outbound calls a REST API.
type Outbound struct {
	URL      string            `yaml:"url"`
	Method   string            `yaml:"method"`
	Headers  map[string]string `yaml:"headers"`
	Auth     string            `yaml:"auth"`
	Token    string            `yaml:"token"`
	Username string            `yaml:"username"`
	Password string            `yaml:"password"`
	Timeout  string            `yaml:"timeout"`
	Body     string            `yaml:"body"`

	client *nethttp.Client
}

var placeholder = regexp.MustCompile(`\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Validate checks the URL and the auth settings.
func (o *Outbound) Validate() error {
	u, err := url.Parse(placeholder.ReplaceAllString(o.URL, "x"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url %q is not an http(s) URL", o.URL)
	}
	return validateAuth(o.Auth, o.Token, o.Username, o.Password)
}

func validateAuth(auth, token, user, pass string) error {
	switch auth {
	case "bearer":
		if token == "" {
			return errors.New("auth bearer needs a token")
		}
	case "basic":
		if user == "" || pass == "" {
			return errors.New("auth basic needs username and password")
		}
	}
	return nil
}

// Provision builds the HTTP client.
func (o *Outbound) Provision(context.Context, adapters.Host) error {
	d, err := time.ParseDuration(o.Timeout)
	if err != nil {
		return fmt.Errorf("timeout: %w", err)
	}
	o.client = &nethttp.Client{Timeout: d}
	return nil
}

// Deliver makes one call.
func (o *Outbound) Deliver(ctx context.Context, d adapters.Delivery) error {
	target, err := expandURL(o.URL, d.Fields)
	if err != nil {
		return err
	}
	var body any = d.Fields
	if o.Body == "envelope" {
		body = map[string]any{"route": d.Route, "record_key": d.RecordKey, "idempotency_key": d.IdempotencyKey, "fields": d.Fields, "koppeltaal": d.Koppeltaal}
	}
	b, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("encode body: %w", err)
	}
	req, err := nethttp.NewRequestWithContext(ctx, o.Method, target, bytes.NewReader(b))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", d.IdempotencyKey)
	for k, v := range o.Headers {
		hv, err := expand(v, d.Fields, func(s string) string { return s })
		if err != nil {
			return fmt.Errorf("header %s: %w", k, err)
		}
		req.Header.Set(k, hv)
	}
	tracing.Inject(ctx, req.Header) // the destination may continue the delivery's trace (traceparent)
	switch o.Auth {
	case "bearer":
		req.Header.Set("Authorization", "Bearer "+o.Token)
	case "basic":
		req.SetBasicAuth(o.Username, o.Password)
	}
	resp, err := o.client.Do(req)
	if err != nil {
		// No answer at all (refused, reset, timeout, DNS): the call may succeed later.
		return adapters.Transient(fmt.Errorf("%s %s: %w", o.Method, redact(target), err))
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return nil
	case resp.StatusCode >= 500 || resp.StatusCode == nethttp.StatusTooManyRequests || resp.StatusCode == nethttp.StatusRequestTimeout:
		return adapters.Transient(fmt.Errorf("%s %s: %s: %s", o.Method, redact(target), resp.Status, strings.TrimSpace(string(snippet))))
	}
	return fmt.Errorf("%s %s: %s: %s", o.Method, redact(target), resp.Status, strings.TrimSpace(string(snippet)))
}

func expandURL(tmpl string, fields map[string]any) (string, error) {
	out, err := expand(tmpl, fields, url.PathEscape)
	if err != nil {
		return "", fmt.Errorf("url: %w", err)
	}
	return out, nil
}

// expand replaces {name} with the field's text, escaped by esc.
func expand(tmpl string, fields map[string]any, esc func(string) string) (string, error) {
	var missing []string
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		name := m[1 : len(m)-1]
		v, ok := fields[name]
		if !ok || v == nil {
			missing = append(missing, name)
			return ""
		}
		return esc(transforms.Text(v))
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("the transformed record has no field %s", strings.Join(missing, ", "))
	}
	return out, nil
}

// redact drops the query string (it may hold tokens) from URLs in errors.
func redact(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// Interface guards.
var (
	_ adapters.Outbound    = (*Outbound)(nil)
	_ adapters.Provisioner = (*Outbound)(nil)
	_ adapters.Validator   = (*Outbound)(nil)
)

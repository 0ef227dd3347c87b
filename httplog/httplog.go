// Package httplog is the HTTP request log (the old server's
// IntegrationMessageLogs, SPEC.md §10.1/§11): one row per request with its
// method, path, query (secret values replaced), caller, status, duration,
// request id and source address, and — only when configured, only for the
// FHIR API — the bodies. Rows are written in batches off the request path,
// queried newest first with a cursor (Query), and removed after
// Config.SuccessDays or Config.FailureDays by the retention job (RemoveExpired).
package httplog

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Config is the `http_log:` section of the configuration file.
type Config struct {
	// Disabled turns the request log off (the slog access log stays).
	Disabled bool `yaml:"disabled"`
	// Bodies keeps request and response bodies of the FHIR API (/FHIR/...), at
	// most MaxBodyBytes each. Off by default: bodies hold patient data. Never
	// kept for OAuth, the console or the Support API (passwords, tokens); no
	// header is ever kept.
	Bodies bool `yaml:"bodies"`
	// MaxBodyBytes cuts a kept body. Default 65536, at most 1 MiB.
	MaxBodyBytes int `yaml:"max_body_bytes"`
	// SuccessDays keeps a successful call (status < 400) this long. Default 7 (SPEC.md §10.1).
	SuccessDays int `yaml:"success_days"`
	// FailureDays keeps a failed call (status >= 400) this long. Default 14 (SPEC.md §10.1).
	FailureDays int `yaml:"failure_days"`
}

// Defaults of Config.
const (
	DefaultSuccessDays  = 7
	DefaultFailureDays  = 14
	DefaultMaxBodyBytes = 64 << 10
	maxMaxBodyBytes     = 1 << 20
	maxDays             = 3660
)

// SetDefaults fills every unset setting with its documented default.
func (c *Config) SetDefaults() {
	if c.SuccessDays == 0 {
		c.SuccessDays = DefaultSuccessDays
	}
	if c.FailureDays == 0 {
		c.FailureDays = DefaultFailureDays
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
}

// Validate reports a setting out of range, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.SuccessDays < 0 || c.SuccessDays > maxDays {
		errs = append(errs, fmt.Errorf("http_log.success_days is %d; it must be between 1 and %d (default %d)", c.SuccessDays, maxDays, DefaultSuccessDays))
	}
	if c.FailureDays < 0 || c.FailureDays > maxDays {
		errs = append(errs, fmt.Errorf("http_log.failure_days is %d; it must be between 1 and %d (default %d)", c.FailureDays, maxDays, DefaultFailureDays))
	}
	if c.MaxBodyBytes < 0 || c.MaxBodyBytes > maxMaxBodyBytes {
		errs = append(errs, fmt.Errorf("http_log.max_body_bytes is %d; it must be between 1 and %d (default %d)", c.MaxBodyBytes, maxMaxBodyBytes, DefaultMaxBodyBytes))
	}
	return errors.Join(errs...)
}

// Caller kinds (the same words as the audit trail's actor kinds).
const (
	KindInstance = "instance" // HTTP Basic as an application instance
	KindBearer   = "bearer"   // an OAuth2 Bearer token; Name is its OAuth client
	KindClient   = "client"   // an OAuth client on Authorize or Token
	KindAdmin    = "admin"    // an administrator (console, Support API)
)

// Caller is who made a request, as far as the server authenticated it.
type Caller struct {
	Kind   string `json:"kind,omitempty"`
	Name   string `json:"name,omitempty"` // instance user name, OAuth client, administrator
	Domain string `json:"domain,omitempty"`
}

// Entry is one logged request.
type Entry struct {
	ID           int64         `json:"id"`
	At           time.Time     `json:"at"` // when the request started
	Method       string        `json:"method"`
	Path         string        `json:"path"`
	Query        string        `json:"query,omitempty"` // secret values replaced by REDACTED
	Caller       Caller        `json:"caller"`
	Status       int           `json:"status"`
	Duration     time.Duration `json:"duration_ns"`
	RequestID    string        `json:"request_id,omitempty"`
	SourceIP     string        `json:"source_ip,omitempty"`
	RequestBody  string        `json:"request_body,omitempty"`
	ResponseBody string        `json:"response_body,omitempty"`
}

// callerSlot is where a handler deep in the router names the caller for the
// request log that wraps it (the context flows down only).
type callerSlot struct {
	mu sync.Mutex
	c  Caller
}

type slotKey struct{}

// Identify names the caller of the request ctx belongs to in its log row (a
// no-op outside a logged request). The authentication of each API calls it.
func Identify(ctx context.Context, c Caller) {
	if s, ok := ctx.Value(slotKey{}).(*callerSlot); ok {
		s.mu.Lock()
		s.c = c
		s.mu.Unlock()
	}
}

// Redacted is what replaces a secret query value.
const Redacted = "REDACTED"

// secretParam reports whether a query parameter may carry a secret: OAuth
// codes, launch ids and activation codes (also inside scope), tokens,
// passwords, client secrets.
func secretParam(key string) bool {
	k := strings.ToLower(key)
	switch k {
	case "code", "launch", "launch_id", "scope", "state", "activation_code":
		return true
	}
	return strings.Contains(k, "token") || strings.Contains(k, "secret") || strings.Contains(k, "password")
}

// redactQuery returns raw with the value of every secret parameter replaced;
// a query that does not parse is dropped whole (it might hide one).
func redactQuery(raw string) string {
	if raw == "" {
		return ""
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		return Redacted
	}
	for k, vs := range q {
		if secretParam(k) {
			for i := range vs {
				vs[i] = Redacted
			}
		}
	}
	return q.Encode()
}

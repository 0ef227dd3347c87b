// Package audit is the audit trail of access to patient data (NEN 7513):
// who (application instance, application, domain, the OAuth client, launch
// user and patient of a Bearer token, an administrator; source address,
// request id), what (post, claim, read, search, ack, launch, token, storage
// read/write, admin actions), whose data and which message or resource, when,
// and with what result.
//
// Records are append-only rows in the store, written in the transaction of
// the action where the action writes (Recorder.InTx), else shortly after it
// (Recorder.Record). A sealer links them into a hash chain after commit
// (Sealer), and Verify checks that chain: a changed, removed or reordered
// record is found and named. Query and Export are the read side the CLI and
// the Support API share.
package audit

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5/middleware"
)

// Actions recorded.
const (
	ActionPost         = "post"
	ActionClaim        = "claim"
	ActionRead         = "read"
	ActionSearch       = "search"
	ActionAck          = "ack"
	ActionLaunch       = "launch"    // a portal launched an application for a user and patient (SSO)
	ActionAuthorize    = "authorize" // an OAuth client turned a launch into an authorization code
	ActionToken        = "token"     // an access token issued (code or refresh) or refused
	ActionStorageRead  = "storage-read"
	ActionStorageWrite = "storage-write"
	ActionStorageDel   = "storage-delete"
	ActionAdmin        = "admin"
)

// Results recorded.
const (
	ResultOK       = "ok"
	ResultDenied   = "denied"    // authenticated, not allowed (403)
	ResultNotFound = "not-found" // nothing there for this caller (404)
	ResultInvalid  = "invalid"   // refused as malformed or conflicting (4xx)
	ResultError    = "error"     // the server failed (5xx)
)

// Actor kinds.
const (
	KindInstance = "instance" // HTTP Basic as an application instance
	KindBearer   = "bearer"   // an OAuth2 Bearer token (launch user and patient known)
	KindClient   = "client"   // an OAuth client on Authorize or Token (launch user and patient known)
	KindAdmin    = "admin"    // an administrator (console, Support API, CLI)
	KindSystem   = "system"   // the server itself
)

// Actor is who acted.
type Actor struct {
	Kind         string `json:"kind"`
	Name         string `json:"name"` // instance user name, administrator user name, or "system"
	Application  string `json:"application,omitempty"`
	Domain       string `json:"domain,omitempty"`
	Client       string `json:"client,omitempty"`        // OAuth client of a Bearer token
	LaunchUser   string `json:"launch_user,omitempty"`   // the user the token was launched for
	TokenPatient string `json:"token_patient,omitempty"` // the patient the token is restricted to
	SourceIP     string `json:"source_ip,omitempty"`
	RequestID    string `json:"request_id,omitempty"`
}

// Event is one record.
type Event struct {
	ID      int64     `json:"id,omitempty"`
	At      time.Time `json:"at"`
	Action  string    `json:"action"`
	Result  string    `json:"result"`
	Status  int       `json:"status,omitempty"` // HTTP status, when there is one
	Actor   Actor     `json:"actor"`
	Patient string    `json:"patient,omitempty"` // whose data
	Object  string    `json:"object,omitempty"`  // MessageHeader/12, Message/7, Other/StorageItem:3, ...
	Detail  string    `json:"detail,omitempty"`  // event code, counts; never content
	Seq     int64     `json:"seq,omitempty"`     // position in the per-record hash chain of a record sealed before migration 0026 (0 otherwise)
}

// ResultOf maps an HTTP status to a result.
func ResultOf(status int) string {
	switch {
	case status == 0 || status < 400:
		return ResultOK
	case status == 401 || status == 403:
		return ResultDenied
	case status == 404:
		return ResultNotFound
	case status < 500:
		return ResultInvalid
	}
	return ResultError
}

type requestKey struct{}

// Request is what the HTTP layer knows of a request: its source and id.
type Request struct {
	SourceIP  string
	RequestID string
}

// RequestFromHTTP is the source and id of r: the TCP peer (as the login
// limiter: X-Forwarded-For is only believed from a trusted proxy, which
// rewrote RemoteAddr already) and the request id of the chi middleware.
func RequestFromHTTP(r *http.Request) Request {
	ip, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		ip = r.RemoteAddr
	}
	return Request{SourceIP: ip, RequestID: middleware.GetReqID(r.Context())}
}

// WithRequest returns ctx carrying r, for the records of the actions it leads to.
func WithRequest(ctx context.Context, r Request) context.Context {
	return context.WithValue(ctx, requestKey{}, r)
}

// RequestOf returns the request WithRequest put in ctx (zero when none).
func RequestOf(ctx context.Context) Request {
	r, _ := ctx.Value(requestKey{}).(Request)
	return r
}

// FromRequest fills the source and request id of a from ctx.
func (a Actor) FromRequest(ctx context.Context) Actor {
	r := RequestOf(ctx)
	a.SourceIP, a.RequestID = r.SourceIP, r.RequestID
	return a
}

// Config is the `audit:` section of the configuration file.
type Config struct {
	// RetentionDays is how long records are kept. Default 1826 (five years).
	RetentionDays int `yaml:"retention_days"`
	// Key keys the hash chain (use ${VAR}); empty: a fixed key (see Options.Key).
	Key string `yaml:"key"`
}

// Validate reports a setting out of range.
func (c Config) Validate() error {
	if c.RetentionDays < 0 {
		return errors.New("audit.retention_days must not be negative")
	}
	return nil
}

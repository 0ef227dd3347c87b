// Package api is the HTTP binding of the Koppeltaal server core: the FHIR
// endpoints under /FHIR/Koppeltaal with XML/JSON content negotiation, HTTP Basic
// authentication and OperationOutcome errors in the client's format.
package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/internal/bodybudget"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// Prefix is where the FHIR API lives; clients drop any other path prefix (CLIENTS.md).
const Prefix = "/FHIR/Koppeltaal"

// TextUnavailable answers a request while the database is unavailable. The
// outcome may be unknown (a connection lost at COMMIT): a POST is to be sent
// again unchanged, which the server recognises when it was stored after all.
const TextUnavailable = "The database is unavailable at the moment; try again in a few seconds. " +
	"Send a message again unchanged: if it was stored after all, the server recognises it and answers as the first time."

// RetryAfterUnavailable is the Retry-After (seconds) of a 503 while the
// database is unavailable: about what a PostgreSQL failover takes.
const RetryAfterUnavailable = 5

// RetryAfterBusy is the Retry-After (seconds) of a 503 while the budget of
// request bodies in flight is taken (koppeltaal.max_body_bytes_in_flight).
const RetryAfterBusy = 2

// Realm is the HTTP Basic realm announced on 401.
const Realm = "Koppeltaal"

// Options configure New.
type Options struct {
	Store  *store.Store
	Config koppeltaal.Config
	Logger *slog.Logger
	// Registerer receives the koppeltaal_* metrics; nil: not registered.
	Registerer prometheus.Registerer
	// MaxBodyBytes overrides Config.MaxBodyBytes when > 0.
	MaxBodyBytes int64
	// SkipApply leaves provisioning to the caller (koppeltaal.Apply); by default New applies Config.
	SkipApply bool
	// Extensions register more routes (and middleware) inside the /FHIR/Koppeltaal
	// route group; they run before the core routes, so they may call r.Use.
	Extensions []func(s *Server, r chi.Router)
	// Bearer verifies "Authorization: Bearer" tokens; nil: only HTTP Basic is accepted.
	Bearer BearerVerifier
	// Limiter throttles failed authentication per source address; nil: no limit.
	Limiter AuthLimiter
	// Audit records every access to patient data; nil: a Recorder on Store with the
	// defaults. Its sealer (audit.Recorder.Run) is the caller's to run.
	Audit *audit.Recorder
}

// BearerVerifier turns an OAuth2 access token into the caller it acts for
// (with Caller.Patient set to the launch patient). An expired token gives a
// *TokenExpiredError; any other refusal koppeltaal.ErrUnauthorized.
type BearerVerifier interface {
	Verify(ctx context.Context, token string) (*koppeltaal.Caller, error)
}

// TokenExpiredError is the refusal of a Bearer token whose lifetime ended (SPEC.md §2.2).
type TokenExpiredError struct {
	Token     string
	ExpiredAt time.Time
}

func (e *TokenExpiredError) Error() string {
	return fmt.Sprintf("Authentication failed: Bearer token %s has expired at %s", tokenPrefix(e.Token),
		e.ExpiredAt.UTC().Format("2006/01/02 15:04:05"))
}

// tokenPrefix shows enough of a token to recognise it, never the whole secret.
func tokenPrefix(t string) string {
	if len(t) > 8 {
		return t[:8] + "..."
	}
	return "..."
}

// AuthLimiter throttles password guessing (internal/loginlimit.Limiter is one).
type AuthLimiter interface {
	// Allow reports whether the password of a login to account from r may be checked now.
	Allow(r *http.Request, account string) bool
	// Failed records a failed login to account from r.
	Failed(r *http.Request, account string)
	// Succeeded records a successful login to account from r.
	Succeeded(r *http.Request, account string)
	// RetryAfter is how long a refused client should wait.
	RetryAfter() time.Duration
}

// ErrThrottled refuses a login under the failed-login limits (see AuthLimiter).
var ErrThrottled = errors.New("koppeltaal: too many failed logins; try again later")

// BasicLogin checks the HTTP Basic credentials of an application instance
// under limit (nil: no limit): the caller, ErrThrottled or
// koppeltaal.ErrUnauthorized. A password this process already verified as
// correct is let in even while the limits refuse others (issue 16 item 2).
func BasicLogin(ctx context.Context, svc *koppeltaal.Service, limit AuthLimiter, r *http.Request, user, pass string) (*koppeltaal.Caller, error) {
	if limit != nil && !limit.Allow(r, user) {
		if c, ok := svc.AuthenticateKnown(ctx, user, pass); ok {
			return c, nil
		}
		return nil, ErrThrottled
	}
	c, err := svc.Authenticate(ctx, user, pass)
	if limit != nil && errors.Is(err, koppeltaal.ErrUnauthorized) {
		limit.Failed(r, user)
	} else if limit != nil && err == nil {
		limit.Succeeded(r, user)
	}
	return c, err
}

// throttled answers a login refused under the failed-login limits.
func (s *Server) throttled(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Retry-After", strconv.Itoa(int(s.limit.RetryAfter().Seconds())))
	s.writeError(w, r, fail(koppeltaal.Throttled, "security", "Too many failed logins to this account or from this address; try again later."))
}

// Server serves the Koppeltaal API.
type Server struct {
	svc    *koppeltaal.Service
	log    *slog.Logger
	cfg    koppeltaal.Config
	ext    []func(s *Server, r chi.Router)
	bearer BearerVerifier
	limit  AuthLimiter
	other  map[string]OtherHandlers // by OtherResourceUsage code; see HandleOther
	routes chi.Routes               // the /FHIR/Koppeltaal group, for Allow headers
	// bodies bounds the bytes of request bodies held at once (readRaw).
	bodies        *bodybudget.Budget
	bodiesRefused prometheus.Counter
}

// New provisions opts.Config into the store (idempotent) and returns the server.
func New(ctx context.Context, opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("koppeltaal api: Options.Store is nil")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes > 0 {
		opts.Config.MaxBodyBytes = opts.MaxBodyBytes
	}
	opts.Config.SetDefaults()
	if opts.Config.PublicURL == "" {
		return nil, errors.New("koppeltaal api: Config.PublicURL is required: the URL clients reach this server at, the base of every link it writes")
	}
	if !opts.SkipApply {
		if _, err := koppeltaal.Apply(ctx, opts.Config, opts.Store, opts.Logger); err != nil {
			return nil, err
		}
	}
	svc, err := koppeltaal.NewService(opts.Store, opts.Config, opts.Logger, koppeltaal.NewMetrics(opts.Registerer))
	if err != nil {
		return nil, err
	}
	if opts.Audit == nil {
		if opts.Audit, err = audit.New(audit.Options{Store: opts.Store, Logger: opts.Logger}); err != nil {
			return nil, err
		}
	}
	svc.SetAuditor(opts.Audit, HTTPStatus)
	s := &Server{svc: svc, log: opts.Logger, cfg: svc.Config(), ext: opts.Extensions, bearer: opts.Bearer, limit: opts.Limiter}
	s.bodies = bodybudget.New(max(s.cfg.MaxBodyBytesInFlight, s.cfg.MaxBodyBytes), 0)
	s.bodiesRefused = prometheus.NewCounter(prometheus.CounterOpts{Name: "koppeltaal_request_bodies_refused_total",
		Help: "Koppeltaal requests answered 503 because their body did not fit in koppeltaal.max_body_bytes_in_flight within a second."})
	if opts.Registerer != nil {
		_ = opts.Registerer.Register(s.bodiesRefused)
		_ = opts.Registerer.Register(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "koppeltaal_request_body_bytes_in_flight",
			Help: "Bytes of Koppeltaal request bodies held now, of koppeltaal.max_body_bytes_in_flight."},
			func() float64 { return float64(s.bodies.Held()) }))
	}
	return s, nil
}

// Service returns the core behind the server.
func (s *Server) Service() *koppeltaal.Service { return s.svc }

// Run runs the background work until ctx ends: the claim sweeper and the
// removal job (SPEC.md §10), each in one process at a time on a shared database.
func (s *Server) Run(ctx context.Context) error {
	done := make(chan error, 1)
	go func() { done <- s.svc.RunRetention(ctx) }()
	err := s.svc.Run(ctx)
	return errors.Join(err, <-done)
}

// Mount registers the Koppeltaal endpoints under /FHIR/Koppeltaal on r.
func (s *Server) Mount(r chi.Router) {
	s.routes = r.Route(Prefix, func(r chi.Router) {
		r.Use(s.recoverer, server.NoStore) // replies carry patient data
		r.Use(s.bodies.Hold)               // a body's bytes stay taken until its handler returns
		// Tolerate "…/Mailbox/" from clients that join base URLs carelessly.
		r.Use(middleware.StripSlashes)
		for _, ext := range s.ext {
			ext(s, r)
		}
		s.mountOther(r)
		r.Get("/metadata", s.metadata)
		r.Post("/Mailbox", s.auth(s.postMailbox))
		r.Get("/MessageHeader/_search", s.auth(s.searchMessageHeaders))
		r.Get("/MessageHeader", s.auth(s.searchMessageHeaders))
		r.Get("/MessageHeader/{id}", s.auth(s.readMessageHeader))
		r.Get("/MessageHeader/{id}/_history/{version}", s.auth(s.readMessageHeader))
		r.Put("/MessageHeader/{id}", s.auth(s.putMessageHeader))
		r.Put("/MessageHeader/{id}/_history/{version}", s.auth(s.putMessageHeader))
		r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.WriteStatus(w, r, http.StatusNotFound) })
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { s.WriteStatus(w, r, http.StatusMethodNotAllowed) })
	})
}

// WriteStatus answers a 404 or 405 under /FHIR/Koppeltaal as an
// OperationOutcome (a 405 with the path's Allow header) — also for methods the
// root router cannot route at all (server.StatusWriter).
func (s *Server) WriteStatus(w http.ResponseWriter, r *http.Request, status int) bool {
	return server.WriteStatusUnder(w, r, status, Prefix, s.routes, "a Koppeltaal", func(status int, detail string) {
		s.writeError(w, r, fail(kindOf(status), "not-supported", "%s", detail))
	})
}

// Handler returns a chi router with only the Koppeltaal API mounted (tests, tools).
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		if !s.WriteStatus(w, r, http.StatusMethodNotAllowed) { // not under /FHIR/Koppeltaal: as chi's 404
			http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		}
	})
	s.Mount(r)
	return r
}

func fail(kind koppeltaal.Kind, code, format string, args ...any) *koppeltaal.Error {
	return koppeltaal.Fail(kind, code, format, args...)
}

// httpStatuses are the statuses the API answers refusals with, by kind.
var httpStatuses = map[koppeltaal.Kind]int{
	koppeltaal.Invalid:           http.StatusBadRequest,
	koppeltaal.Unauthenticated:   http.StatusUnauthorized,
	koppeltaal.Forbidden:         http.StatusForbidden,
	koppeltaal.NotFound:          http.StatusNotFound,
	koppeltaal.NotAllowed:        http.StatusMethodNotAllowed,
	koppeltaal.Conflict:          http.StatusConflict,
	koppeltaal.TooLarge:          http.StatusRequestEntityTooLarge,
	koppeltaal.UnsupportedFormat: http.StatusUnsupportedMediaType,
	koppeltaal.Throttled:         http.StatusTooManyRequests,
	koppeltaal.Internal:          http.StatusInternalServerError,
	koppeltaal.Unavailable:       http.StatusServiceUnavailable,
}

// HTTPStatus is the status a refusal of kind k is answered with (500 for a kind it does not know).
func HTTPStatus(k koppeltaal.Kind) int {
	if s, ok := httpStatuses[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// kindOf is the kind of refusal the router's own 404 and 405 are.
func kindOf(status int) koppeltaal.Kind {
	for k, s := range httpStatuses {
		if s == status {
			return k
		}
	}
	return koppeltaal.Internal
}

// recoverer turns a panic in a Koppeltaal handler into a 500 OperationOutcome
// in the client's format (a JSON client must never get an HTML or text page).
func (s *Server) recoverer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			p := recover()
			if p == nil || p == http.ErrAbortHandler {
				if p != nil {
					panic(p)
				}
				return
			}
			s.log.Error("koppeltaal: handler panic", "method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(p),
				"stack", string(debug.Stack()))
			s.writeError(w, r, fail(koppeltaal.Internal, "exception", "The server could not process the request; the error is logged."))
		}()
		next.ServeHTTP(w, r)
	})
}

type callerKey struct{}

func callerFrom(r *http.Request) *koppeltaal.Caller {
	return r.Context().Value(callerKey{}).(*koppeltaal.Caller)
}

// auth requires HTTP Basic credentials of an application instance or, when a
// BearerVerifier is configured, an OAuth2 Bearer token.
func (s *Server) auth(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// Bearer tokens are 256 random bits: guessing them is hopeless, so they are not
		// throttled (a throttle would only let a flood from a shared address block valid ones).
		if token, ok := bearerToken(r); ok && s.bearer != nil {
			c, err := s.bearer.Verify(r.Context(), token)
			var expired *TokenExpiredError
			switch {
			case errors.As(err, &expired):
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`", error="invalid_token", error_description="The access token expired"`)
				s.writeError(w, r, fail(koppeltaal.Unauthenticated, "expired", "%s", expired.Error()))
				return
			case errors.Is(err, koppeltaal.ErrUnauthorized):
				s.log.Info("koppeltaal: bearer token refused", "remote", r.RemoteAddr)
				w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`", error="invalid_token"`)
				s.writeError(w, r, fail(koppeltaal.Unauthenticated, "security", "Authentication failed: the Bearer token is unknown, revoked or replaced."))
				return
			case err != nil:
				s.writeError(w, r, err)
				return
			}
			next(w, r.WithContext(withCaller(r, c)))
			return
		}
		user, pass, ok := r.BasicAuth()
		if !ok {
			msg := "Authentication required: HTTP Basic with the application-instance credentials."
			if strings.HasPrefix(strings.ToLower(r.Header.Get("Authorization")), "bearer ") {
				msg = "Bearer tokens are not accepted by this server yet; use HTTP Basic with the application-instance credentials."
			}
			s.unauthorized(w, r, msg)
			return
		}
		c, err := BasicLogin(r.Context(), s.svc, s.limit, r, user, pass)
		if errors.Is(err, ErrThrottled) {
			s.log.Info("koppeltaal: login throttled", "username", user, "remote", r.RemoteAddr)
			s.throttled(w, r)
			return
		}
		if errors.Is(err, koppeltaal.ErrUnauthorized) {
			s.log.Info("koppeltaal: authentication failed", "username", user, "remote", r.RemoteAddr)
			s.unauthorized(w, r, "Authentication failed: unknown application instance or wrong password.")
			return
		}
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		next(w, r.WithContext(withCaller(r, c)))
	}
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, bool) {
	authz := r.Header.Get("Authorization")
	if len(authz) < 6 || !strings.EqualFold(authz[:6], "bearer") {
		return "", false
	}
	return strings.TrimSpace(authz[6:]), true
}

// Recheck verifies r's credentials again, for a request that lasts (the live
// stream): it returns the caller they stand for now, or an error once they no
// longer do — an expired (*TokenExpiredError), replaced or revoked token, a
// removed instance, a changed password (koppeltaal.ErrUnauthorized).
func (s *Server) Recheck(r *http.Request) (*koppeltaal.Caller, error) {
	if token, ok := bearerToken(r); ok && s.bearer != nil {
		return s.bearer.Verify(r.Context(), token)
	}
	user, pass, ok := r.BasicAuth()
	if !ok {
		return nil, koppeltaal.ErrUnauthorized
	}
	return s.svc.Authenticate(r.Context(), user, pass)
}

// withCaller is r's context with the authenticated caller, and the request's
// source address (the TCP peer, as the limiter: X-Forwarded-For is not
// trusted) and id for the audit trail.
func withCaller(r *http.Request, c *koppeltaal.Caller) context.Context {
	who := httplog.Caller{Kind: httplog.KindInstance, Name: c.Username, Domain: c.DomainName}
	if c.Patient != "" {
		who.Kind, who.Name = httplog.KindBearer, c.Client
	}
	httplog.Identify(r.Context(), who)
	ctx := audit.WithRequest(r.Context(), audit.RequestFromHTTP(r))
	return context.WithValue(ctx, callerKey{}, c)
}

func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
	s.writeError(w, r, fail(koppeltaal.Unauthenticated, "security", "%s", msg))
}

// root is the server's public URL (Config.PublicURL, scheme://host[:port]).
// Links never come from the request: its Host and X-Forwarded-* headers are
// whatever the client sent (issue 16 item 9).
func (s *Server) root(*http.Request) string { return strings.TrimSuffix(s.cfg.PublicURL, "/") }

func (s *Server) base(r *http.Request) string { return s.root(r) + Prefix }

// responseFormat negotiates the reply format: JSON when _format or Accept asks
// for json, XML (application/xml+fhir) otherwise.
func responseFormat(r *http.Request) koppeltaal.Format {
	if f := strings.ToLower(r.URL.Query().Get("_format")); f != "" {
		if strings.Contains(f, "json") {
			return dstu1.FormatJSON
		}
		return dstu1.FormatXML
	}
	if strings.Contains(strings.ToLower(r.Header.Get("Accept")), "json") {
		return dstu1.FormatJSON
	}
	return dstu1.FormatXML
}

// requestFormat reads the body format from Content-Type, sniffing when it says neither.
func requestFormat(r *http.Request, body []byte) (koppeltaal.Format, error) {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	switch {
	case strings.Contains(ct, "json"):
		return dstu1.FormatJSON, nil
	case strings.Contains(ct, "xml"):
		return dstu1.FormatXML, nil
	}
	if f := dstu1.Sniff(body); f != 0 {
		return f, nil
	}
	return 0, fail(koppeltaal.UnsupportedFormat, "structure", "The body is neither FHIR XML nor FHIR JSON (Content-Type %q).", ct)
}

// readBody reads a Koppeltaal request body (at most koppeltaal.max_body_bytes,
// not empty) and detects its format.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, koppeltaal.Format, error) {
	body, err := s.readRaw(w, r, s.cfg.MaxBodyBytes)
	if err != nil {
		return nil, 0, err
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, 0, fail(koppeltaal.Invalid, "required", "The request body is empty.")
	}
	f, err := requestFormat(r, body)
	return body, f, err
}

// readRaw reads a request body of at most limit bytes (413 beyond), its bytes
// taken from the server's budget of bodies in flight (503 with Retry-After
// when they cannot be had within a second; issue 16 item 3). The bytes stay
// taken until the handler returns (s.bodies.Hold in Mount).
func (s *Server) readRaw(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, fail(koppeltaal.TooLarge, "too-costly", "The body (%d bytes) is larger than the limit of %d bytes.", r.ContentLength, limit)
	}
	body, err := bodybudget.Read(r, http.MaxBytesReader(w, r.Body, limit), r.ContentLength)
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return body, nil
	case errors.Is(err, bodybudget.ErrBusy):
		s.bodiesRefused.Inc()
		s.log.Info("koppeltaal: request body refused, too many bytes in flight", "method", r.Method, "path", r.URL.Path,
			"content_length", r.ContentLength, "in_flight", s.bodies.Held(), "budget", s.bodies.Size())
		// Read the rest without keeping it, so that the client, still sending, gets the answer.
		_, _ = io.Copy(io.Discard, http.MaxBytesReader(w, r.Body, limit))
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterBusy))
		return nil, fail(koppeltaal.Unavailable, "transient", "The server is reading too many large requests at the moment; "+
			"send this one again unchanged in a few seconds.")
	case errors.Is(err, bodybudget.ErrTooLarge):
		return nil, fail(koppeltaal.TooLarge, "too-costly", "The body is larger than the %d bytes of bodies this server reads at once.", s.bodies.Size())
	case errors.As(err, &mbe):
		return nil, fail(koppeltaal.TooLarge, "too-costly", "The body is larger than the limit of %d bytes.", limit)
	default:
		return nil, fail(koppeltaal.Invalid, "structure", "Reading the body failed: %v", err)
	}
}

// Content types of replies. JSON clients need application/json even on errors (CLIENTS.md).
const (
	ContentTypeJSON = "application/json; charset=utf-8"
	ContentTypeXML  = "application/xml+fhir; charset=utf-8"
)

func (s *Server) write(w http.ResponseWriter, r *http.Request, status int, body []byte) {
	if responseFormat(r) == dstu1.FormatJSON {
		w.Header().Set("Content-Type", ContentTypeJSON)
	} else {
		w.Header().Set("Content-Type", ContentTypeXML)
		body = stripXMLDecl(body) // clients check that the reply starts with <feed / <Conformance
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func stripXMLDecl(b []byte) []byte {
	if bytes.HasPrefix(b, []byte("<?xml")) {
		if i := bytes.Index(b, []byte("?>")); i >= 0 {
			return bytes.TrimLeft(b[i+2:], " \r\n\t")
		}
	}
	return b
}

func (s *Server) writeBundle(w http.ResponseWriter, r *http.Request, status int, b *dstu1.Bundle) {
	s.write(w, r, status, koppeltaal.EncodeBundle(b, responseFormat(r)))
}

func (s *Server) writeResource(w http.ResponseWriter, r *http.Request, status int, res *dstu1.Resource) {
	s.write(w, r, status, koppeltaal.EncodeResource(res, responseFormat(r)))
}

// writeError answers err as an OperationOutcome: its own status for a
// *koppeltaal.Error, 500 (logged, details hidden) for anything else.
//
// A database that cannot serve the request now (store.ErrUnavailable: a
// failover, a full disk, a read-only file system) is 503 with Retry-After: the
// same request will work once the database is back.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var ke *koppeltaal.Error
	switch {
	case errors.As(err, &ke):
	case errors.Is(err, store.ErrUnavailable):
		s.log.Warn("koppeltaal: database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterUnavailable))
		ke = fail(koppeltaal.Unavailable, "transient", TextUnavailable)
	default:
		s.log.Error("koppeltaal: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		ke = fail(koppeltaal.Internal, "exception", "The server could not process the request; the error is logged.")
	}
	issues := make([]dstu1.Issue, len(ke.Issues))
	for i, is := range ke.Issues {
		sev := is.Severity
		if sev == "" {
			sev = "error"
		}
		issues[i] = dstu1.Issue{Severity: sev, Type: is.Code, Details: is.Details, Resource: is.Resource, Location: is.Location}
	}
	s.writeResource(w, r, HTTPStatus(ke.Kind), dstu1.NewOperationOutcome("", issues...))
}

func (s *Server) metadata(w http.ResponseWriter, r *http.Request) {
	s.writeResource(w, r, http.StatusOK, s.svc.Conformance(s.root(r)))
}

func (s *Server) postMailbox(w http.ResponseWriter, r *http.Request) {
	body, f, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.svc.Post(r.Context(), callerFrom(r), body, f, s.base(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if res.ValidatedOnly {
		// The ValidateOnly tag's reply is not specified (SPEC.md §4.7 gap): FHIR
		// answers a validation with an OperationOutcome; nothing was processed,
		// so there is no response message with issued versions to return.
		issues := []dstu1.Issue{{Severity: "information", Type: "informational", Details: koppeltaal.TextValidatedOnly}}
		for _, warn := range res.Warnings {
			issues = append(issues, dstu1.Issue{Severity: "warning", Type: "informational", Details: warn})
		}
		s.writeResource(w, r, http.StatusOK, dstu1.NewOperationOutcome("", issues...))
		return
	}
	s.writeBundle(w, r, http.StatusOK, res.Response)
}

// searchMessageHeaders answers GET MessageHeader[/_search]: the claim named query, a read by _id, or a
// search. Parameters the server does not know are ignored (FHIR servers do) and left out of the self link;
// _count and page must be whole numbers from 1.
func (s *Server) searchMessageHeaders(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	c := callerFrom(r)
	base := s.base(r)
	// Spellings clients use: Patient (TD-MSG) or patient, event or Event (TA/ARCH), ProcessingStatus or
	// processingStatus (the Test Game, CLIENTS.md).
	patient, err := oneOf(q, "Patient", "patient")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	event, err := oneOf(q, "event", "Event")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	status, err := oneOf(q, "ProcessingStatus", "processingStatus")
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	count, err := s.countParam(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	page, err := pageParam(q)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	// Messages are filed under the unversioned patient URL.
	patient, _ = dstu1.SplitHistory(patient)
	if named := q.Get("_query"); named != "" {
		if named != "MessageHeader.GetNextNewAndClaim" {
			s.writeError(w, r, fail(koppeltaal.Invalid, "not-supported", "Named query '%s' is not supported; use MessageHeader.GetNextNewAndClaim.", named))
			return
		}
		if status != "" {
			s.writeError(w, r, fail(koppeltaal.Invalid, "invalid", "ProcessingStatus cannot be passed to MessageHeader.GetNextNewAndClaim."))
			return
		}
		b, err := s.svc.Claim(r.Context(), c, koppeltaal.ClaimFilter{Patient: patient, Event: event, IncludeExpired: includeExpired(q)}, base)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeBundle(w, r, http.StatusOK, b)
		return
	}
	if idRef := q.Get("_id"); idRef != "" {
		id, version, err := koppeltaal.ParseEntryRef(idRef)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		_ = version // _id reads the message whatever its current version (the client got the URL from a search)
		b, err := s.svc.Read(r.Context(), c, id, "", base)
		if err != nil {
			s.writeError(w, r, err)
			return
		}
		s.writeBundle(w, r, http.StatusOK, b)
		return
	}
	b, err := s.svc.Search(r.Context(), c, koppeltaal.SearchQuery{Patient: patient, Event: event,
		ProcessingStatus: status, Identifier: q.Get("identifier"), Count: count, Page: page, Summary: true,
		IncludeExpired: includeExpired(q)}, base)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeBundle(w, r, http.StatusOK, b)
}

// oneOf returns the value of a search parameter that clients spell in several ways (names[0] is the
// canonical one, used in errors): one value, or the same value under several spellings.
func oneOf(q url.Values, names ...string) (string, error) {
	v := ""
	for _, n := range names {
		if got := q.Get(n); got != "" {
			if v != "" && got != v {
				return "", fail(koppeltaal.Invalid, "invalid", "The parameter %s is given twice with different values (%s and %s).", names[0], v, got)
			}
			v = got
		}
	}
	return v, nil
}

// maxPage bounds page so that the offset (page-1)·_count stays a small number; no mailbox has that many pages.
const maxPage = 1_000_000_000

// countParam reads _count: absent (0, the default page size) or a whole number from 1. More than the
// server's maximum is read as the maximum, not refused: clients ask for up to 5000 (CLIENTS.md), and a
// number too long for an int is still only large.
func (s *Server) countParam(q url.Values) (int, error) {
	v := q.Get("_count")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange && v[0] != '-' {
		n, err = s.cfg.MaxCount, nil
	}
	if err != nil || n < 1 {
		return 0, fail(koppeltaal.Invalid, "invalid", "The parameter _count must be a whole number from 1 (more than %d is read as %d), not '%s'.",
			s.cfg.MaxCount, s.cfg.MaxCount, v)
	}
	return min(n, s.cfg.MaxCount), nil
}

// pageParam reads page: absent (0, the first page) or a whole number from 1 to maxPage.
func pageParam(q url.Values) (int, error) {
	v := q.Get("page")
	if v == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > maxPage {
		return 0, fail(koppeltaal.Invalid, "invalid", "The parameter page must be a whole number from 1 to %d, not '%s'.", maxPage, v)
	}
	return n, nil
}

// includeExpired reads include-expired=yes (SPEC.md §10.2; true is accepted too).
func includeExpired(q url.Values) bool {
	v := strings.ToLower(q.Get("include-expired"))
	return v == "yes" || v == "true"
}

func (s *Server) readMessageHeader(w http.ResponseWriter, r *http.Request) {
	id, _, err := koppeltaal.ParseEntryRef(chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := s.svc.Read(r.Context(), callerFrom(r), id, chi.URLParam(r, "version"), s.base(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	s.writeBundle(w, r, http.StatusOK, b)
}

func (s *Server) putMessageHeader(w http.ResponseWriter, r *http.Request) {
	id, _, err := koppeltaal.ParseEntryRef(chi.URLParam(r, "id"))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	body, f, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	res, err := s.svc.Acknowledge(r.Context(), callerFrom(r), id, chi.URLParam(r, "version"), body, f, s.base(r))
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Content-Location", res.Location)
	s.writeResource(w, r, http.StatusOK, res.Header)
}

// Exported helpers for extensions (activity definitions, notifications) so that
// their replies look exactly like the core's.

// Auth wraps next with the API's authentication (Basic or Bearer).
func (s *Server) Auth(next http.HandlerFunc) http.HandlerFunc { return s.auth(next) }

// CallerFrom returns the caller authenticated by Auth.
func CallerFrom(r *http.Request) *koppeltaal.Caller { return callerFrom(r) }

// Base is the FHIR base URL as the client sees it.
func (s *Server) Base(r *http.Request) string { return s.base(r) }

// ReadBody reads a request body within the configured limit and detects its format.
func (s *Server) ReadBody(w http.ResponseWriter, r *http.Request) ([]byte, koppeltaal.Format, error) {
	return s.readBody(w, r)
}

// ReadRaw reads a request body of any content of at most limit bytes, within
// the server's budget of bodies in flight, as ReadBody does.
func (s *Server) ReadRaw(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	return s.readRaw(w, r, limit)
}

// WriteError answers err as an OperationOutcome in the negotiated format.
func (s *Server) WriteError(w http.ResponseWriter, r *http.Request, err error) {
	s.writeError(w, r, err)
}

// WriteResource answers one resource in the negotiated format.
func (s *Server) WriteResource(w http.ResponseWriter, r *http.Request, status int, res *dstu1.Resource) {
	s.writeResource(w, r, status, res)
}

// WriteBundle answers a bundle in the negotiated format.
func (s *Server) WriteBundle(w http.ResponseWriter, r *http.Request, status int, b *dstu1.Bundle) {
	s.writeBundle(w, r, status, b)
}

// ResponseFormat is the reply format negotiated from _format and Accept.
func ResponseFormat(r *http.Request) koppeltaal.Format { return responseFormat(r) }

// Interface guard: the root router's 404 and 405 under /FHIR/Koppeltaal are OperationOutcomes.
var _ server.StatusWriter = (*Server)(nil)

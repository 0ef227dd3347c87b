// Package oauth is the Koppeltaal OAuth2 authorization server (SPEC.md §8,
// CLIENTS.md): web Launch and MobileLaunch for portals, Authorize, Token with
// refresh rotation, and verification of the Bearer tokens it issues for the
// FHIR API. Launches, codes and tokens live in the database (only their
// SHA-256 hashes), so several processes on one PostgreSQL share them.
package oauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/internal/loginlimit"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
)

// Prefix is where the OAuth endpoints live, at the root of the host (CLIENTS.md).
const Prefix = "/OAuth2/Koppeltaal"

// GrantedScope is the scope every token carries (CLIENTS.md: "patient/*.read").
const GrantedScope = "patient/*.read"

// RefreshLifetime is how long an unused refresh token stays valid (SPEC.md is silent).
const RefreshLifetime = 30 * 24 * time.Hour

// Options configure New.
type Options struct {
	Store *store.Store
	// Config supplies the applications (OAuth clients) and PublicURL (required).
	Config koppeltaal.Config
	// Service authenticates the portal's application instance on Launch and
	// MobileLaunch; nil: a Service of its own over Store.
	Service *koppeltaal.Service
	Logger  *slog.Logger
	// Limiter throttles password guessing (portals on Launch, client secrets on
	// Token, activation codes on Authorize); nil: one with the default limits.
	Limiter *loginlimit.Limiter
	// Registerer receives the koppeltaal_oauth_* metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Audit records launches, authorizations and tokens (issued and refused);
	// nil: the Service's recorder (Service.Auditor), which may be none.
	Audit *audit.Recorder
}

// Server serves the OAuth endpoints and verifies Bearer tokens.
type Server struct {
	st      *store.Store
	svc     *koppeltaal.Service
	log     *slog.Logger
	limit   *loginlimit.Limiter
	audit   *audit.Recorder // nil: nothing recorded
	routes  chi.Routes      // the /OAuth2/Koppeltaal group, for Allow headers
	public  string
	clients clientCache
	mu      sync.RWMutex
	now     func() time.Time
	issued  *prometheus.CounterVec // tokens issued, by grant_type
	refused *prometheus.CounterVec // refusals, by endpoint and RFC 6749 error
}

// client is an application as an OAuth client.
type client struct {
	koppeltaal.ApplicationConfig
	secretHash string
}

// New returns the authorization server. The OAuth clients are the applications'
// settings in the store (written by koppeltaal.Apply and the Support API), read
// through a cache that a change in this process drops at once and that is at
// most clientsTTL old for changes by another process.
func New(opts Options) (*Server, error) {
	if opts.Store == nil {
		return nil, errors.New("oauth: New needs a Store")
	}
	cfg := opts.Config
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.PublicURL == "" {
		return nil, errors.New("oauth: Config.PublicURL is required: the Launch iss and the OAuth endpoints are under it")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Service == nil {
		svc, err := koppeltaal.NewService(opts.Store, cfg, opts.Logger, nil)
		if err != nil {
			return nil, err
		}
		opts.Service = svc
	}
	if opts.Limiter == nil {
		opts.Limiter = loginlimit.New(loginlimit.Config{})
	}
	if opts.Audit == nil {
		opts.Audit = opts.Service.Auditor()
	}
	s := &Server{st: opts.Store, svc: opts.Service, log: opts.Logger, limit: opts.Limiter, audit: opts.Audit,
		public: strings.TrimSuffix(cfg.PublicURL, "/"), now: time.Now,
		issued: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_oauth_tokens_issued_total",
			Help: "Access tokens issued by the Token endpoint, by grant_type."}, []string{"grant_type"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_oauth_refused_total",
			Help: "OAuth requests refused, by endpoint and RFC 6749 error code."}, []string{"endpoint", "error"})}
	if opts.Registerer != nil {
		_ = opts.Registerer.Register(s.issued)
		_ = opts.Registerer.Register(s.refused)
	}
	return s, nil
}

// SetClock replaces the clock (tests: expired codes and tokens).
func (s *Server) SetClock(now func() time.Time) {
	s.mu.Lock()
	s.now = now
	s.mu.Unlock()
}

func (s *Server) clock() time.Time {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.now()
}

// Limiter returns the failed-login limiter (shared with the FHIR API and the administrators).
func (s *Server) Limiter() *loginlimit.Limiter { return s.limit }

// Mount registers the OAuth endpoints under /OAuth2/Koppeltaal on r. Token is
// also reachable from the configured browser origins (CORS).
func (s *Server) Mount(r chi.Router) {
	s.routes = r.Route(Prefix, func(r chi.Router) {
		r.Use(dynamicCORS(s.Origins), server.NoStore, withAuditRequest) // replies and redirects carry codes and tokens
		r.Get("/Launch", s.launch(kindWeb))
		r.Get("/MobileLaunch", s.launch(kindMobile))
		r.Get("/Authorize", s.authorize)
		r.Get("/Token", s.token)
		r.Post("/Token", s.token)
		r.NotFound(func(w http.ResponseWriter, r *http.Request) { s.WriteStatus(w, r, http.StatusNotFound) })
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) { s.WriteStatus(w, r, http.StatusMethodNotAllowed) })
	})
}

// WriteStatus answers a 404 or 405 under /OAuth2/Koppeltaal as an RFC 6749
// error object (a 405 with the Allow header) — also for methods the root
// router cannot route at all (server.StatusWriter).
func (s *Server) WriteStatus(w http.ResponseWriter, r *http.Request, status int) bool {
	return server.WriteStatusUnder(w, r, status, Prefix, s.routes, "an OAuth", func(status int, detail string) {
		oauthError(w, status, "invalid_request", detail)
	})
}

// root is the server's public URL (Config.PublicURL), never the request's Host.
func (s *Server) root(*http.Request) string { return s.public }

// hash is how launches, codes and tokens are stored: hex SHA-256. They are
// random with at least 122 bits, so a plain hash is enough (no salt or KDF).
func hash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func randomToken() string {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand does not fail on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// activationAlphabet has no look-alike characters (0/O, 1/I/L): codes are typed by people.
const activationAlphabet = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"

// activationCode is 10 characters (~49 bits): typed by a person, single use, rate limited.
func activationCode() string {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	out := make([]byte, len(b))
	for i, v := range b {
		out[i] = activationAlphabet[int(v)%len(activationAlphabet)]
	}
	return string(out)
}

// oauthError writes an RFC 6749 §5.2 error object.
func oauthError(w http.ResponseWriter, status int, code, desc string) {
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, _ := json.Marshal(v)
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// checkSecret compares a presented client secret with the stored hash; an
// unknown client costs the same as a known one.
func (c *client) checkSecret(secret string) bool {
	if c == nil || c.secretHash == "" {
		_ = koppeltaal.CheckPassword(dummyHash(), secret)
		return false
	}
	return koppeltaal.CheckPassword(c.secretHash, secret)
}

var dummyHash = sync.OnceValue(func() string {
	h, _ := koppeltaal.HashPassword(randomToken())
	return h
})

// equal compares two strings in constant time (for values that are not hashed).
func equal(a, b string) bool { return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1 }

const (
	kindWeb    = "web"
	kindMobile = "mobile"
)

// launchRow is a stored launch.
type launchRow struct {
	ID               int64         `db:"id"`
	Kind             string        `db:"kind"`
	ClientID         string        `db:"client_id"`
	InstanceID       int64         `db:"instance_id"`
	PortalInstanceID int64         `db:"portal_instance_id"`
	Patient          string        `db:"patient"`
	User             string        `db:"user_ref"`
	Resource         string        `db:"resource"`
	Intent           string        `db:"intent"`
	ExpiresAt        int64         `db:"expires_at"`
	UsedAt           sql.NullInt64 `db:"used_at"`
}

const launchCols = "id, kind, client_id, instance_id, portal_instance_id, patient, user_ref, resource, intent, expires_at, used_at"

// launch handles Launch (web: 302 to the launch URL) and MobileLaunch (JSON activation code).
// The portal authenticates with its application-instance credentials.
func (s *Server) launch(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="Koppeltaal"`)
			oauthError(w, http.StatusUnauthorized, "invalid_client", "the portal authenticates with HTTP Basic (its application-instance credentials)")
			return
		}
		portal, err := api.BasicLogin(r.Context(), s.svc, s.limit, r, user, pass)
		if errors.Is(err, api.ErrThrottled) {
			s.tooMany(w, "launch", "invalid_client")
			return
		}
		if errors.Is(err, koppeltaal.ErrUnauthorized) {
			s.recordRefusal(r.Context(), audit.Event{Action: audit.ActionLaunch, Status: http.StatusUnauthorized,
				Actor: audit.Actor{Kind: audit.KindInstance, Name: user}.FromRequest(r.Context()), Detail: "invalid_client"})
			s.refused.WithLabelValues("launch", "invalid_client").Inc()
			s.log.Info("oauth: launch authentication failed", "username", user, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Basic realm="Koppeltaal"`)
			oauthError(w, http.StatusUnauthorized, "invalid_client", "unknown application instance or wrong password")
			return
		}
		if err != nil {
			s.serverError(w, "launch", err)
			return
		}
		httplog.Identify(r.Context(), httplog.Caller{Kind: httplog.KindInstance, Name: portal.Username, Domain: portal.DomainName})
		q := r.URL.Query()
		patient := q.Get("patient")
		if patient == "" {
			patient = q.Get("Patient") // ARCH/TA spelling
		}
		res, err := s.StartLaunch(r.Context(), portal, LaunchRequest{Kind: kind, ClientID: q.Get("client_id"), Patient: patient,
			User: q.Get("user"), Resource: q.Get("resource"), Intent: q.Get("intent")}, s.root(r))
		var le *LaunchError
		if errors.As(err, &le) {
			oauthError(w, le.Status, le.Code, le.Description)
			return
		}
		if err != nil {
			s.serverError(w, "launch", err)
			return
		}
		if kind == kindMobile {
			writeJSON(w, http.StatusOK, map[string]any{"activation_code": res.ActivationCode, "expires_in": res.ExpiresInDays})
			return
		}
		http.Redirect(w, r, res.Location, http.StatusFound)
	}
}

// Launch kinds of LaunchRequest.
const (
	KindWeb    = kindWeb
	KindMobile = kindMobile
)

// LaunchRequest is what a portal asks Launch or MobileLaunch for.
type LaunchRequest struct {
	Kind     string // KindWeb or KindMobile
	ClientID string // the application to launch
	Patient  string // the Patient URL
	User     string // the user's URL (the patient or a practitioner)
	Resource string // the CarePlan activity identifier
	Intent   string
}

// LaunchResult is a created launch: the URL to send the browser to (web) or the activation code (mobile).
type LaunchResult struct {
	Location       string
	ActivationCode string
	ExpiresInDays  int
}

// LaunchError is a launch refused with an RFC 6749 error.
type LaunchError struct {
	Status      int
	Code        string
	Description string
}

func (e *LaunchError) Error() string { return e.Code + ": " + e.Description }

// StartLaunch creates a launch for portal (an authenticated instance) as the
// Launch and MobileLaunch endpoints do; root is the scheme://host the launch's
// iss names. The console's Test Portal calls it in process.
func (s *Server) StartLaunch(ctx context.Context, portal *koppeltaal.Caller, req LaunchRequest, root string) (LaunchResult, error) {
	actor := portal.Actor(ctx)
	actor.Client, actor.LaunchUser = req.ClientID, req.User
	res, err := s.startLaunch(ctx, portal, actor, req, root)
	var le *LaunchError
	if errors.As(err, &le) {
		s.recordRefusal(ctx, audit.Event{Action: audit.ActionLaunch, Status: le.Status, Actor: actor,
			Patient: req.Patient, Detail: req.Kind + " " + req.ClientID + ": " + le.Code})
	}
	return res, err
}

func (s *Server) startLaunch(ctx context.Context, portal *koppeltaal.Caller, actor audit.Actor, req LaunchRequest, root string) (LaunchResult, error) {
	var res LaunchResult
	kind, clientID, patient := req.Kind, req.ClientID, req.Patient
	c, err := s.lookup(clientID)
	if err != nil {
		return res, err
	}
	switch {
	case clientID == "":
		return res, &LaunchError{http.StatusBadRequest, "invalid_request", "client_id (the application to launch) is required"}
	case c == nil:
		return res, &LaunchError{http.StatusBadRequest, "invalid_request", fmt.Sprintf("application %q is not registered on this server", clientID)}
	case kind == kindWeb && c.LaunchURL == "":
		return res, &LaunchError{http.StatusBadRequest, "unauthorized_client", fmt.Sprintf("application %q has no launch_url; it cannot be launched on the web", clientID)}
	case patient == "":
		return res, &LaunchError{http.StatusBadRequest, "invalid_request", "patient (the Patient URL) is required"}
	}
	patient, _ = splitHistory(patient)
	now := s.clock()
	var secret string
	var expires time.Time
	if kind == kindWeb {
		secret, expires = uuid.NewString(), now.Add(c.LaunchLifetime)
	} else {
		secret, expires = activationCode(), now.Add(time.Duration(c.ActivationCodeLifetimeDays)*24*time.Hour)
	}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		var inst struct {
			ID           int64  `db:"id"`
			PasswordHash string `db:"password_hash"`
		}
		err := tx.Get(ctx, &inst, `SELECT i.id, i.password_hash FROM app_instances i
			JOIN applications a ON a.id = i.application_id WHERE i.domain_id = ? AND a.ident = ?`, portal.DomainID, clientID)
		if errors.Is(err, sql.ErrNoRows) || (err == nil && (store.Instance{PasswordHash: inst.PasswordHash}).Disabled()) {
			return errNoInstance // a removed instance (decision 17) cannot be launched
		}
		if err != nil {
			return fmt.Errorf("look up instance of %s: %w", clientID, err)
		}
		id, err := tx.InsertID(ctx, `INSERT INTO oauth_launches (launch_hash, kind, client_id, instance_id,
			portal_instance_id, patient, user_ref, resource, intent, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, hash(secret), kind, clientID, inst.ID, portal.ID,
			patient, req.User, req.Resource, req.Intent, expires.UnixMicro(), now.UnixMicro())
		if err != nil {
			return fmt.Errorf("store launch: %w", err)
		}
		return s.recordInTx(ctx, tx, audit.Event{Action: audit.ActionLaunch, Actor: actor, Patient: patient,
			Object: launchObject(id), Detail: kind + " " + clientID})
	})
	if errors.Is(err, errNoInstance) {
		return res, &LaunchError{http.StatusBadRequest, "invalid_request", fmt.Sprintf("application %q has no instance in domain %q", clientID, portal.DomainName)}
	}
	if err != nil {
		return res, err
	}
	s.log.Info("oauth: launch created", "kind", kind, "client_id", clientID, "portal", portal.Username, "domain", portal.DomainName)
	if kind == kindMobile {
		return LaunchResult{ActivationCode: secret, ExpiresInDays: c.ActivationCodeLifetimeDays}, nil
	}
	v := url.Values{}
	v.Set("iss", root+api.Prefix)
	v.Set("launch", secret)
	v.Set("launch_id", secret)
	v.Set("application_id", clientID)
	return LaunchResult{Location: addQuery(c.LaunchURL, v)}, nil
}

var errNoInstance = errors.New("oauth: application has no instance in the domain")

// instancesEnabled refuses a launch (and the codes and tokens that come from
// it) once the launched instance or the portal instance that asked for it was
// removed from the configuration (decision 17, issue 16 item 7). It returns
// the launched instance.
func instancesEnabled(ctx context.Context, tx *store.Tx, l launchRow) (store.Instance, error) {
	var launched store.Instance
	for _, id := range []int64{l.InstanceID, l.PortalInstanceID} {
		in, err := tx.InstanceByID(ctx, id)
		if err != nil {
			return launched, fmt.Errorf("read instance %d of launch %d: %w", id, l.ID, err)
		}
		if in.Disabled() {
			return launched, errGrant("the application instance " + in.Username + " was removed from this server")
		}
		if id == l.InstanceID {
			launched = in
		}
	}
	return launched, nil
}

// addQuery appends v to the query of u (which may already have one).
func addQuery(u string, v url.Values) string {
	sep := "?"
	if strings.Contains(u, "?") {
		sep = "&"
	}
	return u + sep + v.Encode()
}

func splitHistory(u string) (string, string) {
	if i := strings.Index(u, "/_history/"); i >= 0 {
		return u[:i], u[i+len("/_history/"):]
	}
	return u, ""
}

// tooMany answers a request refused under the failed-login limits.
func (s *Server) tooMany(w http.ResponseWriter, endpoint, code string) {
	s.refused.WithLabelValues(endpoint, "throttled").Inc()
	w.Header().Set("Retry-After", strconv.Itoa(int(s.limit.RetryAfter().Seconds())))
	oauthError(w, http.StatusTooManyRequests, code, "too many failed logins to this account or from this address; try again later")
}

// serverError answers an error that is not the client's: 503 with
// Retry-After (error temporarily_unavailable, RFC 6749 §4.1.2.1) while the
// database is unavailable (store.ErrUnavailable: a failover, a full disk), 500
// otherwise.
func (s *Server) serverError(w http.ResponseWriter, what string, err error) {
	if errors.Is(err, store.ErrUnavailable) {
		s.log.Warn("oauth: "+what+": database unavailable", "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(api.RetryAfterUnavailable))
		oauthError(w, http.StatusServiceUnavailable, "temporarily_unavailable",
			"the database is unavailable at the moment; try again in a few seconds")
		return
	}
	s.log.Error("oauth: "+what+" failed", "err", err)
	oauthError(w, http.StatusInternalServerError, "server_error", "the server could not process the request; the error is logged")
}

// parseScope finds the launch id in a scope such as "patient/*.read launch:<id>".
func parseScope(scope string) (launch string, ok bool) {
	for _, f := range strings.Fields(scope) {
		if strings.HasPrefix(f, "launch:") {
			return strings.TrimPrefix(f, "launch:"), true
		}
	}
	return "", false
}

// authorize handles Authorize (SPEC.md §8.2 step 5, §8.3 step 4). No login
// page: the launch in the scope is the authorization. Errors about the client
// or redirect_uri are answered directly (never redirected); the others are
// redirected to the registered redirect_uri as RFC 6749 §4.1.2.1 says.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	clientID, redirect, state := q.Get("client_id"), q.Get("redirect_uri"), q.Get("state")
	c, err := s.lookup(clientID)
	if err != nil {
		s.serverError(w, "authorize", err)
		return
	}
	if c == nil {
		oauthError(w, http.StatusBadRequest, "invalid_client", fmt.Sprintf("client_id %q is not registered", clientID))
		return
	}
	httplog.Identify(r.Context(), httplog.Caller{Kind: httplog.KindClient, Name: clientID})
	// RFC 6749 §4.1.3: Token must repeat the redirect_uri when Authorize had one.
	given := redirect
	if redirect == "" && len(c.RedirectURIs) == 1 {
		redirect = c.RedirectURIs[0]
	} else if !registered(c.RedirectURIs, redirect) {
		oauthError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("redirect_uri %q is not registered for client %q", redirect, clientID))
		return
	}
	fail := func(code, desc string) {
		v := url.Values{"error": {code}, "error_description": {desc}}
		if state != "" {
			v.Set("state", state)
		}
		http.Redirect(w, r, addQuery(redirect, v), http.StatusFound)
	}
	if q.Get("response_type") != "code" {
		fail("unsupported_response_type", "response_type must be code")
		return
	}
	launch, ok := parseScope(q.Get("scope"))
	if !ok || launch == "" {
		fail("invalid_scope", "the scope must hold launch:<launch id or activation code>")
		return
	}
	// Activation codes are typed by people and have ~49 bits: guessing them is
	// throttled per address. Web launch ids (UUIDs, 122 bits) are not worth guessing.
	guessable := uuid.Validate(launch) != nil
	if guessable && !s.limit.Allow(r, "") {
		s.tooMany(w, "authorize", "invalid_request")
		return
	}
	now := s.clock()
	code := uuid.NewString()
	var l launchRow
	var domain string
	err = s.st.Update(r.Context(), func(tx *store.Tx) error {
		err := tx.Get(r.Context(), &l, "SELECT "+launchCols+" FROM oauth_launches WHERE launch_hash = ?", hash(launch))
		if errors.Is(err, sql.ErrNoRows) {
			if guessable {
				s.limit.Failed(r, "")
			}
			return errGrant("unknown launch")
		}
		if err != nil {
			return fmt.Errorf("look up launch: %w", err)
		}
		switch {
		case l.ClientID != clientID:
			return errGrant("the launch is for another application")
		case l.UsedAt.Valid:
			return errGrant("the launch was already used")
		case now.UnixMicro() >= l.ExpiresAt:
			return errGrant("the launch has expired")
		}
		in, err := instancesEnabled(r.Context(), tx, l)
		if err != nil {
			return err
		}
		domain = in.DomainName
		// Single use, also under concurrency: only the first UPDATE matches.
		res, err := tx.Exec(r.Context(), "UPDATE oauth_launches SET used_at = ? WHERE id = ? AND used_at IS NULL", now.UnixMicro(), l.ID)
		if err != nil {
			return fmt.Errorf("use launch: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errGrant("the launch was already used")
		}
		_, err = tx.InsertID(r.Context(), `INSERT INTO oauth_codes (code_hash, launch_id, client_id, redirect_uri, scope,
			expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`, hash(code), l.ID, clientID, given, GrantedScope,
			now.Add(c.CodeLifetime).UnixMicro(), now.UnixMicro())
		if err != nil {
			return fmt.Errorf("store code: %w", err)
		}
		return s.recordInTx(r.Context(), tx, audit.Event{Action: audit.ActionAuthorize, Actor: clientActor(r.Context(), clientID, domain, l),
			Patient: l.Patient, Object: launchObject(l.ID), Detail: l.Kind})
	})
	var ge errGrant
	if errors.As(err, &ge) {
		// l is the launch when it was found (its patient is whose data was asked for).
		ev := audit.Event{Action: audit.ActionAuthorize, Result: audit.ResultDenied, Status: http.StatusFound,
			Actor: clientActor(r.Context(), clientID, domain, l), Patient: l.Patient, Detail: string(ge)}
		if l.ID != 0 {
			ev.Object = launchObject(l.ID)
		}
		if l.Kind == kindMobile {
			ev.Status = http.StatusBadRequest
		}
		s.recordRefusal(r.Context(), ev)
		s.refused.WithLabelValues("authorize", "access_denied").Inc()
		s.log.Info("oauth: authorize refused", "client_id", clientID, "reason", string(ge))
		if l.Kind == kindMobile {
			oauthError(w, http.StatusBadRequest, "invalid_grant", string(ge))
			return
		}
		fail("access_denied", string(ge))
		return
	}
	if err != nil {
		s.serverError(w, "authorize", err)
		return
	}
	if l.Kind == kindMobile {
		writeJSON(w, http.StatusOK, map[string]string{"authorization_code": code})
		return
	}
	v := url.Values{"code": {code}}
	if state != "" {
		v.Set("state", state)
	}
	http.Redirect(w, r, addQuery(redirect, v), http.StatusFound)
}

type errGrant string

func (e errGrant) Error() string { return string(e) }

func registered(list []string, u string) bool {
	found := false
	for _, v := range list {
		if equal(v, u) {
			found = true
		}
	}
	return found && u != ""
}

// tokenRow is a stored token with its launch context.
type tokenRow struct {
	ID               int64         `db:"id"`
	Chain            string        `db:"chain"`
	LaunchID         int64         `db:"launch_id"`
	ClientID         string        `db:"client_id"`
	InstanceID       int64         `db:"instance_id"`
	Scope            string        `db:"scope"`
	AccessExpiresAt  int64         `db:"access_expires_at"`
	RefreshExpiresAt int64         `db:"refresh_expires_at"`
	RotatedAt        sql.NullInt64 `db:"rotated_at"`
	RevokedAt        sql.NullInt64 `db:"revoked_at"`
}

const tokenCols = "id, chain, launch_id, client_id, instance_id, scope, access_expires_at, refresh_expires_at, rotated_at, revoked_at"

// token handles Token for grant_type authorization_code and refresh_token,
// by GET (the JS Test Game, the Python connector) or POST (form).
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "the form cannot be parsed: "+err.Error())
		return
	}
	p := r.Form
	for _, k := range []string{"grant_type", "code", "refresh_token", "redirect_uri", "client_id"} {
		if len(p[k]) > 1 {
			oauthError(w, http.StatusBadRequest, "invalid_request", k+" is repeated")
			return
		}
	}
	// Client authentication: Basic (confidential), client_secret in the form, or none (public clients).
	clientID, secret, basic := r.BasicAuth()
	if basic {
		if id, err := url.QueryUnescape(clientID); err == nil {
			clientID = id
		}
		if sec, err := url.QueryUnescape(secret); err == nil {
			secret = sec
		}
		if p.Get("client_id") != "" && p.Get("client_id") != clientID {
			oauthError(w, http.StatusBadRequest, "invalid_request", "client_id in the form differs from the Basic credentials")
			return
		}
	} else {
		clientID, secret = p.Get("client_id"), p.Get("client_secret")
	}
	c, err := s.lookup(clientID)
	if err != nil {
		s.serverError(w, "token", err)
		return
	}
	if c != nil {
		httplog.Identify(r.Context(), httplog.Caller{Kind: httplog.KindClient, Name: clientID})
	}
	authenticated := false
	if basic && secret == "" && c != nil && c.PublicClient {
		basic = false // a public client that sends "client_id:" in Basic: no secret to check
	}
	if basic || secret != "" {
		// Codes and refresh tokens are 122 to 256 random bits; what is throttled is guessing a client secret.
		if !s.limit.Allow(r, clientID) {
			s.tooMany(w, "token", "invalid_client")
			return
		}
		if !c.checkSecret(secret) {
			s.limit.Failed(r, clientID)
			s.recordRefusal(r.Context(), audit.Event{Action: audit.ActionToken, Status: http.StatusUnauthorized,
				Actor: clientActor(r.Context(), clientID, "", launchRow{}), Detail: grantName(p.Get("grant_type")) + ": client authentication failed"})
			s.refused.WithLabelValues("token", "invalid_client").Inc()
			s.log.Info("oauth: client authentication failed", "client_id", clientID, "remote", r.RemoteAddr)
			if basic {
				w.Header().Set("WWW-Authenticate", `Basic realm="Koppeltaal"`)
			}
			oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
			return
		}
		s.limit.Succeeded(r, clientID)
		authenticated = true
	}
	switch gt := p.Get("grant_type"); gt {
	case "authorization_code":
		s.tokenFromCode(w, r, c, clientID, authenticated)
	case "refresh_token":
		s.tokenFromRefresh(w, r, c, clientID, authenticated)
	case "":
		oauthError(w, http.StatusBadRequest, "invalid_request", "grant_type is required")
	default:
		oauthError(w, http.StatusBadRequest, "unsupported_grant_type", fmt.Sprintf("grant_type %q is not supported", gt))
	}
}

// grantName is grant_type as the audit trail records it (never what a client made up).
func grantName(gt string) string {
	if gt == "authorization_code" || gt == "refresh_token" {
		return gt
	}
	return "unsupported grant_type"
}

// publicOK decides whether an unauthenticated request may use a grant of client c.
func publicOK(c *client, authenticated bool) bool {
	return authenticated || (c != nil && c.PublicClient)
}

func (s *Server) tokenFromCode(w http.ResponseWriter, r *http.Request, c *client, clientID string, authenticated bool) {
	p := r.Form
	code := p.Get("code")
	if code == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "code is required")
		return
	}
	now := s.clock()
	var resp map[string]any
	err := s.st.Update(r.Context(), func(tx *store.Tx) error {
		var row struct {
			ID          int64         `db:"id"`
			LaunchID    int64         `db:"launch_id"`
			ClientID    string        `db:"client_id"`
			RedirectURI string        `db:"redirect_uri"`
			Scope       string        `db:"scope"`
			ExpiresAt   int64         `db:"expires_at"`
			UsedAt      sql.NullInt64 `db:"used_at"`
		}
		err := tx.Get(r.Context(), &row, `SELECT id, launch_id, client_id, redirect_uri, scope, expires_at, used_at
			FROM oauth_codes WHERE code_hash = ?`, hash(code))
		if errors.Is(err, sql.ErrNoRows) {
			return errGrant("the authorization code is unknown")
		}
		if err != nil {
			return fmt.Errorf("look up code: %w", err)
		}
		if clientID == "" {
			clientID = row.ClientID
			if c, err = s.lookup(clientID); err != nil {
				return err
			}
		}
		switch {
		case row.ClientID != clientID:
			return errGrant("the authorization code was issued to another client")
		case !publicOK(c, authenticated):
			return errClient("client authentication is required for this client (it is not a public client)")
		case row.UsedAt.Valid:
			// RFC 6749 §4.1.2: a replayed code revokes what it produced (committed by revokeFor).
			return errRevoke("the authorization code was already used; the tokens issued for it are revoked")
		case now.UnixMicro() >= row.ExpiresAt:
			return errGrant("the authorization code has expired")
		case row.RedirectURI != "" && !p.Has("redirect_uri"):
			return errGrant("redirect_uri is required: the authorization request had one (RFC 6749 §4.1.3)")
		case row.RedirectURI != "" && p.Get("redirect_uri") != row.RedirectURI:
			return errGrant("redirect_uri does not match the one used on Authorize")
		case row.RedirectURI == "" && p.Has("redirect_uri") && !registered(c.RedirectURIs, p.Get("redirect_uri")):
			return errGrant("redirect_uri is not registered for this client")
		}
		res, err := tx.Exec(r.Context(), "UPDATE oauth_codes SET used_at = ? WHERE id = ? AND used_at IS NULL", now.UnixMicro(), row.ID)
		if err != nil {
			return fmt.Errorf("use code: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errGrant("the authorization code was already used")
		}
		resp, err = s.issue(r.Context(), tx, c, "authorization_code", row.LaunchID, store.ChainOfCode(row.ID), now)
		return err
	})
	var rv errRevoke
	if errors.As(err, &rv) {
		// The transaction rolled back with the error; commit the revocation on its own.
		err = s.revokeFor(r.Context(), "", code, now)
		if err == nil {
			err = errGrant(string(rv))
		}
	}
	s.finishToken(w, r, clientID, "authorization_code", resp, err)
}

type errClient string

func (e errClient) Error() string { return string(e) }

// errRevoke is an invalid_grant whose side effect (revoking a chain) must be committed.
type errRevoke string

func (e errRevoke) Error() string { return string(e) }

func (s *Server) finishToken(w http.ResponseWriter, r *http.Request, clientID, grant string, resp map[string]any, err error) {
	var ge errGrant
	var ce errClient
	refusal := func(status int, reason string) {
		s.recordRefusal(r.Context(), audit.Event{Action: audit.ActionToken, Status: status,
			Actor: clientActor(r.Context(), clientID, "", launchRow{}), Detail: grant + ": " + reason})
	}
	switch {
	case errors.As(err, &ge):
		refusal(http.StatusBadRequest, string(ge))
		s.refused.WithLabelValues("token", "invalid_grant").Inc()
		s.log.Info("oauth: token refused", "client_id", clientID, "grant_type", grant, "reason", string(ge))
		oauthError(w, http.StatusBadRequest, "invalid_grant", string(ge))
	case errors.As(err, &ce):
		refusal(http.StatusUnauthorized, string(ce))
		s.refused.WithLabelValues("token", "invalid_client").Inc()
		s.log.Info("oauth: token refused", "client_id", clientID, "grant_type", grant, "reason", string(ce))
		oauthError(w, http.StatusUnauthorized, "invalid_client", string(ce))
	case err != nil:
		s.serverError(w, "token", err)
	default:
		s.issued.WithLabelValues(grant).Inc()
		s.log.Info("oauth: token issued", "client_id", clientID, "grant_type", grant)
		writeJSON(w, http.StatusOK, resp)
	}
}

// issue stores a new token pair for launch launchID in chain and returns the
// response fields of CLIENTS.md.
func (s *Server) issue(ctx context.Context, tx *store.Tx, c *client, grant string, launchID int64, chain string, now time.Time) (map[string]any, error) {
	var l launchRow
	if err := tx.Get(ctx, &l, "SELECT "+launchCols+" FROM oauth_launches WHERE id = ?", launchID); err != nil {
		return nil, fmt.Errorf("read launch %d: %w", launchID, err)
	}
	in, err := instancesEnabled(ctx, tx, l)
	if err != nil {
		return nil, err
	}
	domain := in.DomainName
	access := randomToken()
	var refresh any // NULL when the client gets no refresh token
	refreshExp := int64(0)
	resp := map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": int(c.TokenLifetime / time.Second),
		"scope": GrantedScope, "domain": domain, "patient": l.Patient, "user": l.User, "resource": l.Resource,
		"intent": l.Intent,
	}
	if c.RefreshTokens {
		rt := randomToken()
		refresh, refreshExp = hash(rt), now.Add(RefreshLifetime).UnixMicro()
		resp["refresh_token"] = rt
	}
	id, err := tx.InsertID(ctx, `INSERT INTO oauth_tokens (access_hash, refresh_hash, chain, launch_id, client_id, instance_id,
		scope, access_expires_at, refresh_expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		hash(access), refresh, chain, l.ID, l.ClientID, l.InstanceID, GrantedScope,
		now.Add(c.TokenLifetime).UnixMicro(), refreshExp, now.UnixMicro())
	if err != nil {
		return nil, fmt.Errorf("store token: %w", err)
	}
	err = s.recordInTx(ctx, tx, audit.Event{Action: audit.ActionToken, Actor: clientActor(ctx, l.ClientID, domain, l),
		Patient: l.Patient, Object: fmt.Sprintf("Token/%d", id), Detail: grant})
	return resp, err
}

func (s *Server) tokenFromRefresh(w http.ResponseWriter, r *http.Request, c *client, clientID string, authenticated bool) {
	rt := r.Form.Get("refresh_token")
	if rt == "" {
		oauthError(w, http.StatusBadRequest, "invalid_request", "refresh_token is required")
		return
	}
	now := s.clock()
	var resp map[string]any
	err := s.st.Update(r.Context(), func(tx *store.Tx) error {
		var t tokenRow
		err := tx.Get(r.Context(), &t, "SELECT "+tokenCols+" FROM oauth_tokens WHERE refresh_hash = ?", hash(rt))
		if errors.Is(err, sql.ErrNoRows) {
			return errGrant("the refresh token is unknown")
		}
		if err != nil {
			return fmt.Errorf("look up refresh token: %w", err)
		}
		if clientID == "" {
			clientID = t.ClientID
			if c, err = s.lookup(clientID); err != nil {
				return err
			}
		}
		switch {
		case t.ClientID != clientID:
			return errGrant("the refresh token was issued to another client")
		case !publicOK(c, authenticated):
			return errClient("client authentication is required for this client (it is not a public client)")
		case t.RevokedAt.Valid:
			return errGrant("the refresh token is revoked")
		case t.RotatedAt.Valid:
			// Reuse of a rotated refresh token: someone else may hold it. Revoke the whole chain (revokeFor).
			return errRevoke("the refresh token was already used; all tokens of this grant are revoked")
		case now.UnixMicro() >= t.RefreshExpiresAt:
			return errGrant("the refresh token has expired")
		}
		res, err := tx.Exec(r.Context(), "UPDATE oauth_tokens SET rotated_at = ? WHERE id = ? AND rotated_at IS NULL AND revoked_at IS NULL",
			now.UnixMicro(), t.ID)
		if err != nil {
			return fmt.Errorf("rotate token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			return errGrant("the refresh token was already used")
		}
		resp, err = s.issue(r.Context(), tx, c, "refresh_token", t.LaunchID, t.Chain, now)
		return err
	})
	var rv errRevoke
	if errors.As(err, &rv) {
		// The transaction was rolled back with the error; commit the revocation on its own.
		err = s.revokeFor(r.Context(), rt, "", now)
		if err == nil {
			err = errGrant(string(rv))
		}
	}
	s.finishToken(w, r, clientID, "refresh_token", resp, err)
}

// revokeFor revokes the chain of a reused refresh token (or replayed code).
func (s *Server) revokeFor(ctx context.Context, refresh, code string, now time.Time) error {
	return s.st.Update(ctx, func(tx *store.Tx) error {
		var chain string
		var err error
		if refresh != "" {
			err = tx.Get(ctx, &chain, "SELECT chain FROM oauth_tokens WHERE refresh_hash = ?", hash(refresh))
		} else {
			var id int64
			err = tx.Get(ctx, &id, "SELECT id FROM oauth_codes WHERE code_hash = ?", hash(code))
			chain = store.ChainOfCode(id)
		}
		if err != nil {
			return fmt.Errorf("find chain to revoke: %w", err)
		}
		if _, err := tx.RevokeTokenChain(ctx, chain, now.UnixMicro()); err != nil {
			return err
		}
		s.log.Warn("oauth: token chain revoked after reuse", "chain", chain)
		return nil
	})
}

// Verify implements api.BearerVerifier: the caller an access token acts for,
// restricted to the launch patient. Expired tokens give *api.TokenExpiredError;
// unknown, rotated and revoked ones koppeltaal.ErrUnauthorized.
func (s *Server) Verify(ctx context.Context, token string) (*koppeltaal.Caller, error) {
	if token == "" {
		return nil, koppeltaal.ErrUnauthorized
	}
	now := s.clock()
	var c *koppeltaal.Caller
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var t tokenRow
		err := tx.Get(ctx, &t, "SELECT "+tokenCols+" FROM oauth_tokens WHERE access_hash = ?", hash(token))
		if errors.Is(err, sql.ErrNoRows) {
			return koppeltaal.ErrUnauthorized
		}
		if err != nil {
			return fmt.Errorf("look up token: %w", err)
		}
		if t.RevokedAt.Valid || t.RotatedAt.Valid {
			return koppeltaal.ErrUnauthorized
		}
		if now.UnixMicro() >= t.AccessExpiresAt {
			return &api.TokenExpiredError{Token: token, ExpiredAt: time.UnixMicro(t.AccessExpiresAt)}
		}
		var launch struct {
			Patient string `db:"patient"`
			User    string `db:"user_ref"`
		}
		if err := tx.Get(ctx, &launch, "SELECT patient, user_ref FROM oauth_launches WHERE id = ?", t.LaunchID); err != nil {
			return fmt.Errorf("read launch of token: %w", err)
		}
		patient := launch.Patient
		in, err := tx.InstanceByID(ctx, t.InstanceID)
		if err != nil {
			return fmt.Errorf("read instance of token: %w", err)
		}
		if in.Disabled() { // removed from the configuration since the token was issued
			return koppeltaal.ErrUnauthorized
		}
		c = &koppeltaal.Caller{Instance: in, Patient: patient, User: launch.User, Client: t.ClientID, TokenExpiresAt: time.UnixMicro(t.AccessExpiresAt)}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Interface guards.
var (
	_ api.BearerVerifier  = (*Server)(nil)
	_ server.StatusWriter = (*Server)(nil)
)

// clientCache holds every application's OAuth settings, read in one query; the
// store's CacheTTL bounds its age (changes by another process).
type clientCache struct {
	mu      sync.Mutex
	m       map[string]*client
	origins []string
	gen     uint64
	at      time.Time
}

// lookup returns the OAuth client with that client_id, or nil; an error
// (store.ErrUnavailable) only when the settings cannot be read and none were
// read before: an unreadable database must not pass for an unknown client.
func (s *Server) lookup(clientID string) (*client, error) {
	m, _, err := s.loadClients()
	return m[clientID], err
}

// loadClients returns the current clients and allowed origins, from the cache
// when it is fresh (or when the database cannot be read now).
func (s *Server) loadClients() (map[string]*client, []string, error) {
	c := &s.clients
	gen := s.st.InstancesGeneration() // read first: a change committed meanwhile invalidates what we read
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m != nil && c.gen == gen && time.Since(c.at) < s.st.CacheTTL() {
		return c.m, c.origins, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var rows []store.OAuthClient
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var err error
		rows, err = tx.OAuthClients(ctx)
		return err
	})
	if err != nil {
		s.log.Error("oauth: read client settings", "err", err)
		if c.m != nil {
			return c.m, c.origins, nil // keep serving what we had
		}
		return map[string]*client{}, nil, fmt.Errorf("read the OAuth client settings: %w", err)
	}
	m := make(map[string]*client, len(rows))
	var origins []string
	for _, r := range rows {
		cfg := koppeltaal.ClientConfig(r)
		m[r.Ident] = &client{ApplicationConfig: cfg, secretHash: r.SecretHash}
		origins = append(origins, cfg.AllowedOrigins...)
	}
	c.m, c.origins, c.gen, c.at = m, origins, gen, time.Now()
	return m, origins, nil
}

// Package testclient is the Koppeltaal Test Client: a simulated intervention (a game or e-learning module)
// that behaves like a deployed module against any Koppeltaal 1.3 server. Started by a portal's web launch
// (it serves its launch URL) or with a mobile activation code, it reads the Conformance, authorizes, gets
// a token, claims its patient's CarePlan messages, reports its progress (UpdateCarePlanActivityStatus with
// the game state as a BlackBoxState, CreateOrUpdateCarePlanActivityResult), keeps its state in the
// Storage Service when the server has one, acknowledges (Success, or Failed with an exception) and logs
// what it did. `koppelpoort testclient` runs it; `koppelpoort regress` drives it for the end-to-end cases.
package testclient

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// Config describes the module: its OAuth client, its instance and what it implements.
type Config struct {
	// Server is the Koppeltaal server root, e.g. https://kt.example.nl. A launch's iss overrides it.
	Server string
	// ClientID is the application id (OAuth client_id); ClientSecret its secret (empty: a public client).
	ClientID, ClientSecret string
	// RedirectURI is the redirect_uri registered for the client (its /callback when it serves pages).
	RedirectURI string
	// Username and Password are its instance's credentials, for working through its mailbox without a
	// launch (Watch); optional.
	Username, Password string
	// Domain is the Koppeltaal domain of the messages it sends (default: from the token or the claimed message).
	Domain string
	// Activity is the ActivityDefinition identifier it implements: it works on CarePlan activities naming
	// it and leaves the others alone ("" works on every activity).
	Activity string
	// ResourceBase is where its own resources live (CarePlanActivityStatus, the game state); default
	// https://<client id>.testclient.invalid/<random>/fhir/Koppeltaal. The module keeps the versions the
	// server issued in memory only, so each process starts in a URL space of its own.
	ResourceBase string
	// Format is the wire format; default JSON.
	Format dstu1.Format
	// FailWith makes it acknowledge every CarePlan message Failed with this exception instead of working.
	FailWith string
	// HTTP is the HTTP client; default one with a 30s timeout that does not follow redirects.
	HTTP *http.Client
	// Logger receives a line for every step; default: discarded.
	Logger *slog.Logger
}

// Module is the simulated intervention.
type Module struct {
	cfg      Config
	log      *slog.Logger
	mu       sync.Mutex
	versions map[string]string // its own resources' versions, as the server issued them
	pending  map[string]string // OAuth state → iss of a web launch waiting for its callback
	history  []Handled         // what it did, oldest first
}

// New returns a module for cfg.
func New(cfg Config) (*Module, error) {
	if cfg.ClientID == "" || cfg.RedirectURI == "" {
		return nil, errors.New("testclient: ClientID and RedirectURI are required")
	}
	if cfg.Format == 0 {
		cfg.Format = dstu1.FormatJSON
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{Timeout: 30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if cfg.ResourceBase == "" {
		cfg.ResourceBase = "https://" + strings.ToLower(cfg.ClientID) + ".testclient.invalid/" + randomState() + "/fhir/Koppeltaal"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Module{cfg: cfg, log: cfg.Logger, versions: map[string]string{}, pending: map[string]string{}}, nil
}

// endpoints are the OAuth URLs the Conformance of a FHIR base publishes.
type endpoints struct {
	Authorize, Token string
}

// Conformance security extensions: the Test Game's smartplatforms.org form first, then the SPEC.md form.
var (
	extAuthorize = []string{"http://fhir-registry.smartplatforms.org/Profile/oauth-uris#authorize", "http://fhir-registry.smarthealthit.org/Profile/oauth-uris#authorize"}
	extToken     = []string{"http://fhir-registry.smartplatforms.org/Profile/oauth-uris#token", "http://fhir-registry.smarthealthit.org/Profile/oauth-uris#token"}
)

// discover reads the OAuth endpoints from the Conformance of the FHIR base iss (modules must not
// hard-code them, SPEC.md §12).
func (m *Module) discover(ctx context.Context, iss string) (endpoints, error) {
	c := &client.Client{BaseURL: rootOf(iss), Format: dstu1.FormatJSON, HTTP: m.cfg.HTTP}
	conf, err := c.Metadata(ctx)
	if err != nil {
		return endpoints{}, fmt.Errorf("read the Conformance of %s: %w", iss, err)
	}
	sec := conf.Get("rest", "security")
	ep := endpoints{Authorize: sec.Extension(extAuthorize...).ExtensionValue().Str(), Token: sec.Extension(extToken...).ExtensionValue().Str()}
	if ep.Authorize == "" || ep.Token == "" {
		return endpoints{}, fmt.Errorf("the Conformance of %s has no OAuth authorize/token extensions", iss)
	}
	return ep, nil
}

// rootOf is the server root of a FHIR base (…/FHIR/Koppeltaal).
func rootOf(iss string) string { return strings.TrimSuffix(strings.TrimRight(iss, "/"), client.Prefix) }

// Token is a Token endpoint reply.
type Token struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	Scope        string `json:"scope"`
	Domain       string `json:"domain"`
	Patient      string `json:"patient"`
	User         string `json:"user"`
	Resource     string `json:"resource"`
	Intent       string `json:"intent"`
}

// authorizeURL is the Authorize request for a launch id (or activation code).
func (m *Module) authorizeURL(ep endpoints, launch, state string) string {
	q := url.Values{"response_type": {"code"}, "client_id": {m.cfg.ClientID}, "redirect_uri": {m.cfg.RedirectURI},
		"scope": {"patient/*.read launch:" + launch}, "state": {state}}
	return ep.Authorize + "?" + q.Encode()
}

// Launch runs what the browser and the module do after a portal's web launch: launchURL is the Location
// the Launch endpoint answered (the module's launch URL with iss and launch). It signs in for the launch
// patient and returns the session.
func (m *Module) Launch(ctx context.Context, launchURL string) (*Session, error) {
	u, err := url.Parse(launchURL)
	if err != nil {
		return nil, fmt.Errorf("launch URL: %w", err)
	}
	iss, launch := u.Query().Get("iss"), u.Query().Get("launch")
	if iss == "" || launch == "" {
		return nil, fmt.Errorf("launch URL %s: iss and launch are required", launchURL)
	}
	ep, err := m.discover(ctx, iss)
	if err != nil {
		return nil, err
	}
	state := randomState()
	resp, body, err := m.get(ctx, m.authorizeURL(ep, launch, state), nil)
	if err != nil {
		return nil, fmt.Errorf("authorize: %w", err)
	}
	loc, _ := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode < 300 || resp.StatusCode > 399 || loc == nil || loc.Query().Get("code") == "" {
		return nil, fmt.Errorf("authorize: HTTP %d, Location %q: %s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if loc.Query().Get("state") != state {
		return nil, fmt.Errorf("authorize: the redirect carries state %q, not %q", loc.Query().Get("state"), state)
	}
	m.log.Info("testclient: authorized the web launch", "client_id", m.cfg.ClientID)
	return m.session(ctx, iss, ep, loc.Query().Get("code"))
}

// Activate signs in with a mobile activation code (SPEC.md §8.3) against the FHIR base iss (default
// Config.Server): Authorize answers JSON with an authorization_code instead of a redirect.
func (m *Module) Activate(ctx context.Context, iss, activationCode string) (*Session, error) {
	if iss == "" {
		iss = strings.TrimRight(m.cfg.Server, "/") + client.Prefix
	}
	ep, err := m.discover(ctx, iss)
	if err != nil {
		return nil, err
	}
	resp, body, err := m.get(ctx, m.authorizeURL(ep, activationCode, randomState()), nil)
	if err != nil {
		return nil, fmt.Errorf("authorize with the activation code: %w", err)
	}
	var v struct {
		AuthorizationCode string `json:"authorization_code"`
	}
	if resp.StatusCode != http.StatusOK || decodeJSON(body, &v) != nil || v.AuthorizationCode == "" {
		return nil, fmt.Errorf("authorize with the activation code: HTTP %d: %s", resp.StatusCode, body)
	}
	m.log.Info("testclient: activated with a mobile activation code", "client_id", m.cfg.ClientID)
	return m.session(ctx, iss, ep, v.AuthorizationCode)
}

// session redeems an authorization code and returns the signed-in session.
func (m *Module) session(ctx context.Context, iss string, ep endpoints, code string) (*Session, error) {
	tok, err := m.token(ctx, ep.Token, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {m.cfg.RedirectURI}})
	if err != nil {
		return nil, err
	}
	m.log.Info("testclient: signed in", "patient", tok.Patient, "domain", tok.Domain, "resource", tok.Resource)
	api := &client.Client{BaseURL: rootOf(iss), Token: tok.AccessToken, Format: m.cfg.Format, HTTP: m.cfg.HTTP}
	return &Session{m: m, api: api, Token: tok, tokenURL: ep.Token}, nil
}

// token calls the Token endpoint with a form, authenticating as the client when it has a secret.
func (m *Module) token(ctx context.Context, tokenURL string, form url.Values) (Token, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return Token{}, fmt.Errorf("token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	if m.cfg.ClientSecret != "" {
		req.SetBasicAuth(m.cfg.ClientID, m.cfg.ClientSecret)
	}
	resp, body, err := m.do(req)
	if err != nil {
		return Token{}, fmt.Errorf("token: %w", err)
	}
	var tok Token
	if resp.StatusCode != http.StatusOK || decodeJSON(body, &tok) != nil || tok.AccessToken == "" {
		return Token{}, fmt.Errorf("token (%s): HTTP %d: %s", form.Get("grant_type"), resp.StatusCode, body)
	}
	return tok, nil
}

func (m *Module) get(ctx context.Context, u string, h http.Header) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	return m.do(req)
}

func (m *Module) do(req *http.Request) (*http.Response, []byte, error) {
	resp, err := m.cfg.HTTP.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp, body, err
}

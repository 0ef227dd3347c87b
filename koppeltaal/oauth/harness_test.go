package oauth_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/koppeltaal/oauth"
	"github.com/koppelpoort/koppelpoort/koppeltaal/storage"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var ctx = context.Background()

const (
	domain      = "SSOTest"
	patientA    = "https://portal.example/fhir/Koppeltaal/Patient/A"
	patientB    = "https://portal.example/fhir/Koppeltaal/Patient/B"
	practUser   = "https://portal.example/fhir/Koppeltaal/Practitioner/P1"
	portalUser  = "portal@sso"
	portalPass  = "portal-secret"
	gameUser    = "game@sso"
	gamePass    = "game-secret"
	mdSecret    = "md-client-secret"
	gameOrigin  = "http://game.example:1234"
	redirectMD  = "https://md.example/koppeltaalauth"
	activityID  = "kick-ass"
	mobileAppID = "MindDistrict"
)

// env is the whole Koppeltaal server (core, OAuth, activity definitions,
// notifications) on a real store behind a real HTTP listener.
type env struct {
	t     testing.TB
	st    *store.Store
	oa    *oauth.Server
	nt    *notify.Notifier
	ts    *httptest.Server
	game  string // the game's launch/redirect URL
	cfg   koppeltaal.Config
	reg   *prometheus.Registry // the koppeltaal_oauth_* metrics
	plain *http.Client         // does not follow redirects
	trail *audit.Recorder      // the audit trail of the FHIR API and the OAuth server
}

func testConfig(gameURL string) koppeltaal.Config {
	return koppeltaal.Config{
		Domains: []koppeltaal.DomainConfig{{Name: domain}},
		Applications: []koppeltaal.ApplicationConfig{
			{ID: "Portal", Roles: []string{"PractitionerPortal"}},
			{ID: "Game", Roles: []string{"Game"}, LaunchURL: gameURL, RedirectURIs: []string{gameURL},
				PublicClient: true, RefreshTokens: true, AllowedOrigins: []string{gameOrigin}},
			{ID: mobileAppID, LaunchURL: "https://md.example/launch", RedirectURIs: []string{redirectMD},
				OAuthSecret: mdSecret, RefreshTokens: true},
		},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: domain, Username: portalUser, Password: portalPass,
				Subscriptions: []string{"UpdateCarePlanActivityStatus", "CreateOrUpdateActivityDefinition"}},
			{Application: "Game", Domain: domain, Username: gameUser, Password: gamePass,
				Subscriptions: []string{"CreateOrUpdateCarePlan", "CreateOrUpdateActivityDefinition"}},
			{Application: mobileAppID, Domain: domain, Username: "md@sso", Password: "md-instance",
				Subscriptions: []string{"CreateOrUpdateCarePlan"}},
		},
		ActivityDefinitions: []koppeltaal.ActivityDefinitionConfig{
			{Identifier: activityID, Domain: domain, Application: "Game", Name: "Kick-ASS", Kind: "Game"},
		},
	}
}

func newEnv(t testing.TB, b storetest.Backend, mutate func(*koppeltaal.Config)) *env {
	t.Helper()
	return newEnvOn(t, b.Open(t), "https://game.example/play", mutate, notify.Options{})
}

func newEnvOn(t testing.TB, st *store.Store, gameURL string, mutate func(*koppeltaal.Config), no notify.Options) *env {
	t.Helper()
	cfg := testConfig(gameURL)
	if mutate != nil {
		mutate(&cfg)
	}
	ts := httptest.NewUnstartedServer(nil) // its URL is the public URL of the server under test
	t.Cleanup(ts.Close)
	cfg.PublicURL = "http://" + ts.Listener.Addr().String()
	if _, err := koppeltaal.Apply(ctx, cfg, st, nil); err != nil {
		t.Fatalf("apply: %v", err)
	}
	reg := prometheus.NewRegistry()
	trail, err := audit.New(audit.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trail.Close() })
	oa, err := oauth.New(oauth.Options{Store: st, Config: cfg, Registerer: reg, Audit: trail})
	if err != nil {
		t.Fatalf("oauth.New: %v", err)
	}
	no.Store = st
	if no.PollInterval == 0 {
		no.PollInterval = 20 * time.Millisecond
	}
	nt, err := notify.New(no)
	if err != nil {
		t.Fatal(err)
	}
	ads, err := activity.New(activity.Options{Store: st, OnPublish: nt.Wake})
	if err != nil {
		t.Fatal(err)
	}
	stor, err := storage.New(storage.Options{Store: st, Config: cfg.Storage})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(ctx, api.Options{Store: st, Config: cfg, SkipApply: true, Bearer: oa, Limiter: oa.Limiter(), Audit: trail,
		Extensions: []func(*api.Server, chi.Router){oa.Extension, nt.Extension, ads.Extension, stor.Extension}})
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	r := chi.NewRouter()
	r.Use(middleware.RequestID) // as internal/server does: the audit records carry it
	srv.Mount(r)
	oa.Mount(r)
	ts.Config.Handler = r
	ts.Start()
	if _, err := ads.Seed(ctx, cfg, ts.URL+api.Prefix); err != nil {
		t.Fatalf("seed: %v", err)
	}
	return &env{t: t, st: st, oa: oa, nt: nt, ts: ts, game: gameURL, cfg: cfg, reg: reg, trail: trail,
		plain: &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// reply is an HTTP response with its body read.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) String() string { return string(r.Body) }

type req struct {
	method, path string
	basic        [2]string
	bearer       string
	accept       string
	ctype        string
	body         []byte
	header       map[string]string
}

func (e *env) do(q req) reply {
	e.t.Helper()
	var body io.Reader
	if q.body != nil {
		body = strings.NewReader(string(q.body))
	}
	u := q.path
	if !strings.HasPrefix(u, "http") {
		u = e.ts.URL + u
	}
	hr, err := http.NewRequest(q.method, u, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if q.basic[0] != "" {
		hr.SetBasicAuth(q.basic[0], q.basic[1])
	}
	if q.bearer != "" {
		hr.Header.Set("Authorization", "Bearer "+q.bearer)
	}
	if q.accept != "" {
		hr.Header.Set("Accept", q.accept)
	}
	if q.ctype != "" {
		hr.Header.Set("Content-Type", q.ctype)
	}
	for k, v := range q.header {
		hr.Header.Set(k, v)
	}
	resp, err := e.plain.Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

func jsonOf(t testing.TB, r reply) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("reply (status %d) is not JSON: %v: %s", r.Status, err, r.Body)
	}
	return m
}

func mediaType(f dstu1.Format) string {
	if f == dstu1.FormatJSON {
		return "application/json"
	}
	return "application/xml+fhir"
}

// carePlanMessage builds a CreateOrUpdateCarePlan message about patient.
func carePlanMessage(patient string, f dstu1.Format) []byte {
	b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), domain)
	focal := "https://portal.example/fhir/Koppeltaal/CarePlan/" + uuid.NewString()
	id := uuid.NewString()
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{Identifier: id, Timestamp: time.Now().UTC().Format(time.RFC3339),
		Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan", Display: "CreateOrUpdateCarePlan"},
		Source: dstu1.Source{Name: "Portal", Software: "test", Version: "1", Endpoint: "https://portal.example"},
		Data:   []string{focal}, Patient: patient})
	b.AddEntry(mh.Resource, "", "")
	cp := dstu1.NewResource("CarePlan")
	cp.Add(dstu1.NewReference("patient", patient), dstu1.NewPrimitive("status", "active"))
	b.AddEntry(cp, focal, focal)
	return koppeltaal.EncodeBundle(b, f)
}

func (e *env) post(cred [2]string, bearer string, patient string, f dstu1.Format) reply {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", basic: cred, bearer: bearer,
		accept: mediaType(f), ctype: mediaType(f), body: carePlanMessage(patient, f)})
}

var portal = [2]string{portalUser, portalPass}

// launch runs Launch for client with the portal's credentials and returns the launch id.
func (e *env) launch(client, patient string) string {
	e.t.Helper()
	q := url.Values{"client_id": {client}, "patient": {patient}, "user": {practUser}, "resource": {activityID}, "intent": {"play"}}
	r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Launch?" + q.Encode(), basic: portal})
	if r.Status != http.StatusFound {
		e.t.Fatalf("Launch: %d %s", r.Status, r.Body)
	}
	loc, err := url.Parse(r.Header.Get("Location"))
	if err != nil {
		e.t.Fatal(err)
	}
	lq := loc.Query()
	if lq.Get("iss") != e.ts.URL+"/FHIR/Koppeltaal" || lq.Get("launch") == "" || lq.Get("launch_id") != lq.Get("launch") || lq.Get("application_id") != client {
		e.t.Fatalf("Launch redirect %s lacks iss/launch/launch_id/application_id", loc)
	}
	return lq.Get("launch")
}

// authorize runs Authorize and returns the code from the redirect.
func (e *env) authorize(client, redirect, launch string) string {
	e.t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"scope": {"patient/*.read launch:" + launch}, "state": {"st8"}}
	r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
	if r.Status != http.StatusFound {
		e.t.Fatalf("Authorize: %d %s", r.Status, r.Body)
	}
	loc, _ := url.Parse(r.Header.Get("Location"))
	if !strings.HasPrefix(loc.String(), redirect+"?") || loc.Query().Get("state") != "st8" || loc.Query().Get("code") == "" {
		e.t.Fatalf("Authorize redirect %s", loc)
	}
	return loc.Query().Get("code")
}

// token exchanges a code (GET, like the Test Game) and returns the JSON reply.
func (e *env) token(code, redirect string, basic [2]string) (reply, map[string]any) {
	e.t.Helper()
	q := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirect}}
	r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Token?" + q.Encode(), basic: basic, accept: "application/json"})
	if r.Status != http.StatusOK {
		return r, nil
	}
	return r, jsonOf(e.t, r)
}

func (e *env) refresh(rt string, basic [2]string) reply {
	e.t.Helper()
	return e.do(req{method: "POST", path: "/OAuth2/Koppeltaal/Token", basic: basic, ctype: "application/x-www-form-urlencoded",
		body: []byte(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}.Encode())})
}

// claim runs GetNextNewAndClaim; it returns the bundle.
func (e *env) claim(bearer string, basic [2]string, extra string, f dstu1.Format) (reply, *dstu1.Bundle) {
	e.t.Helper()
	r := e.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim" + extra,
		bearer: bearer, basic: basic, accept: mediaType(f)})
	if r.Status != http.StatusOK {
		return r, nil
	}
	b, err := dstu1.ParseBundle(r.Body, f)
	if err != nil {
		e.t.Fatalf("claim reply: %v: %s", err, r.Body)
	}
	return r, b
}

// outcome returns the issue codes and details of an OperationOutcome reply.
func outcome(t testing.TB, r reply, f dstu1.Format) (codes, details []string) {
	t.Helper()
	res, err := dstu1.ParseResource(r.Body, f)
	if err != nil || res.Type() != "OperationOutcome" {
		t.Fatalf("not an OperationOutcome (%v): %s", err, r.Body)
	}
	res.Each("issue", func(n *dstu1.Node) bool {
		codes = append(codes, n.Str("type", "code"))
		details = append(details, n.Str("details"))
		return true
	})
	return codes, details
}

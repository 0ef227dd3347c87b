package supportapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/admin/supportapi"
	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/koppeltaal/oauth"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const pw = "a long enough password"

// ktConfig: domains A (test) and B, a portal and a game in both, an EPD bridge in A.
func ktConfig() koppeltaal.Config {
	return koppeltaal.Config{
		BcryptCost: 4,
		Domains:    []koppeltaal.DomainConfig{{Name: "A", DTAPPhase: "test"}, {Name: "B"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal", Roles: []string{"PractitionerPortal"}},
			{ID: "Game", Roles: []string{"Game"}}, {ID: "EPD"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: "A", Username: "portal@a", Password: "pa", Subscriptions: []string{"CreateOrUpdatePatient"}},
			{Application: "Game", Domain: "A", Username: "game@a", Password: "ga", Subscriptions: []string{"CreateOrUpdateCarePlan"}},
			{Application: "EPD", Domain: "A", Username: "epd@a", Password: "ea"},
			{Application: "Portal", Domain: "B", Username: "portal@b", Password: "pb", Subscriptions: []string{"CreateOrUpdatePatient"}},
			{Application: "Game", Domain: "B", Username: "game@b", Password: "gb"},
		},
	}
}

func adminUsers() []admin.UserConfig {
	return []admin.UserConfig{
		{Username: "sys", Password: pw, Role: admin.RoleSystem},
		{Username: "dora", Password: pw, Role: admin.RoleDomain, Domains: []string{"A"}},
		{Username: "appy", Password: pw, Role: admin.RoleApplication, Applications: []string{"Game"}},
	}
}

type env struct {
	t      *testing.T
	st     *store.Store
	ts     *httptest.Server
	acc    *admin.Accounts
	trail  *audit.Recorder
	tokens map[string]string
}

// newEnv serves the Koppeltaal API, the session endpoints and the Support API
// on one store, with a token for each administrator of adminUsers.
func newEnv(t *testing.T, st *store.Store, cfg koppeltaal.Config) *env {
	t.Helper()
	ctx := context.Background()
	ts := httptest.NewUnstartedServer(nil)
	t.Cleanup(ts.Close)
	cfg.PublicURL = "http://" + ts.Listener.Addr().String() // links are written from the public URL
	if _, err := koppeltaal.Apply(ctx, cfg, st, nil); err != nil {
		t.Fatal(err)
	}
	sso, err := oauth.New(oauth.Options{Store: st, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	ads, err := activity.New(activity.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	kt, err := api.New(ctx, api.Options{Store: st, Config: cfg, SkipApply: true, Bearer: sso,
		Extensions: []func(*api.Server, chi.Router){sso.Extension, ads.Extension}})
	if err != nil {
		t.Fatal(err)
	}
	trail, err := audit.New(audit.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trail.Close() })
	acc, err := admin.New(admin.Options{Store: st, Config: admin.Config{Users: adminUsers(), BcryptCost: 4},
		Auditor: admin.TrailAuditor{Recorder: trail}})
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.ApplyConfig(ctx); err != nil {
		t.Fatal(err)
	}
	sapi, err := supportapi.New(supportapi.Options{Accounts: acc, Koppeltaal: cfg, Version: "test",
		Activities: ads, FHIRBase: "https://kp.example/FHIR/Koppeltaal"})
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	kt.Mount(r)
	sso.Mount(r)
	acc.Mount(r)
	sapi.Mount(r)
	ts.Config.Handler = r
	ts.Start()
	e := &env{t: t, st: st, ts: ts, acc: acc, trail: trail, tokens: map[string]string{}}
	for _, u := range adminUsers() {
		tok, _, err := acc.CreateTokenFor(ctx, u.Username, "test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		e.tokens[u.Username] = tok
	}
	return e
}

type reply struct {
	status int
	header http.Header
	doc    map[string]any
	raw    string
}

// do calls the Support API as admin ("" = no credentials) with a JSON:API body (nil = none).
func (e *env) do(who, method, path string, body any) reply {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.ts.URL+supportapi.Prefix+path, rd)
	req.Header.Set("Accept", jsonapi.MediaType)
	if body != nil {
		req.Header.Set("Content-Type", jsonapi.MediaType)
	}
	if who != "" {
		req.Header.Set("Authorization", "Bearer "+e.tokens[who])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &r.doc)
	return r
}

func (r reply) data() map[string]any {
	d, _ := r.doc["data"].(map[string]any)
	return d
}

func (r reply) list() []map[string]any {
	var out []map[string]any
	items, _ := r.doc["data"].([]any)
	for _, it := range items {
		out = append(out, it.(map[string]any))
	}
	return out
}

func attr(res map[string]any, name string) any {
	a, _ := res["attributes"].(map[string]any)
	return a[name]
}

func version(res map[string]any) string {
	m, _ := res["meta"].(map[string]any)
	s, _ := m["version"].(string)
	return s
}

func (r reply) firstError() (status, title string) {
	errs, _ := r.doc["errors"].([]any)
	if len(errs) == 0 {
		return "", ""
	}
	e := errs[0].(map[string]any)
	s, _ := e["status"].(string)
	t, _ := e["title"].(string)
	return s, t
}

func (r reply) mustStatus(t *testing.T, want int, what string) reply {
	t.Helper()
	if r.status != want {
		t.Fatalf("%s: %d, want %d: %s", what, r.status, want, r.raw)
	}
	if r.header.Get("Content-Type") != jsonapi.MediaType && r.status != http.StatusNoContent {
		t.Fatalf("%s: Content-Type %q", what, r.header.Get("Content-Type"))
	}
	return r
}

func doc(typ, id string, attrs map[string]any, ver string) map[string]any {
	d := map[string]any{"type": typ, "attributes": attrs}
	if id != "" {
		d["id"] = id
	}
	if ver != "" {
		d["meta"] = map[string]any{"version": ver}
	}
	return map[string]any{"data": d}
}

// kt is a Koppeltaal client of the env's server.
func (e *env) kt(user, pass string) *client.Client {
	return &client.Client{BaseURL: e.ts.URL, Username: user, Password: pass}
}

func patientMsg(id string) client.Message {
	return client.Message{Event: "CreateOrUpdatePatient", Patient: id, Resources: []client.Resource{{
		Type: "Patient", ID: id, Body: map[string]any{"name": []any{map[string]any{"text": "P " + id}}}}}}
}

func (e *env) post(c *client.Client, domain string, m client.Message) error {
	b, err := client.BuildMessage(m, client.BuildOptions{Domain: domain, ResourceBase: "https://sender.example/fhir/Koppeltaal"})
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = c.PostMessage(context.Background(), b)
	return err
}

func (e *env) claimEvent(c *client.Client) string {
	e.t.Helper()
	b, err := c.Claim(context.Background(), client.ClaimFilter{})
	if err != nil {
		e.t.Fatalf("claim as %s: %v", c.Username, err)
	}
	if b == nil || b.MessageHeader() == nil {
		return ""
	}
	return b.MessageHeader().EventCode()
}

func backends(t *testing.T, fn func(t *testing.T, b storetest.Backend)) { storetest.Run(t, fn) }

var _ = strings.Contains

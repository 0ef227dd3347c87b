package supportapi_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// launch asks the OAuth Launch endpoint, as portal@a, to launch app for a patient; it returns the status and Location.
func (e *env) launch(app string) (int, string) {
	e.t.Helper()
	q := url.Values{"client_id": {app}, "patient": {"https://sender.example/fhir/Koppeltaal/Patient/p1"}}
	req, _ := http.NewRequest("GET", e.ts.URL+"/OAuth2/Koppeltaal/Launch?"+q.Encode(), nil)
	req.SetBasicAuth("portal@a", "pa")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header.Get("Location")
}

// TestRegisteredClientWithoutRestart: OAuth client settings made and changed
// through the Support API are what Launch uses next, with no restart.
func TestRegisteredClientWithoutRestart(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		app := e.do("sys", "POST", "/Application", doc("Application", "", map[string]any{"Identifier": "RtGame", "ApplicationRoles": []string{"Game"}}, "")).
			mustStatus(t, 201, "application")
		e.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{"Username": "rt@a", "Application": "RtGame", "Domain": "A"}, "")).
			mustStatus(t, 201, "instance")
		if status, _ := e.launch("RtGame"); status != 400 {
			t.Fatalf("launch of an application without client settings: %d, want 400", status)
		}
		e.do("sys", "POST", "/RegisteredClient", doc("RegisteredClient", "", map[string]any{"ClientId": "RtGame",
			"LaunchUrl": "https://rt.example/start", "AllowPublicTokenRequests": false}, "")).mustStatus(t, 400, "confidential client without a secret")
		c := e.do("sys", "POST", "/RegisteredClient", doc("RegisteredClient", "", map[string]any{"ClientId": "RtGame",
			"LaunchUrl": "https://rt.example/start", "RedirectUris": []string{"https://rt.example/cb"}, "ResetClientSecret": true,
			"AllowedOrigins": []string{"https://rt.example"}}, "")).mustStatus(t, 201, "client")
		if s, _ := c.data()["meta"].(map[string]any)["client_secret"].(string); len(s) < 20 || attr(c.data(), "HasClientSecret") != true {
			t.Fatalf("generated client secret: %s", c.raw)
		}
		status, loc := e.launch("RtGame")
		if status != 302 || !strings.HasPrefix(loc, "https://rt.example/start?") {
			t.Fatalf("launch after the client was registered: %d %q", status, loc)
		}
		id := app.data()["id"].(string)
		e.do("sys", "PATCH", "/RegisteredClient/"+id, doc("RegisteredClient", id, map[string]any{"LaunchUrl": "https://rt.example/v2"}, version(c.data()))).
			mustStatus(t, 200, "new launch URL")
		if status, loc := e.launch("RtGame"); status != 302 || !strings.HasPrefix(loc, "https://rt.example/v2?") {
			t.Fatalf("launch after the change: %d %q", status, loc)
		}
		// A secret hashed elsewhere (the file's oauth_secret_hash): the Token endpoint takes its secret at once —
		// a made-up code is then invalid_grant (400), not a refused client (401).
		hash, err := bcrypt.GenerateFromPassword([]byte("client secret hashed elsewhere"), 4)
		if err != nil {
			t.Fatal(err)
		}
		cur := e.do("sys", "GET", "/RegisteredClient/"+id, nil).mustStatus(t, 200, "read the client")
		for _, bad := range []map[string]any{{"ClientSecretHash": "md5:abc"}, {"ClientSecretHash": string(hash), "ResetClientSecret": true}} {
			e.do("sys", "PATCH", "/RegisteredClient/"+id, doc("RegisteredClient", id, bad, version(cur.data()))).mustStatus(t, 400, "bad secret hash")
		}
		e.do("sys", "PATCH", "/RegisteredClient/"+id, doc("RegisteredClient", id, map[string]any{"ClientSecretHash": string(hash)}, version(cur.data()))).
			mustStatus(t, 200, "secret hash")
		if got := e.tokenStatus("RtGame", "client secret hashed elsewhere"); got != 400 {
			t.Fatalf("Token with the secret of the hash set through the API: %d, want 400 (made-up code)", got)
		}
		if got := e.tokenStatus("RtGame", "another secret"); got != 401 {
			t.Fatalf("Token with another secret: %d, want 401", got)
		}
		// CORS follows the allowed origins at once.
		req, _ := http.NewRequest("OPTIONS", e.ts.URL+"/FHIR/Koppeltaal/metadata", nil)
		req.Header.Set("Origin", "https://rt.example")
		req.Header.Set("Access-Control-Request-Method", "GET")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.Header.Get("Access-Control-Allow-Origin") != "https://rt.example" {
			t.Fatalf("CORS for an origin added through the API: %d %v", resp.StatusCode, resp.Header)
		}
		// The file's clients are read-only; another application's administrator sees none of RtGame's.
		for _, r := range e.do("sys", "GET", "/RegisteredClient?filter[ClientId]=Game", nil).list() {
			e.do("sys", "PATCH", "/RegisteredClient/"+r["id"].(string), doc("RegisteredClient", r["id"].(string),
				map[string]any{"LaunchUrl": "https://x.example"}, version(r))).mustStatus(t, 409, "file-managed client")
		}
		e.do("appy", "GET", "/RegisteredClient/"+id, nil).mustStatus(t, 404, "another application's client")
	})
}

// tokenStatus asks the Token endpoint for a token with a made-up code as clientID with secret.
func (e *env) tokenStatus(clientID, secret string) int {
	e.t.Helper()
	req, _ := http.NewRequest("POST", e.ts.URL+"/OAuth2/Koppeltaal/Token", strings.NewReader("grant_type=authorization_code&code=made-up"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestClientAndActivityTwoServersSharePostgres: OAuth client settings and an activity definition changed
// through one server are what a second server (its own store, the same PostgreSQL database) uses, within
// the caches' bound, without a restart.
func TestClientAndActivityTwoServersSharePostgres(t *testing.T) {
	b := storetest.NewPostgres(t)
	one := newEnv(t, b.Open(t), ktConfig())
	two := newEnv(t, b.Open(t), ktConfig())
	within := func(what string, ok func() bool) {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > 3*time.Second {
				t.Fatalf("%s: not seen by the second server within 3 s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: seen by the second server after %s", what, time.Since(start).Round(time.Millisecond))
	}
	app := one.do("sys", "POST", "/Application", doc("Application", "", map[string]any{"Identifier": "Shared", "ApplicationRoles": []string{"Game"}}, "")).
		mustStatus(t, 201, "application on one").data()
	one.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{"Username": "shared@a", "Application": "Shared", "Domain": "A"}, "")).
		mustStatus(t, 201, "instance on one")
	c := one.do("sys", "POST", "/RegisteredClient", doc("RegisteredClient", "", map[string]any{"ClientId": "Shared",
		"LaunchUrl": "https://shared.example/v1", "RedirectUris": []string{"https://shared.example/cb"}, "ClientSecret": "a shared client secret"}, "")).
		mustStatus(t, 201, "client on one").data()
	launchesTo := func(prefix string) func() bool {
		return func() bool {
			status, loc := two.launch("Shared")
			return status == 302 && strings.HasPrefix(loc, prefix)
		}
	}
	within("new client", launchesTo("https://shared.example/v1?"))
	id := app["id"].(string)
	one.do("sys", "PATCH", "/RegisteredClient/"+id, doc("RegisteredClient", id, map[string]any{"LaunchUrl": "https://shared.example/v2",
		"ClientSecret": "the next shared secret"}, version(c))).mustStatus(t, 200, "change on one")
	within("new launch URL", launchesTo("https://shared.example/v2?"))
	within("new client secret", func() bool { return two.tokenStatus("Shared", "the next shared secret") == 400 })
	if got := two.tokenStatus("Shared", "a shared client secret"); got != 401 {
		t.Fatalf("the old secret on the second server: %d, want 401", got)
	}

	ad := one.do("sys", "POST", "/ActivityDefinition", doc("ActivityDefinition", "", map[string]any{"Identifier": "shared-quiz", "Domain": "A",
		"Application": "Shared", "Name": "Shared quiz", "ActivityType": "Questionnaire",
		"SubActivities": []map[string]any{{"Identifier": "s-1", "Name": "Step one"}}}, "")).mustStatus(t, 201, "activity on one").data()
	within("new activity definition", func() bool { return searchSubActivities(t, two)["s-1"] == "Step one" })
	adID := ad["id"].(string)
	one.do("sys", "PATCH", "/ActivityDefinition/"+adID, doc("ActivityDefinition", adID, map[string]any{
		"SubActivities": []map[string]any{{"Identifier": "s-1", "Name": "Step one, renamed"}}}, version(ad))).mustStatus(t, 200, "change on one")
	within("changed sub-activity", func() bool { return searchSubActivities(t, two)["s-1"] == "Step one, renamed" })
}

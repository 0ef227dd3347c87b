package supportapi_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const gameRedirect = "https://game.example/cb"

// oauthConfig is ktConfig with Game as a public OAuth client that gets refresh tokens.
func oauthConfig() koppeltaal.Config {
	cfg := ktConfig()
	for i, app := range cfg.Applications {
		if app.ID == "Game" {
			cfg.Applications[i].LaunchURL, cfg.Applications[i].RedirectURIs = "https://game.example/start", []string{gameRedirect}
			cfg.Applications[i].PublicClient, cfg.Applications[i].RefreshTokens = true, true
		}
	}
	return cfg
}

// grant runs a web launch of Game as portal@a, Authorize and Token; it returns the access and refresh token.
func (e *env) grant() (access, refresh string) {
	e.t.Helper()
	status, loc := e.launch("Game")
	if status != http.StatusFound {
		e.t.Fatalf("launch: %d", status)
	}
	u, _ := url.Parse(loc)
	q := url.Values{"response_type": {"code"}, "client_id": {"Game"}, "redirect_uri": {gameRedirect},
		"scope": {"patient/*.read launch:" + u.Query().Get("launch")}, "state": {"s"}}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(e.ts.URL + "/OAuth2/Koppeltaal/Authorize?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	code := cb.Query().Get("code")
	if code == "" {
		e.t.Fatalf("Authorize: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	tok := e.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {gameRedirect}, "client_id": {"Game"}})
	if tok.status != 200 {
		e.t.Fatalf("Token: %d %v", tok.status, tok.body)
	}
	return tok.body["access_token"].(string), tok.body["refresh_token"].(string)
}

type tokenReply struct {
	status int
	body   map[string]any
}

func (e *env) token(form url.Values) tokenReply {
	e.t.Helper()
	resp, err := http.PostForm(e.ts.URL+"/OAuth2/Koppeltaal/Token", form)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	r := tokenReply{status: resp.StatusCode}
	_ = json.Unmarshal(raw, &r.body)
	return r
}

// bearerClaim calls GetNextNewAndClaim with a Bearer token and returns the HTTP status.
func (e *env) bearerClaim(token string) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+"/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "application/xml+fhir")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAuthorizationRevoke: a grant made by a launch is listed per application, instance and patient,
// within the caller's scope; revoked through the API (PATCH GrantStatus), its access token gets 401 on
// its next call and its refresh token is refused.
func TestAuthorizationRevoke(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), oauthConfig())
		access, refresh := e.grant()
		if got := e.bearerClaim(access); got != 200 {
			t.Fatalf("claim with the new token: %d", got)
		}
		list := e.do("sys", "GET", "/Authorization?filter[RegisteredClient]=Game&filter[Patient]="+
			url.QueryEscape("https://sender.example/fhir/Koppeltaal/Patient/p1"), nil).mustStatus(t, 200, "list").list()
		if len(list) != 1 || attr(list[0], "GrantStatus") != "Active" || attr(list[0], "ApplicationInstance") != "game@a" ||
			attr(list[0], "Domain") != "A" || attr(list[0], "LaunchType") != "Web" || attr(list[0], "RedirectUrl") != gameRedirect {
			t.Fatalf("grants of Game for p1: %v", list)
		}
		g := list[0]
		id := g["id"].(string)
		for _, q := range []string{"filter[ApplicationInstance]=game@b", "filter[Patient]=other", "filter[RegisteredClient]=Portal", "filter[Domain]=B"} {
			if l := e.do("sys", "GET", "/Authorization?"+q, nil).mustStatus(t, 200, q).list(); len(l) != 0 {
				t.Fatalf("%s: %d grants, want 0", q, len(l))
			}
		}
		// Scope: the domain's and the application's administrators see it; another domain's do not.
		e.do("dora", "GET", "/Authorization/"+id, nil).mustStatus(t, 200, "domain administrator of A")
		e.do("appy", "GET", "/Authorization/"+id, nil).mustStatus(t, 200, "application administrator of Game")
		e.do("sys", "PATCH", "/Authorization/"+id, doc("Authorization", id, map[string]any{"GrantStatus": "Active"}, version(g))).
			mustStatus(t, 400, "GrantStatus other than Revoked")
		e.do("sys", "PATCH", "/Authorization/"+id, doc("Authorization", id, map[string]any{"Patient": "x"}, version(g))).
			mustStatus(t, 403, "immutable attribute")
		e.do("sys", "DELETE", "/Authorization/"+id, nil).mustStatus(t, 405, "DELETE")

		// A refresh after the list makes what the administrator saw stale.
		rt := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"Game"}})
		if rt.status != 200 {
			t.Fatalf("refresh: %d %v", rt.status, rt.body)
		}
		access, refresh = rt.body["access_token"].(string), rt.body["refresh_token"].(string)
		e.do("sys", "PATCH", "/Authorization/"+id, doc("Authorization", id, map[string]any{"GrantStatus": "Revoked"}, version(g))).
			mustStatus(t, 409, "revoke on a stale version")
		if got := e.bearerClaim(access); got != 200 {
			t.Fatalf("a stale revoke changed nothing, yet the token gets %d", got)
		}
		cur := e.do("appy", "GET", "/Authorization/"+id, nil).data()
		if attr(cur, "Tokens") != float64(2) {
			t.Fatalf("tokens after a refresh: %v", attr(cur, "Tokens"))
		}
		rev := e.do("appy", "PATCH", "/Authorization/"+id, doc("Authorization", id, map[string]any{"GrantStatus": "Revoked"}, version(cur))).
			mustStatus(t, 200, "revoke").data()
		if attr(rev, "GrantStatus") != "Revoked" || attr(rev, "RevokedAt") == "" {
			t.Fatalf("revoked grant: %v", rev)
		}
		if got := e.bearerClaim(access); got != 401 {
			t.Fatalf("claim with a revoked token: %d, want 401", got)
		}
		if r := e.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"Game"}}); r.status != 400 ||
			r.body["error"] != "invalid_grant" || !strings.Contains(r.body["error_description"].(string), "revoked") {
			t.Fatalf("refresh of a revoked grant: %d %v", r.status, r.body)
		}
	})
}

// TestAuthorizationRevokeTwoProcesses: a grant revoked through one server is refused by a second server
// (its own store, the same PostgreSQL database) on the token's very next call.
func TestAuthorizationRevokeTwoProcesses(t *testing.T) {
	b := storetest.NewPostgres(t)
	one := newEnv(t, b.Open(t), oauthConfig())
	two := newEnv(t, b.Open(t), oauthConfig())
	access, _ := two.grant()
	if got := two.bearerClaim(access); got != 200 {
		t.Fatalf("claim on server two: %d", got)
	}
	g := one.do("sys", "GET", "/Authorization", nil).mustStatus(t, 200, "list on server one").list()
	if len(g) != 1 {
		t.Fatalf("server one lists %d grants, want the one made on server two", len(g))
	}
	id := g[0]["id"].(string)
	one.do("sys", "PATCH", "/Authorization/"+id, doc("Authorization", id, map[string]any{"GrantStatus": "Revoked"}, version(g[0]))).
		mustStatus(t, 200, "revoke on server one")
	if got := two.bearerClaim(access); got != 401 {
		t.Fatalf("server two after the revocation on server one: %d, want 401", got)
	}
}

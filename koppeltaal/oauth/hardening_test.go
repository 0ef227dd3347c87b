package oauth_test

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// authorizeReply runs Authorize for a launch and returns the raw reply.
func (e *env) authorizeReply(client, redirect, launch string) reply {
	e.t.Helper()
	q := url.Values{"response_type": {"code"}, "client_id": {client}, "redirect_uri": {redirect},
		"scope": {"patient/*.read launch:" + launch}, "state": {"st8"}}
	return e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
}

// TestRemovedInstanceCannotBeLaunched (issue 16 item 7): an application
// instance removed from the configuration cannot be launched any more, and
// launches and codes made for it (or by a portal instance removed since)
// before the removal no longer lead to a token.
func TestRemovedInstanceCannotBeLaunched(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		t.Run("launch", func(t *testing.T) {
			e := newEnv(t, b, nil)
			storetest.DisableInstance(t, e.st, gameUser)
			q := url.Values{"client_id": {"Game"}, "patient": {patientA}, "user": {practUser}, "resource": {activityID}}
			r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Launch?" + q.Encode(), basic: portal})
			if r.Status != http.StatusBadRequest || jsonOf(t, r)["error"] != "invalid_request" {
				t.Fatalf("Launch of a removed instance: %d %s", r.Status, r.Body)
			}
			r = e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/MobileLaunch?" + q.Encode(), basic: portal})
			if r.Status != http.StatusBadRequest {
				t.Fatalf("MobileLaunch of a removed instance: %d %s", r.Status, r.Body)
			}
		})
		for _, removed := range []string{gameUser, portalUser} {
			t.Run("authorize after "+removed+" was removed", func(t *testing.T) {
				e := newEnv(t, b, func(c *koppeltaal.Config) {})
				launch := e.launch("Game", patientA)
				storetest.DisableInstance(t, e.st, removed)
				r := e.authorizeReply("Game", e.game, launch)
				loc, _ := url.Parse(r.Header.Get("Location"))
				if r.Status != http.StatusFound || loc == nil || loc.Query().Get("error") != "access_denied" || loc.Query().Get("code") != "" {
					t.Fatalf("Authorize of a launch whose instance was removed: %d %s", r.Status, r.Header.Get("Location"))
				}
			})
			t.Run("token after "+removed+" was removed", func(t *testing.T) {
				e := newEnv(t, b, nil)
				code := e.authorize("Game", e.game, e.launch("Game", patientA))
				storetest.DisableInstance(t, e.st, removed)
				if r, tok := e.token(code, e.game, [2]string{}); tok != nil || r.Status != http.StatusBadRequest || jsonOf(t, r)["error"] != "invalid_grant" {
					t.Fatalf("Token for a code whose instance was removed: %d %s", r.Status, r.Body)
				}
			})
		}
	})
}

// TestTokenNeedsTheAuthorizeRedirectURI (issue 16 item 8, RFC 6749 §4.1.3):
// a code whose Authorize named a redirect_uri is only exchanged with that
// same redirect_uri; leaving it out is invalid_grant (and the code stays
// unused). Authorize without redirect_uri (one registered) needs none at Token.
func TestTokenNeedsTheAuthorizeRedirectURI(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, nil)
		code := e.authorize("Game", e.game, e.launch("Game", patientA))
		get := func(q url.Values) reply {
			return e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Token?" + q.Encode(), accept: "application/json"})
		}
		r := get(url.Values{"grant_type": {"authorization_code"}, "code": {code}})
		if r.Status != http.StatusBadRequest || jsonOf(t, r)["error"] != "invalid_grant" ||
			!strings.Contains(jsonOf(t, r)["error_description"].(string), "redirect_uri") {
			t.Fatalf("token without the redirect_uri Authorize had: %d %s", r.Status, r.Body)
		}
		if _, tok := e.token(code, e.game, [2]string{}); tok == nil {
			t.Fatal("the refused request used up the code")
		}

		// Authorize without redirect_uri (the client has one registered): Token without it too.
		launch := e.launch("Game", patientA)
		q := url.Values{"response_type": {"code"}, "client_id": {"Game"}, "scope": {"patient/*.read launch:" + launch}}
		ar := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
		loc, _ := url.Parse(ar.Header.Get("Location"))
		if ar.Status != http.StatusFound || loc.Query().Get("code") == "" {
			t.Fatalf("Authorize without redirect_uri: %d %s", ar.Status, ar.Header.Get("Location"))
		}
		if r := get(url.Values{"grant_type": {"authorization_code"}, "code": {loc.Query().Get("code")}}); r.Status != http.StatusOK {
			t.Fatalf("token without redirect_uri after Authorize without one: %d %s", r.Status, r.Body)
		}
	})
}

// openStream opens the live stream with a Bearer token and returns its lines.
func (e *env) openStream(access string) <-chan string {
	e.t.Helper()
	hr, _ := http.NewRequest("GET", e.ts.URL+"/FHIR/Koppeltaal/_stream", nil)
	hr.Header.Set("Authorization", "Bearer "+access)
	return apitest.Stream(e.t, hr)
}

// streamCloses waits for the stream to end and returns the reason it gave.
func streamCloses(t *testing.T, lines <-chan string, within time.Duration) string {
	t.Helper()
	deadline := time.After(within)
	reason := ""
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				if reason == "" {
					t.Fatal("the stream ended without a closed event")
				}
				return reason
			}
			if strings.HasPrefix(l, "data: ") && strings.Contains(l, `"reason"`) {
				reason = l
			}
		case <-deadline:
			t.Fatalf("the stream was still open after %s", within)
		}
	}
}

// TestStreamEndsWithItsToken (issue 16 item 5): the live stream of a Bearer
// caller ends when the token expires and when it is replaced (refresh) or
// its instance is removed; a new token opens a new stream.
func TestStreamEndsWithItsToken(t *testing.T) {
	b := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}
	e := newEnvOn(t, b.Open(t), "https://game.example/play", func(c *koppeltaal.Config) {
		c.Applications[1].TokenLifetime = 2 * time.Second
	}, notify.Options{RecheckInterval: 100 * time.Millisecond})

	start := time.Now()
	lines := e.openStream(e.bearerFor(patientA))
	if reason := streamCloses(t, lines, 10*time.Second); !strings.Contains(reason, "expired") || time.Since(start) < time.Second {
		t.Fatalf("stream of an expiring token ended after %s with %s", time.Since(start), reason)
	}

	b2 := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}
	e2 := newEnvOn(t, b2.Open(t), "https://game.example/play", nil, notify.Options{RecheckInterval: 100 * time.Millisecond})
	code := e2.authorize("Game", e2.game, e2.launch("Game", patientA))
	_, tok := e2.token(code, e2.game, [2]string{})
	lines = e2.openStream(tok["access_token"].(string))
	if r := e2.refresh(tok["refresh_token"].(string), [2]string{}); r.Status != 200 {
		t.Fatalf("refresh: %d %s", r.Status, r.Body)
	}
	streamCloses(t, lines, 5*time.Second)

	lines = e2.openStream(e2.bearerFor(patientA))
	storetest.DisableInstance(t, e2.st, gameUser)
	streamCloses(t, lines, 5*time.Second)
}

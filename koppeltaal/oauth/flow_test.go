package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestWebLaunchFlow is the portal → Launch → Authorize → Token →
// claim-with-Bearer flow of CLIENTS.md for a public browser game, in XML and
// JSON, on SQLite and PostgreSQL, including refresh rotation and the patient
// restriction of the token.
func TestWebLaunchFlow(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, nil)
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			name := map[dstu1.Format]string{dstu1.FormatXML: "xml", dstu1.FormatJSON: "json"}[f]
			t.Run(name, func(t *testing.T) {
				e.t = t
				for _, p := range []string{patientA, patientB, patientA} {
					if r := e.post(portal, "", p, f); r.Status != http.StatusOK {
						t.Fatalf("portal post: %d %s", r.Status, r.Body)
					}
				}
				// The game reads the Conformance from iss to find the endpoints.
				meta := e.do(req{method: "GET", path: "/FHIR/Koppeltaal/metadata", accept: mediaType(f)})
				if !strings.Contains(meta.String(), e.ts.URL+"/OAuth2/Koppeltaal/Authorize") || !strings.Contains(meta.String(), e.ts.URL+"/OAuth2/Koppeltaal/Token") {
					t.Fatalf("metadata lacks the OAuth URIs: %s", meta.Body)
				}
				launch := e.launch("Game", patientA)
				code := e.authorize("Game", e.game, launch)
				r, tok := e.token(code, e.game, [2]string{})
				if tok == nil {
					t.Fatalf("token: %d %s", r.Status, r.Body)
				}
				for k, want := range map[string]any{"token_type": "Bearer", "scope": "patient/*.read", "domain": domain,
					"patient": patientA, "user": practUser, "resource": activityID, "intent": "play"} {
					if tok[k] != want {
						t.Errorf("token %s = %v, want %v", k, tok[k], want)
					}
				}
				if tok["expires_in"].(float64) != 900 || tok["access_token"] == "" || tok["refresh_token"] == "" {
					t.Fatalf("token reply: %v", tok)
				}
				if cc := r.Header.Get("Cache-Control"); cc != "no-store" {
					t.Errorf("Cache-Control %q", cc)
				}
				access := tok["access_token"].(string)

				// Claim with the bearer: both messages of patient A, never B's.
				for i := 0; i < 2; i++ {
					r, bun := e.claim(access, [2]string{}, "", f)
					if bun == nil {
						t.Fatalf("claim %d: %d %s", i, r.Status, r.Body)
					}
					if len(bun.Entries) == 0 {
						t.Fatalf("claim %d: empty, want a message of patient A", i)
					}
					if p := bun.MessageHeader().Patient(); p != patientA {
						t.Fatalf("claim %d returned a message about %s", i, p)
					}
				}
				if _, bun := e.claim(access, [2]string{}, "", f); bun == nil || len(bun.Entries) != 0 {
					t.Fatalf("third claim should be empty (only B's message is left)")
				}
				// Asking for patient B explicitly is refused.
				if r, _ := e.claim(access, [2]string{}, "&Patient="+url.QueryEscape(patientB), f); r.Status != http.StatusForbidden {
					t.Fatalf("claim for patient B with A's token: %d %s", r.Status, r.Body)
				}
				// Search only shows A.
				s := e.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&_count=100", bearer: access, accept: mediaType(f)})
				sb, err := dstu1.ParseBundle(s.Body, f)
				if err != nil {
					t.Fatalf("search: %v %s", err, s.Body)
				}
				for _, en := range sb.Entries {
					if p := dstu1.AsMessageHeader(en.Resource).Patient(); p != patientA {
						t.Fatalf("search with A's token shows a message about %s", p)
					}
				}
				// Basic auth of the game instance still sees B's message.
				if _, bun := e.claim("", [2]string{gameUser, gamePass}, "&Patient="+url.QueryEscape(patientB), f); bun == nil || len(bun.Entries) == 0 || bun.MessageHeader().Patient() != patientB {
					t.Fatalf("basic-auth claim should return patient B's message")
				}
				// Posting with the bearer: about A accepted, about B refused.
				if r := e.post([2]string{}, access, patientA, f); r.Status != http.StatusOK {
					t.Fatalf("bearer post about A: %d %s", r.Status, r.Body)
				}
				if r := e.post([2]string{}, access, patientB, f); r.Status != http.StatusForbidden {
					t.Fatalf("bearer post about B: %d %s", r.Status, r.Body)
				}

				// Refresh: a new pair; the old access token stops working.
				rr := e.refresh(tok["refresh_token"].(string), [2]string{})
				if rr.Status != http.StatusOK {
					t.Fatalf("refresh: %d %s", rr.Status, rr.Body)
				}
				tok2 := jsonOf(t, rr)
				if tok2["access_token"] == access || tok2["refresh_token"] == tok["refresh_token"] || tok2["patient"] != patientA {
					t.Fatalf("refresh did not rotate: %v", tok2)
				}
				if r, _ := e.claim(access, [2]string{}, "", f); r.Status != http.StatusUnauthorized {
					t.Fatalf("old access token after refresh: %d %s", r.Status, r.Body)
				}
				if r, _ := e.claim(tok2["access_token"].(string), [2]string{}, "", f); r.Status != http.StatusOK {
					t.Fatalf("new access token: %d %s", r.Status, r.Body)
				}
				// Reusing the old refresh token is refused and revokes the chain.
				rr = e.refresh(tok["refresh_token"].(string), [2]string{})
				if rr.Status != http.StatusBadRequest || jsonOf(t, rr)["error"] != "invalid_grant" {
					t.Fatalf("reused refresh token: %d %s", rr.Status, rr.Body)
				}
				if r, _ := e.claim(tok2["access_token"].(string), [2]string{}, "", f); r.Status != http.StatusUnauthorized {
					t.Fatalf("access token of a revoked chain: %d %s", r.Status, r.Body)
				}
				if rr := e.refresh(tok2["refresh_token"].(string), [2]string{}); rr.Status != http.StatusBadRequest {
					t.Fatalf("refresh token of a revoked chain: %d %s", rr.Status, rr.Body)
				}
			})
		}
	})
}

// TestConfidentialAndMobile covers a confidential client (Basic client
// secret, as the Python connector sends it) and the mobile activation code.
func TestConfidentialAndMobile(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, nil)
		md := [2]string{mobileAppID, mdSecret}
		code := e.authorize(mobileAppID, redirectMD, e.launch(mobileAppID, patientA))
		if r, tok := e.token(code, redirectMD, [2]string{}); tok != nil || r.Status != http.StatusUnauthorized {
			t.Fatalf("confidential client without secret: %d %s", r.Status, r.Body)
		}
		// The failed attempt above did not burn the code: the right secret works.
		r, tok := e.token(code, redirectMD, md)
		if tok == nil {
			t.Fatalf("confidential token: %d %s", r.Status, r.Body)
		}
		if _, bun := e.claim(tok["access_token"].(string), [2]string{}, "", dstu1.FormatJSON); bun == nil {
			t.Fatal("claim with confidential client's token failed")
		}

		// Mobile: activation code → Authorize answers JSON → Token.
		q := url.Values{"client_id": {mobileAppID}, "patient": {patientA}, "user": {practUser}, "resource": {mobileAppID}}
		ml := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/MobileLaunch?" + q.Encode(), basic: portal})
		m := jsonOf(t, ml)
		act, _ := m["activation_code"].(string)
		if ml.Status != http.StatusOK || act == "" || m["expires_in"].(float64) != 7 {
			t.Fatalf("MobileLaunch: %d %s", ml.Status, ml.Body)
		}
		aq := url.Values{"response_type": {"code"}, "client_id": {mobileAppID}, "redirect_uri": {redirectMD},
			"scope": {"patient/*.read launch:" + act}, "state": {"x"}}
		ar := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + aq.Encode()})
		ac, _ := jsonOf(t, ar)["authorization_code"].(string)
		if ar.Status != http.StatusOK || ac == "" {
			t.Fatalf("mobile Authorize: %d %s", ar.Status, ar.Body)
		}
		if r, tok := e.token(ac, redirectMD, md); tok == nil || tok["patient"] != patientA {
			t.Fatalf("mobile token: %d %s", r.Status, r.Body)
		}
		// The activation code is single use.
		if ar := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + aq.Encode()}); ar.Status != http.StatusBadRequest || jsonOf(t, ar)["error"] != "invalid_grant" {
			t.Fatalf("reused activation code: %d %s", ar.Status, ar.Body)
		}
	})
}

// TestNegativePaths: replayed and expired codes, wrong redirect URIs, wrong
// secrets, unknown launches, expired bearer tokens, rate limiting.
func TestNegativePaths(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, nil)
		md := [2]string{mobileAppID, mdSecret}

		t.Run("replayed code revokes its tokens", func(t *testing.T) {
			e.t = t
			code := e.authorize("Game", e.game, e.launch("Game", patientA))
			_, tok := e.token(code, e.game, [2]string{})
			if tok == nil {
				t.Fatal("first exchange failed")
			}
			r, again := e.token(code, e.game, [2]string{})
			if again != nil || r.Status != http.StatusBadRequest || jsonOf(t, r)["error"] != "invalid_grant" {
				t.Fatalf("replayed code: %d %s", r.Status, r.Body)
			}
			if r, _ := e.claim(tok["access_token"].(string), [2]string{}, "", dstu1.FormatJSON); r.Status != http.StatusUnauthorized {
				t.Fatalf("token of a replayed code still works: %d", r.Status)
			}
		})
		t.Run("expired code", func(t *testing.T) {
			e.t = t
			code := e.authorize("Game", e.game, e.launch("Game", patientA))
			e.oa.SetClock(func() time.Time { return time.Now().Add(61 * time.Second) })
			defer e.oa.SetClock(time.Now)
			if r, tok := e.token(code, e.game, [2]string{}); tok != nil || jsonOf(t, r)["error"] != "invalid_grant" || !strings.Contains(r.String(), "expired") {
				t.Fatalf("expired code: %d %s", r.Status, r.Body)
			}
		})
		t.Run("expired launch", func(t *testing.T) {
			e.t = t
			launch := e.launch("Game", patientA)
			e.oa.SetClock(func() time.Time { return time.Now().Add(6 * time.Minute) })
			defer e.oa.SetClock(time.Now)
			q := url.Values{"response_type": {"code"}, "client_id": {"Game"}, "redirect_uri": {e.game}, "scope": {"patient/*.read launch:" + launch}, "state": {"s"}}
			r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
			loc, _ := url.Parse(r.Header.Get("Location"))
			if r.Status != http.StatusFound || loc.Query().Get("error") != "access_denied" || loc.Query().Get("code") != "" {
				t.Fatalf("expired launch: %d %s", r.Status, r.Header.Get("Location"))
			}
		})
		t.Run("wrong redirect uri is never redirected to", func(t *testing.T) {
			e.t = t
			launch := e.launch("Game", patientA)
			for _, bad := range []string{"https://evil.example/cb", e.game + "/", e.game + "?x=1", ""} {
				q := url.Values{"response_type": {"code"}, "client_id": {"Game"}, "redirect_uri": {bad}, "scope": {"patient/*.read launch:" + launch}}
				if bad == "" {
					q.Set("client_id", "NoSuchApp")
				}
				r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
				if r.Status != http.StatusBadRequest || r.Header.Get("Location") != "" {
					t.Fatalf("redirect_uri %q: %d Location=%q", bad, r.Status, r.Header.Get("Location"))
				}
			}
			// The launch was not consumed by the refusals.
			code := e.authorize("Game", e.game, launch)
			// Token with another redirect_uri than Authorize used.
			if r, tok := e.token(code, "https://evil.example/cb", [2]string{}); tok != nil || jsonOf(t, r)["error"] != "invalid_grant" {
				t.Fatalf("token with other redirect_uri: %d %s", r.Status, r.Body)
			}
		})
		t.Run("launch of another client", func(t *testing.T) {
			e.t = t
			launch := e.launch("Game", patientA)
			q := url.Values{"response_type": {"code"}, "client_id": {mobileAppID}, "redirect_uri": {redirectMD}, "scope": {"launch:" + launch}}
			r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
			loc, _ := url.Parse(r.Header.Get("Location"))
			if r.Status != http.StatusFound || !strings.HasPrefix(loc.String(), redirectMD) || loc.Query().Get("error") != "access_denied" {
				t.Fatalf("foreign launch: %d %s", r.Status, loc)
			}
		})
		t.Run("wrong client secret", func(t *testing.T) {
			e.t = t
			code := e.authorize(mobileAppID, redirectMD, e.launch(mobileAppID, patientA))
			r, tok := e.token(code, redirectMD, [2]string{mobileAppID, "wrong"})
			if tok != nil || r.Status != http.StatusUnauthorized || jsonOf(t, r)["error"] != "invalid_client" || r.Header.Get("WWW-Authenticate") == "" {
				t.Fatalf("wrong secret: %d %s", r.Status, r.Body)
			}
			if _, tok := e.token(code, redirectMD, md); tok == nil {
				t.Fatal("right secret after a wrong one failed")
			}
		})
		t.Run("launch needs portal credentials", func(t *testing.T) {
			e.t = t
			q := url.Values{"client_id": {"Game"}, "patient": {patientA}}
			if r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Launch?" + q.Encode(), basic: [2]string{portalUser, "nope"}}); r.Status != http.StatusUnauthorized {
				t.Fatalf("launch with wrong password: %d", r.Status)
			}
			q.Set("client_id", "Nope")
			if r := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Launch?" + q.Encode(), basic: portal}); r.Status != http.StatusBadRequest {
				t.Fatalf("launch of unknown app: %d", r.Status)
			}
		})
		t.Run("expired bearer token", func(t *testing.T) {
			e.t = t
			code := e.authorize("Game", e.game, e.launch("Game", patientA))
			_, tok := e.token(code, e.game, [2]string{})
			access := tok["access_token"].(string)
			e.oa.SetClock(func() time.Time { return time.Now().Add(16 * time.Minute) })
			defer e.oa.SetClock(time.Now)
			for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
				r, _ := e.claim(access, [2]string{}, "", f)
				if r.Status != http.StatusUnauthorized {
					t.Fatalf("expired token: %d %s", r.Status, r.Body)
				}
				codes, details := outcome(t, r, f)
				if codes[0] != "expired" || !strings.HasPrefix(details[0], "Authentication failed: Bearer token "+access[:8]) ||
					!strings.Contains(details[0], " has expired at ") || strings.Contains(details[0], access) {
					t.Fatalf("expired outcome: %v %v", codes, details)
				}
			}
		})
		t.Run("unknown bearer token", func(t *testing.T) {
			e.t = t
			if r, _ := e.claim("not-a-token", [2]string{}, "", dstu1.FormatJSON); r.Status != http.StatusUnauthorized ||
				!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("unknown token: %d %s", r.Status, r.Header.Get("Content-Type"))
			}
		})
	})
}

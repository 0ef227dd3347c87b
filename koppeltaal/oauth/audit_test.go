package oauth_test

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestLaunchAndTokenAudited: a real launch, authorization, token, refresh and
// the claim with the token leave records naming the portal, the OAuth client,
// the launch user and the patient; refused launches, codes, refresh tokens and
// client secrets leave records with their result (SQLite and PostgreSQL).
func TestLaunchAndTokenAudited(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, nil)
		if r := e.post(portal, "", patientA, dstu1.FormatJSON); r.Status != http.StatusOK {
			t.Fatalf("post: %d %s", r.Status, r.Body)
		}
		code := e.authorize("Game", e.game, e.launch("Game", patientA))
		r, tok := e.token(code, e.game, [2]string{})
		if tok == nil {
			t.Fatalf("token: %d %s", r.Status, r.Body)
		}
		if r, bun := e.claim(tok["access_token"].(string), [2]string{}, "", dstu1.FormatJSON); bun == nil || len(bun.Entries) == 0 {
			t.Fatalf("claim: %d %s", r.Status, r.Body)
		}
		if rr := e.refresh(tok["refresh_token"].(string), [2]string{}); rr.Status != http.StatusOK {
			t.Fatalf("refresh: %d %s", rr.Status, rr.Body)
		}
		// Refusals: a reused refresh token, a replayed code, a wrong client secret, an unknown application.
		if rr := e.refresh(tok["refresh_token"].(string), [2]string{}); rr.Status != http.StatusBadRequest {
			t.Fatalf("reused refresh: %d %s", rr.Status, rr.Body)
		}
		if rr, _ := e.token(code, e.game, [2]string{}); rr.Status != http.StatusBadRequest {
			t.Fatalf("replayed code: %d %s", rr.Status, rr.Body)
		}
		if rr, _ := e.token("x", redirectMD, [2]string{mobileAppID, "wrong"}); rr.Status != http.StatusUnauthorized {
			t.Fatalf("wrong secret: %d %s", rr.Status, rr.Body)
		}
		q := url.Values{"client_id": {"Nope"}, "patient": {patientB}, "user": {practUser}}
		if rr := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Launch?" + q.Encode(), basic: portal}); rr.Status != http.StatusBadRequest {
			t.Fatalf("launch of an unknown application: %d %s", rr.Status, rr.Body)
		}
		q = url.Values{"response_type": {"code"}, "client_id": {"Game"}, "redirect_uri": {e.game}, "scope": {"launch:" + e.launch("Game", patientB)}}
		e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()})
		if rr := e.do(req{method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()}); !strings.Contains(rr.Header.Get("Location"), "access_denied") {
			t.Fatalf("second Authorize of one launch: %d %s", rr.Status, rr.Header.Get("Location"))
		}
		if err := e.trail.Flush(ctx); err != nil {
			t.Fatal(err)
		}

		evs, err := audit.Query(ctx, e.st, audit.Filter{Patient: patientA})
		if err != nil {
			t.Fatal(err)
		}
		type key struct{ action, kind, name, detail string }
		got := map[key]audit.Event{}
		for _, ev := range evs {
			got[key{ev.Action, ev.Actor.Kind, ev.Actor.Name, ev.Detail}] = ev
			if ev.Actor.SourceIP != "127.0.0.1" || ev.Actor.RequestID == "" {
				t.Errorf("%s record lacks the source address or request id: %+v", ev.Action, ev.Actor)
			}
		}
		for _, want := range []struct {
			key
			client, user, tokenPatient, object string
		}{
			{key{audit.ActionLaunch, audit.KindInstance, portalUser, "web Game"}, "Game", practUser, "", "Launch/"},
			{key{audit.ActionAuthorize, audit.KindClient, "Game", "web"}, "Game", practUser, patientA, "Launch/"},
			{key{audit.ActionToken, audit.KindClient, "Game", "authorization_code"}, "Game", practUser, patientA, "Token/"},
			{key{audit.ActionToken, audit.KindClient, "Game", "refresh_token"}, "Game", practUser, patientA, "Token/"},
			{key{audit.ActionClaim, audit.KindBearer, gameUser, "CreateOrUpdateCarePlan"}, "Game", practUser, patientA, "MessageHeader/"},
		} {
			ev, ok := got[want.key]
			switch {
			case !ok:
				t.Errorf("no %+v record for patient A; have %+v", want.key, evs)
			case ev.Result != audit.ResultOK || ev.Actor.Client != want.client || ev.Actor.LaunchUser != want.user ||
				ev.Actor.TokenPatient != want.tokenPatient || !strings.HasPrefix(ev.Object, want.object) || ev.Actor.Domain != domain:
				t.Errorf("%+v record: %+v", want.key, ev)
			}
		}

		refused, err := audit.Query(ctx, e.st, audit.Filter{Action: audit.ActionToken})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []struct{ name, result, detail string }{
			{"Game", audit.ResultInvalid, "refresh_token: the refresh token was already used"},
			{"Game", audit.ResultInvalid, "authorization_code: the authorization code was already used"},
			{mobileAppID, audit.ResultDenied, "authorization_code: client authentication failed"},
		} {
			found := false
			for _, ev := range refused {
				found = found || (ev.Actor.Name == want.name && ev.Result == want.result && strings.HasPrefix(ev.Detail, want.detail))
			}
			if !found {
				t.Errorf("no token refusal %+v in %+v", want, refused)
			}
		}
		launches, err := audit.Query(ctx, e.st, audit.Filter{Patient: patientB})
		if err != nil {
			t.Fatal(err)
		}
		var details []string
		for _, ev := range launches {
			details = append(details, ev.Action+" "+ev.Result+" "+ev.Detail)
		}
		for _, want := range []string{"launch invalid web Nope: invalid_request", "launch ok web Game", "authorize ok web",
			"authorize denied the launch was already used"} {
			if !strings.Contains(strings.Join(details, "\n"), want) {
				t.Errorf("patient B's records lack %q: %q", want, details)
			}
		}
	})
}

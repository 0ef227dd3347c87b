package regress

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

func ssoCases() []Case {
	mod := []Capability{CapModule}
	confidential := []Capability{CapModule, CapConfidentialClient}
	public := []Capability{CapModule, CapPublicClient}
	return []Case{
		{ID: "sso/launch-redirect", Title: "Launch (portal credentials, a patient the server never saw) redirects to the launch URL with iss, launch, launch_id and application_id",
			Ref: "CLIENTS.md Calls: web launch; SPEC.md §8.2 steps 1–2", Needs: mod, Run: func(t *T) {
				resp := t.webLaunch(t.module().ClientID, t.newLaunchContext(t.newDossier()))
				t.Require(isRedirect(resp.Status), "GET /OAuth2/Koppeltaal/Launch", "a 3xx redirect", resp.Status)
				q := queryOf(resp.Header.Get("Location"))
				t.Expect(strings.HasSuffix(strings.TrimRight(q.Get("iss"), "/"), fhirPrefix), "iss in the Location", "the FHIR base (…"+fhirPrefix+")", q.Get("iss"))
				t.Expect(q.Get("launch") != "", "launch in the Location", "a launch id", "absent")
				t.Equal("launch_id in the Location", q.Get("launch"), q.Get("launch_id"))
				t.Equal("application_id in the Location", t.module().ClientID, q.Get("application_id"))
			}},
		{ID: "sso/launch-needs-portal-credentials", Title: "Launch without credentials is refused with 401",
			Ref: "CLIENTS.md Calls: web launch (Basic auth of the portal's instance)", Needs: mod, Run: func(t *T) {
				resp := t.Do(Request{URL: oauthPrefix + "/Launch?" + launchQuery(t.module().ClientID, t.newLaunchContext(t.newDossier()))})
				t.Expect(resp.Status == http.StatusUnauthorized, "Launch without credentials", "HTTP 401", resp.Status)
			}},
		{ID: "sso/authorize-redirect", Title: "Authorize (no credentials, no login page) redirects to redirect_uri with code and state",
			Ref: "CLIENTS.md Calls: authorize; SPEC.md §8.2 step 5", Needs: mod, Run: func(t *T) {
				t.code(t.module(), t.launchID(t.module().ClientID, t.newLaunchContext(t.newDossier())))
			}},
		{ID: "sso/token-post-client-auth", Title: "Token by POST with Basic client_id:secret returns the token fields clients read",
			Ref: "CLIENTS.md Calls: token; SPEC.md §8.2 steps 6–7", Needs: confidential, Run: func(t *T) {
				t.tokenFlow(t.module(), http.MethodPost)
			}},
		{ID: "sso/token-get-client-auth", Title: "Token by GET with Basic client_id:secret (the Python connector) returns the token fields",
			Ref: "CLIENTS.md Calls: token (GET or POST)", Needs: confidential, Run: func(t *T) {
				t.tokenFlow(t.module(), http.MethodGet)
			}},
		{ID: "sso/token-get-public", Title: "Token by GET without client authentication (a browser game, a public client) returns the token fields",
			Ref: "CLIENTS.md Calls: token; What browser modules send", Needs: public, Run: func(t *T) {
				t.tokenFlow(*t.s.cfg.PublicClient, http.MethodGet)
			}},
		{ID: "sso/token-post-public", Title: "Token by POST without client authentication (a public client) returns the token fields",
			Ref: "CLIENTS.md Calls: token; SPEC.md §8.1", Needs: public, Run: func(t *T) {
				t.tokenFlow(*t.s.cfg.PublicClient, http.MethodPost)
			}},
		{ID: "sso/code-single-use", Title: "an authorization code works once",
			Ref: "SPEC.md §8.2 step 5 (single-use), §8.6 invalid_grant", Needs: mod, Run: func(t *T) {
				c := t.module()
				code := t.code(c, t.launchID(c.ClientID, t.newLaunchContext(t.newDossier())))
				resp, _ := t.exchangeCode(c, code, http.MethodPost)
				t.Require(resp.Status == http.StatusOK, "the first token request", "HTTP 200", resp.Status)
				again, tok := t.exchangeCode(c, code, http.MethodPost)
				t.Expect(again.Status == http.StatusBadRequest && tok.Error == "invalid_grant", "the same code again", `HTTP 400 {"error":"invalid_grant"}`, again.Status)
			}},
		{ID: "sso/launch-single-use", Title: "a launch authorizes once",
			Ref: "SPEC.md §8.2 (1.1.0: an authorization request cannot be used twice)", Needs: mod, Run: func(t *T) {
				c := t.module()
				launch := t.launchID(c.ClientID, t.newLaunchContext(t.newDossier()))
				t.code(c, launch)
				resp := t.authorize(c.ClientID, c.RedirectURI, launch, "again")
				t.Expect(queryOf(resp.Header.Get("Location")).Get("code") == "", "Authorize with a used launch", "no code (an error)", resp.Header.Get("Location"))
			}},
		{ID: "sso/token-needs-client-auth", Title: "a confidential client's code without client authentication, or with a wrong secret, gets no token",
			Ref: "SPEC.md §8.1, §8.6 invalid_client", Needs: confidential, Run: func(t *T) {
				c := t.module()
				code := t.code(c, t.launchID(c.ClientID, t.newLaunchContext(t.newDossier())))
				params := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}}
				none := t.tokenRequest(http.MethodPost, params, nil)
				t.Expect(none.Status == http.StatusBadRequest || none.Status == http.StatusUnauthorized, "Token without client authentication", "HTTP 400 or 401", none.Status)
				wrong := t.tokenRequest(http.MethodPost, params, &Account{Username: c.ClientID, Password: c.ClientSecret + "-wrong"})
				t.Expect(wrong.Status == http.StatusUnauthorized && t.tokenOf(wrong).Error == "invalid_client", "Token with a wrong secret", `HTTP 401 {"error":"invalid_client"}`, wrong.Status)
				ok, _ := t.exchangeCode(c, code, http.MethodPost)
				t.Expect(ok.Status == http.StatusOK, "the code after the refusals, with the right secret", "HTTP 200 (not used up)", ok.Status)
			}},
		{ID: "sso/refresh-rotation", Title: "a refresh gives a new access and refresh token; the old access token stops working",
			Ref: "CLIENTS.md Calls: refresh; SPEC.md §8.4", Needs: mod, Run: func(t *T) {
				c, old := t.refreshable()
				resp := t.tokenRequest(http.MethodPost, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old.RefreshToken}}, clientAuth(c))
				t.Require(resp.Status == http.StatusOK, "POST Token grant_type=refresh_token", "HTTP 200", resp.Status)
				tok := t.tokenOf(resp)
				t.Expect(tok.AccessToken != "" && tok.AccessToken != old.AccessToken, "the new access_token", "present and different from the old one", tok.AccessToken == old.AccessToken)
				t.Expect(tok.RefreshToken != "" && tok.RefreshToken != old.RefreshToken, "the new refresh_token", "present and different from the old one", tok.RefreshToken == old.RefreshToken)
				gone := t.Do(Request{URL: claimURL("", nil), Bearer: old.AccessToken})
				t.Expect(gone.Status == http.StatusUnauthorized, "a call with the old access token", "HTTP 401", gone.Status)
				works := t.Do(Request{URL: claimURL("", nil), Bearer: tok.AccessToken})
				t.Expect(works.Status == http.StatusOK, "a call with the new access token", "HTTP 200", works.Status)
			}},
		{ID: "sso/refresh-reuse-refused", Title: "a refresh token that was already used is refused",
			Ref: "SPEC.md §8.4, §17 item 29 (invalidate the used refresh token)", Needs: mod, Run: func(t *T) {
				c, old := t.refreshable()
				params := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {old.RefreshToken}}
				t.Require(t.tokenRequest(http.MethodPost, params, clientAuth(c)).Status == http.StatusOK, "the first refresh", "HTTP 200", "other")
				again := t.tokenRequest(http.MethodPost, params, clientAuth(c))
				t.Expect(again.Status == http.StatusBadRequest && t.tokenOf(again).Error == "invalid_grant", "the same refresh token again", `HTTP 400 {"error":"invalid_grant"}`, again.Status)
			}},
		{ID: "sso/mobile-launch", Title: "MobileLaunch returns an activation code; Authorize with it gives an authorization_code; Token a token",
			Ref: "CLIENTS.md Calls: mobile launch; SPEC.md §8.3", Needs: mod, Run: func(t *T) {
				c := t.module()
				lc := t.newLaunchContext(t.newDossier())
				code := t.activationCode(c.ClientID, lc)
				state := t.Unique("state")
				resp := t.authorize(c.ClientID, c.RedirectURI, code, state)
				authCode := ""
				if resp.Status == http.StatusOK {
					var v struct {
						AuthorizationCode string `json:"authorization_code"`
					}
					_ = json.Unmarshal(resp.Body, &v)
					authCode = v.AuthorizationCode
				} else if isRedirect(resp.Status) {
					authCode = queryOf(resp.Header.Get("Location")).Get("code")
				}
				t.Require(authCode != "", "Authorize with the activation code as launch", `JSON {"authorization_code":"…"} (or a redirect with code)`, resp.Status)
				tr, tok := t.exchangeCode(c, authCode, http.MethodPost)
				t.Require(tr.Status == http.StatusOK && tok.AccessToken != "", "Token for the mobile authorization code", "HTTP 200 with an access_token", tr.Status)
				t.Equal("patient in the token", lc.Patient, tok.Patient)
				again := t.authorize(c.ClientID, c.RedirectURI, code, state)
				t.Expect(!strings.Contains(string(again.Body), "authorization_code") && queryOf(again.Header.Get("Location")).Get("code") == "",
					"Authorize with the same activation code again", "refused (a mobile launch code works once)", again.Status)
			}},
		{ID: "sso/bearer-claims-launch-patient", Title: "a Bearer token claims its launch patient's messages only",
			Ref: "SPEC.md §8.5, §2.2 (a bearer token only requests information for its patient)", Needs: mod, Formats: both, Run: func(t *T) {
				mine, other := t.newDossier(), t.newDossier()
				t.postOK(t.Portal(), other, t.carePlan(other, "Available"))
				t.postOK(t.Portal(), mine, t.carePlan(mine, "Available"))
				tok := t.launchToken(t.module(), t.newLaunchContext(mine))
				var got []string
				for range 5 {
					resp := t.Do(Request{URL: claimURL("", nil), Bearer: tok.AccessToken})
					t.Require(resp.Status == http.StatusOK, "GetNextNewAndClaim with the Bearer token", "HTTP 200", resp.Status)
					b := t.bundle(resp)
					if len(b.Entries) == 0 {
						break
					}
					got = append(got, stripHistory(b.MessageHeader().Patient()))
					t.Do(Request{Method: http.MethodPut, URL: b.Entries[0].ID, Bearer: tok.AccessToken, Body: ackBody(b, t.Format, "Success", "")})
				}
				t.Expect(len(got) == 1 && got[0] == mine.Patient, "the patients of the messages claimed with the token", "only "+mine.Patient, got)
				t.claimWait(t.moduleAccount(), other.Patient) // still there for Basic
			}},
		{ID: "sso/bearer-other-patient", Title: "a Bearer token cannot search or read another patient's messages",
			Ref: "SPEC.md §8.5", Needs: mod, Formats: both, Run: func(t *T) {
				mine, other := t.newDossier(), t.newDossier()
				t.postOK(t.Portal(), other, t.carePlan(other, "Available"))
				tok := t.launchToken(t.module(), t.newLaunchContext(mine))
				q := url.Values{"_summary": {"true"}, "Patient": {other.Patient}}
				resp := t.Do(Request{URL: fhir("/MessageHeader/_search?" + q.Encode()), Bearer: tok.AccessToken})
				if resp.Status == http.StatusOK {
					t.Expect(len(t.bundle(resp).Entries) == 0, "a search for another patient with the token", "nothing (or a refusal)", entryTypes(t.bundle(resp)))
				} else {
					t.outcome(resp)
				}
				msg := t.claimWait(t.moduleAccount(), other.Patient)
				id, _ := headerRef(msg)
				read := t.Do(Request{URL: fhir("/MessageHeader/_search?" + url.Values{"_id": {id}}.Encode()), Bearer: tok.AccessToken})
				t.Expect(read.Status >= 400, "reading another patient's message by _id with the token", "a 4xx refusal", read.Status)
			}},
		{ID: "sso/bearer-posts-and-acks", Title: "with a Bearer token a module posts a status update and acknowledges to the history-less id with Accept */*",
			Ref: "CLIENTS.md What browser modules send; SPEC.md §8.2 step 8", Needs: mod, Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				tok := t.launchToken(t.module(), t.newLaunchContext(d))
				resp := t.Do(Request{URL: claimURL("", nil), Bearer: tok.AccessToken})
				t.Require(resp.Status == http.StatusOK, "claim with the Bearer token", "HTTP 200", resp.Status)
				got := t.bundle(resp)
				t.Require(len(got.Entries) > 0, "claim with the Bearer token", "the launch patient's CarePlan", "an empty bundle")
				status := t.activityStatus(d, t.moduleBase(), "InProgress", false)
				post := t.Do(Request{Method: http.MethodPost, URL: fhir("/Mailbox"), Bearer: tok.AccessToken, Body: t.encode(status)})
				t.Expect(post.Status == http.StatusOK, "Mailbox POST with the Bearer token", "HTTP 200", post.Status)
				ack := t.Do(Request{Method: http.MethodPut, URL: got.Entries[0].ID, Bearer: tok.AccessToken, Accept: "*/*", Body: ackBody(got, t.Format, "Success", "")})
				t.Expect(ok2xx(ack), "PUT to the history-less id with the Bearer token and Accept */*", "HTTP 2xx", ack.Status)
			}},
		{ID: "sso/bearer-unknown-token", Title: "an unknown Bearer token gets 401 with an OperationOutcome in the client's format",
			Ref: "SPEC.md §2.2 (expired/unknown token), CLIENTS.md Transport facts (JSON errors)", Needs: mod, Formats: both, Run: func(t *T) {
				t.outcome(t.Do(Request{URL: claimURL("", nil), Bearer: "regress-" + t.Unique("not-a-token")}), http.StatusUnauthorized)
			}},
	}
}

// tokenFlow runs the web launch for c and redeems the code by method, checking every field CLIENTS.md lists.
func (t *T) tokenFlow(c OAuthClient, method string) {
	lc := t.newLaunchContext(t.newDossier())
	code := t.code(c, t.launchID(c.ClientID, lc))
	resp, tok := t.exchangeCode(c, code, method)
	t.Require(resp.Status == http.StatusOK, method+" /OAuth2/Koppeltaal/Token", "HTTP 200", resp.Status)
	t.Expect(tok.AccessToken != "", "access_token", "present", "absent")
	t.Equal("token_type", "Bearer", tok.TokenType)
	n, isNum := tok.ExpiresIn.(float64)
	t.Expect(isNum && n > 0, "expires_in", "a number of seconds > 0", tok.ExpiresIn)
	t.Equal("scope", "patient/*.read", tok.Scope)
	t.Equal("domain", t.s.cfg.Domain, tok.Domain)
	t.Equal("patient", lc.Patient, tok.Patient)
	t.Equal("user", lc.User, tok.User)
	t.Equal("resource", lc.Resource, tok.Resource)
	t.Equal("intent", lc.Intent, tok.Intent)
	works := t.Do(Request{URL: claimURL("", nil), Bearer: tok.AccessToken, Accept: mediaTypes(dstu1.FormatJSON)})
	t.Expect(works.Status == http.StatusOK, "GetNextNewAndClaim with the access token", "HTTP 200", works.Status)
}

// refreshable launches the module and returns its token; the case is skipped when the target issues the
// module no refresh token (a setting of the OAuth client, CLIENTS.md).
func (t *T) refreshable() (OAuthClient, token) {
	c := t.module()
	tok := t.launchToken(c, t.newLaunchContext(t.newDossier()))
	if tok.RefreshToken == "" {
		t.Skipf("the target issues no refresh_token to %s (a setting of the OAuth client)", c.ClientID)
	}
	return c, tok
}

// activationCode asks for a mobile launch as the portal; it skips the case when the target has no
// MobileLaunch endpoint.
func (t *T) activationCode(clientID string, lc launchContext) string {
	resp := t.Do(Request{URL: oauthPrefix + "/MobileLaunch?" + launchQuery(clientID, lc), Basic: t.Portal(), Accept: "application/json"})
	if resp.Status == http.StatusNotFound || resp.Status == http.StatusNotImplemented {
		t.Skipf("the target has no MobileLaunch endpoint (HTTP %d)", resp.Status)
	}
	t.Require(resp.Status == http.StatusOK, "GET /OAuth2/Koppeltaal/MobileLaunch", "HTTP 200 with JSON", resp.Status)
	var v struct {
		ActivationCode string  `json:"activation_code"`
		ExpiresIn      float64 `json:"expires_in"`
	}
	err := json.Unmarshal(resp.Body, &v)
	t.Require(err == nil && v.ActivationCode != "", "the MobileLaunch reply", `JSON {"activation_code":"…","expires_in":…}`, excerpt(resp.Body, 200))
	t.Expect(v.ExpiresIn > 0, "expires_in of the activation code", "> 0", v.ExpiresIn)
	return v.ActivationCode
}

package regress

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/koppelpoort/koppelpoort/koppeltaal/testclient"
)

// token is a Token endpoint reply as clients read it (CLIENTS.md Calls: token), or its error. expires_in
// is read as any JSON value, so a case can say when it is not a number.
type token struct {
	testclient.Token
	ExpiresIn any    `json:"expires_in"`
	Error     string `json:"error"`
}

// launchContext is what a portal passes to Launch.
type launchContext struct {
	Patient, User, Resource, Intent string
}

func (t *T) newLaunchContext(d *dossier) launchContext {
	return launchContext{Patient: d.Patient, User: d.Practitioner, Resource: d.Activity, Intent: "plan"}
}

// launchQuery is the Launch/MobileLaunch query for client and lc.
func launchQuery(clientID string, lc launchContext) string {
	q := url.Values{"client_id": {clientID}, "patient": {lc.Patient}, "user": {lc.User}, "resource": {lc.Resource}}
	if lc.Intent != "" {
		q.Set("intent", lc.Intent)
	}
	return q.Encode()
}

// webLaunch asks for a web launch as the portal and returns the reply (a redirect).
func (t *T) webLaunch(clientID string, lc launchContext) *Response {
	return t.Do(Request{URL: oauthPrefix + "/Launch?" + launchQuery(clientID, lc), Basic: t.Portal(), Accept: "*/*"})
}

// launchID starts a web launch and returns the launch id from the redirect.
func (t *T) launchID(clientID string, lc launchContext) string {
	resp := t.webLaunch(clientID, lc)
	t.Require(isRedirect(resp.Status), "GET /OAuth2/Koppeltaal/Launch (portal credentials)", "a 3xx redirect to the launch URL", resp.Status)
	q := queryOf(resp.Header.Get("Location"))
	t.Require(q.Get("launch") != "", "the Location of the launch redirect", "a launch parameter", resp.Header.Get("Location"))
	return q.Get("launch")
}

// authorize sends the browser's Authorize request (no credentials) and returns the reply.
func (t *T) authorize(clientID, redirect, launch, state string) *Response {
	q := url.Values{"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirect},
		"scope": {"patient/*.read launch:" + launch}, "state": {state}}
	return t.Do(Request{URL: oauthPrefix + "/Authorize?" + q.Encode(), Accept: "text/html,*/*"})
}

// code authorizes a launch and returns the code from the redirect to redirect_uri.
func (t *T) code(c OAuthClient, launch string) string {
	state := t.Unique("state")
	resp := t.authorize(c.ClientID, c.RedirectURI, launch, state)
	t.Require(isRedirect(resp.Status), "GET /OAuth2/Koppeltaal/Authorize", "a 3xx redirect to redirect_uri", resp.Status)
	loc := resp.Header.Get("Location")
	q := queryOf(loc)
	t.Require(strings.HasPrefix(loc, c.RedirectURI) && q.Get("code") != "", "the Location of the Authorize redirect", c.RedirectURI+"?code=…&state="+state, loc)
	t.Equal("state in the Authorize redirect", state, q.Get("state"))
	return q.Get("code")
}

// tokenRequest calls Token by method (GET: parameters in the query; POST: a form), with Basic client
// authentication when basic is set.
func (t *T) tokenRequest(method string, params url.Values, basic *Account) *Response {
	r := Request{Method: method, URL: oauthPrefix + "/Token", Basic: basic, Accept: "application/json"}
	if method == http.MethodGet {
		r.URL += "?" + params.Encode()
	} else {
		r.Body, r.ContentType = []byte(params.Encode()), "application/x-www-form-urlencoded"
	}
	return t.Do(r)
}

// clientAuth is c's Basic credentials, nil for a public client.
func clientAuth(c OAuthClient) *Account {
	if c.ClientSecret == "" {
		return nil
	}
	return &Account{Username: c.ClientID, Password: c.ClientSecret}
}

// exchangeCode redeems a code by method and returns the reply and the parsed token.
func (t *T) exchangeCode(c OAuthClient, code, method string) (*Response, token) {
	resp := t.tokenRequest(method, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {c.RedirectURI}}, clientAuth(c))
	return resp, t.tokenOf(resp)
}

// tokenOf parses a Token reply (JSON, CLIENTS.md).
func (t *T) tokenOf(resp *Response) token {
	var tok token
	t.Expect(strings.Contains(resp.ContentType(), "json"), "Content-Type of the Token reply", "application/json", resp.Header.Get("Content-Type"))
	err := json.Unmarshal(resp.Body, &tok)
	t.Require(err == nil, "the Token reply", "a JSON object", err)
	return tok
}

// launchToken runs Launch → Authorize → Token (POST) for c about lc and returns the token.
func (t *T) launchToken(c OAuthClient, lc launchContext) token {
	resp, tok := t.exchangeCode(c, t.code(c, t.launchID(c.ClientID, lc)), http.MethodPost)
	t.Require(resp.Status == http.StatusOK && tok.AccessToken != "", "POST /OAuth2/Koppeltaal/Token", "HTTP 200 with an access_token", resp.Status)
	return tok
}

func isRedirect(status int) bool { return status >= 300 && status < 400 }

// module is the configured module's OAuth client.
func (t *T) module() OAuthClient { return t.s.cfg.Module.OAuthClient }

// moduleAccount is the configured module's instance credentials.
func (t *T) moduleAccount() *Account { a := t.s.cfg.Module.Account; return &a }

package regress

import (
	"net/http"
	"net/url"
	"strings"
)

func corsCases() []Case {
	cors := []Capability{CapCORS}
	return []Case{
		{ID: "cors/metadata-preflight", Title: "the preflight of a cross-origin metadata GET with Content-Type: application/json is allowed",
			Ref: "CLIENTS.md What browser modules send (metadata answers preflights for the module's origin)", Needs: cors, Run: func(t *T) {
				t.preflight(fhir("/metadata"), http.MethodGet, "content-type")
			}},
		{ID: "cors/metadata-get", Title: "a cross-origin metadata GET carries Access-Control-Allow-Origin",
			Ref: "CLIENTS.md What browser modules send", Needs: cors, Run: func(t *T) {
				resp := t.Do(Request{URL: fhir("/metadata"), Accept: testGameAccept, ContentType: "application/json", Header: t.origin()})
				t.Expect(resp.Status == http.StatusOK, "GET metadata from "+t.s.cfg.CORSOrigin, "HTTP 200", resp.Status)
				t.expectAllowOrigin(resp)
			}},
		{ID: "cors/token-get", Title: "a cross-origin Token GET (a browser game) carries Access-Control-Allow-Origin, also when it is refused",
			Ref: "CLIENTS.md Calls: token (browser games call from another origin: CORS)", Needs: cors, Run: func(t *T) {
				q := url.Values{"grant_type": {"authorization_code"}, "code": {t.Unique("no-such-code")}, "redirect_uri": {"https://game.regress.example/"}}
				resp := t.Do(Request{URL: oauthPrefix + "/Token?" + q.Encode(), Accept: testGameAccept, Header: t.origin()})
				t.expectAllowOrigin(resp)
			}},
		{ID: "cors/token-preflight", Title: "the preflight of a cross-origin Token POST is allowed",
			Ref: "CLIENTS.md Calls: token (CORS)", Needs: cors, Run: func(t *T) {
				t.preflight(oauthPrefix+"/Token", http.MethodPost, "content-type")
			}},
		{ID: "cors/api-preflight-bearer", Title: "the preflights of a claim and an acknowledgement with Authorization: Bearer are allowed",
			Ref: "CLIENTS.md What browser modules send (claim, search, POST and PUT with a Bearer token)", Needs: cors, Run: func(t *T) {
				t.preflight(claimURL("", nil), http.MethodGet, "authorization")
				t.preflight(fhir("/MessageHeader/1"), http.MethodPut, "authorization, content-type")
				t.preflight(fhir("/Mailbox"), http.MethodPost, "authorization, content-type")
			}},
	}
}

func (t *T) origin() http.Header { return http.Header{"Origin": {t.s.cfg.CORSOrigin}} }

// preflight sends the OPTIONS a browser sends before a cross-origin request and checks it is allowed.
func (t *T) preflight(path, method, headers string) {
	h := t.origin()
	h.Set("Access-Control-Request-Method", method)
	h.Set("Access-Control-Request-Headers", headers)
	resp := t.Do(Request{Method: http.MethodOptions, URL: path, Header: h, Accept: "-"})
	t.Expect(ok2xx(resp), "the preflight of "+method+" "+path, "HTTP 2xx", resp.Status)
	t.expectAllowOrigin(resp)
	allowed := strings.ToLower(resp.Header.Get("Access-Control-Allow-Headers"))
	for _, want := range strings.Split(headers, ",") {
		want = strings.TrimSpace(want)
		t.Expect(allowed == "*" || containsToken(allowed, want), "Access-Control-Allow-Headers", "includes "+want, allowed)
	}
	if method != http.MethodGet && method != http.MethodPost { // the CORS-safelisted methods need not be listed
		methods := strings.ToUpper(resp.Header.Get("Access-Control-Allow-Methods"))
		t.Expect(methods == "*" || containsToken(strings.ToLower(methods), strings.ToLower(method)), "Access-Control-Allow-Methods", "includes "+method, methods)
	}
}

func (t *T) expectAllowOrigin(resp *Response) {
	got := resp.Header.Get("Access-Control-Allow-Origin")
	t.Expect(got == t.s.cfg.CORSOrigin || got == "*", "Access-Control-Allow-Origin", t.s.cfg.CORSOrigin, got)
}

func containsToken(list, tok string) bool {
	for _, v := range strings.Split(list, ",") {
		if strings.TrimSpace(v) == tok {
			return true
		}
	}
	return false
}

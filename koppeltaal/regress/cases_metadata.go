package regress

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// Conformance security extensions (CLIENTS.md: the Test Game looks the OAuth URIs up under exactly the
// smartplatforms.org form; the Launch extension keeps its vitalhealthsoftware.com URL).
const (
	extAuthorize = "http://fhir-registry.smartplatforms.org/Profile/oauth-uris#authorize"
	extToken     = "http://fhir-registry.smartplatforms.org/Profile/oauth-uris#token"
	extLaunch    = "http://fhir.vitalhealthsoftware.com/Profile/Conformance#Launch"
)

// testGameAccept is the Accept header the Koppeltaal Test Game's jQuery sends (recorded requests).
const testGameAccept = "application/json, text/javascript, */*; q=0.01"

func metadataCases() []Case {
	return []Case{
		{ID: "metadata/anonymous", Title: "GET metadata without credentials answers 200 with a Conformance statement",
			Ref: "CLIENTS.md Calls: metadata; SPEC.md §12 (a launched module reads it before it has a token)", Formats: both,
			Run: func(t *T) { t.conformance() }},
		{ID: "metadata/identity", Title: "Conformance has name Koppeltaal, a version string v1.3.x and fhirVersion 0.0.82",
			Ref: "CLIENTS.md Calls: metadata", Formats: both, Run: func(t *T) {
				c := t.conformance()
				t.Equal("Conformance.name", "Koppeltaal", c.Str("name"))
				t.Expect(strings.HasPrefix(c.Str("version"), "v1.3"), "Conformance.version", `a version string such as "v1.3.x"`, c.Str("version"))
				t.Equal("Conformance.fhirVersion", "0.0.82", c.Str("fhirVersion"))
			}},
		{ID: "metadata/xml-starts-with-conformance", Title: "the XML Conformance reply starts with <Conformance",
			Ref: "CLIENTS.md Calls: metadata (XML reply must start with <Conformance)", Formats: xmlOnly, Run: func(t *T) {
				resp := t.Do(Request{URL: fhir("/metadata")})
				t.Expect(bytes.HasPrefix(bytes.TrimLeft(resp.Body, " \r\n\t"), []byte("<Conformance")), "the first bytes of the reply",
					"<Conformance (no XML declaration, no wrapper)", excerpt(resp.Body, 60))
			}},
		{ID: "metadata/oauth-uris-smartplatforms", Title: "Conformance publishes the authorize and token URIs under the smartplatforms.org extension URLs",
			Ref: "CLIENTS.md Fields clients require: Conformance OAuth extensions", Formats: both, Run: func(t *T) {
				sec := t.conformance().Get("rest", "security")
				for _, u := range []string{extAuthorize, extToken} {
					t.Expect(sec.Extension(u).ExtensionValue().Str() != "", "rest.security extension "+u, "present with a valueUri", "absent")
				}
			}},
		{ID: "metadata/launch-extension", Title: "Conformance publishes the Launch URI under the vitalhealthsoftware.com extension URL",
			Ref: "CLIENTS.md Fields clients require: Conformance OAuth extensions; SPEC.md §12", Formats: both, Run: func(t *T) {
				sec := t.conformance().Get("rest", "security")
				t.Expect(sec.Extension(extLaunch).ExtensionValue().Str() != "", "rest.security extension "+extLaunch, "present with a valueUri", "absent")
			}},
		{ID: "metadata/oauth-uris-at-root", Title: "the OAuth URIs are absolute and live at /OAuth2/Koppeltaal/ from the root of the host",
			Ref: "CLIENTS.md Transport facts (the Python connector drops any path prefix)", Formats: both, Run: func(t *T) {
				sec := t.conformance().Get("rest", "security")
				for u, want := range map[string]string{extAuthorize: "/Authorize", extToken: "/Token", extLaunch: "/Launch"} {
					v := sec.Extension(u, strings.Replace(u, "smartplatforms", "smarthealthit", 1)).ExtensionValue().Str()
					pu, err := url.Parse(v)
					t.Expect(err == nil && pu.IsAbs() && pu.Path == oauthPrefix+want, "the URI of "+u, "an absolute URL with path "+oauthPrefix+want, v)
				}
			}},
		{ID: "metadata/test-game", Title: "the Test Game's metadata GET (Content-Type: application/json, jQuery Accept) gets JSON with rest[0].security.extension[].valueUri",
			Ref: "CLIENTS.md What browser modules send; Conformance OAuth extensions", Formats: jsonOnly, Run: func(t *T) {
				resp := t.Do(Request{URL: fhir("/metadata"), Accept: testGameAccept, ContentType: "application/json"})
				t.Require(resp.Status == http.StatusOK, "GET metadata as the Test Game sends it", "HTTP 200", resp.Status)
				t.expectFormat(resp)
				// What koppeltaal.js does: meta.rest[0].security.extension, found by exact url.
				var meta struct {
					Rest []struct {
						Security struct {
							Extension []struct {
								URL      string `json:"url"`
								ValueURI string `json:"valueUri"`
							} `json:"extension"`
						} `json:"security"`
					} `json:"rest"`
				}
				err := json.Unmarshal(resp.Body, &meta)
				t.Require(err == nil && len(meta.Rest) > 0, "the JSON reply", `an object whose "rest" is an array (the game reads rest[0])`, err)
				found := map[string]string{}
				for _, e := range meta.Rest[0].Security.Extension {
					found[e.URL] = e.ValueURI
				}
				for _, u := range []string{extAuthorize, extToken} {
					t.Expect(found[u] != "", "rest[0].security.extension with url "+u, "present with valueUri", "absent")
				}
			}},
	}
}

// conformance GETs metadata anonymously and returns the Conformance resource.
func (t *T) conformance() *dstu1.Resource {
	resp := t.Do(Request{URL: fhir("/metadata")})
	t.Require(resp.Status == http.StatusOK, "GET metadata without credentials", "HTTP 200", resp.Status)
	r := t.resource(resp)
	t.Require(r.Type() == "Conformance", "the metadata reply", "a Conformance resource", r.Type())
	return r
}

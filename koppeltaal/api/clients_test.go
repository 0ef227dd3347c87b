package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Replies exactly as deployed clients read them (CLIENTS.md): these tests spell out the strings and fields
// instead of using the server's own constants, so that a change of wording fails here.

// textStaleVersion is compared by clients as an exact string: no final period (CLIENTS.md "Error texts").
const textStaleVersion = "The specified resource version is not correct"

// firstIssue returns issue[0].details of an OperationOutcome reply, the field clients compare.
func firstIssue(t *testing.T, r reply) string {
	t.Helper()
	issues := resourceOf(t, r).All("issue")
	if len(issues) == 0 {
		t.Fatalf("OperationOutcome without issues: %s", r)
	}
	return issues[0].Str("details")
}

// TestStaleVersionText: a stale version on the Mailbox and on a MessageHeader PUT is refused with 409 and
// issue[0].details exactly "The specified resource version is not correct", in both formats.
func TestStaleVersionText(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			t.Run(f.String(), func(t *testing.T) {
				patientURL := "https://a.example/Patient/stale-" + f.String()
				if r := postAs(h, "portal@a", "pa", patientMessage("A", patientURL), f); r.Status != http.StatusOK {
					t.Fatalf("first post: %d %s", r.Status, r)
				}
				// An update based on a version this server never issued for the resource.
				upd := patientMessage("A", patientURL)
				stale := patientURL + "/_history/2001-01-01T00:00:00:000.0000"
				upd.Entries[1].SetSelfLink(stale)
				if err := upd.MessageHeader().SetData(0, stale); err != nil {
					t.Fatal(err)
				}
				r := postAs(h, "portal@a", "pa", upd, f)
				if r.Status != http.StatusConflict || firstIssue(t, r) != textStaleVersion {
					t.Fatalf("stale Mailbox POST: %d, issue[0].details %q, want 409 %q", r.Status, firstIssue(t, r), textStaleVersion)
				}

				// The recipient acknowledges on a self link whose version is no longer current.
				msg := bundleOf(t, claim(h, "game@a", "ga", f))
				self := msg.Entries[0].SelfLink()
				if r := ack(h, "game@a", "ga", self, "New", "", f); r.Status != http.StatusOK {
					t.Fatalf("ack New: %d %s", r.Status, r)
				}
				r = ack(h, "game@a", "ga", self, "Success", "", f)
				if r.Status != http.StatusConflict || firstIssue(t, r) != textStaleVersion {
					t.Fatalf("PUT on a stale MessageHeader version: %d, issue[0].details %q, want 409 %q", r.Status, firstIssue(t, r), textStaleVersion)
				}
				if !strings.Contains(strings.Join(outcome(t, r), "|"), "New") {
					t.Fatalf("the refusal should still say the current status: %v", outcome(t, r))
				}
			})
		}
	})
}

// TestConformanceOAuthURIs: the Test Game (koppeltaal.js) finds the authorize and token URLs under exactly
// the smartplatforms.org extension URLs, as valueUri, in rest[0].security (CLIENTS.md); Launch keeps its
// vitalhealthsoftware.com URL. The lookup below is the game's: the first extension with that URL.
func TestConformanceOAuthURIs(t *testing.T) {
	h := newHarness(t, sqliteOnly(t), twoDomains())
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/metadata", accept: ctypeOf(f)})
		c := resourceOf(t, r)
		sec := c.Get("rest", "security")
		want := map[string]string{
			"http://fhir-registry.smartplatforms.org/Profile/oauth-uris#authorize": h.ts.URL + "/OAuth2/Koppeltaal/Authorize",
			"http://fhir-registry.smartplatforms.org/Profile/oauth-uris#token":     h.ts.URL + "/OAuth2/Koppeltaal/Token",
			"http://fhir.vitalhealthsoftware.com/Profile/Conformance#Launch":       h.ts.URL + "/OAuth2/Koppeltaal/Launch",
			// The documents' form stays, for clients written from them.
			"http://fhir-registry.smarthealthit.org/Profile/oauth-uris#authorize": h.ts.URL + "/OAuth2/Koppeltaal/Authorize",
			"http://fhir-registry.smarthealthit.org/Profile/oauth-uris#token":     h.ts.URL + "/OAuth2/Koppeltaal/Token",
		}
		for url, target := range want {
			v := sec.Extension(url).ExtensionValue()
			if v == nil || v.Name != "valueUri" || v.Value != target {
				t.Errorf("%s: extension %s = %+v, want valueUri %q", f, url, v, target)
			}
		}
		// The old server's order: authorize and token first.
		exts := sec.All("extension")
		if len(exts) < 2 || exts[0].URL != "http://fhir-registry.smartplatforms.org/Profile/oauth-uris#authorize" ||
			exts[1].URL != "http://fhir-registry.smartplatforms.org/Profile/oauth-uris#token" {
			t.Errorf("%s: security extensions start with %v", f, exts)
		}
	}
}

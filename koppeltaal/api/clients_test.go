package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/koppeltaal/testclient"
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

// requireComplete fails when a reply misses an element DSTU1 marks 1..1 in what the server wrote
// (apitest.MissingRequired): the Python connector refuses such a reply as a broken resource.
func requireComplete(t *testing.T, what string, r reply) {
	t.Helper()
	missing, err := apitest.MissingRequired(r.Body, fmtOf(t, r))
	if err != nil {
		t.Fatalf("%s: reply does not parse: %v: %s", what, err, r)
	}
	if len(missing) > 0 {
		t.Errorf("%s (%d): missing 1..1 elements %q in %.300s", what, r.Status, missing, r)
	}
}

// TestRepliesAreComplete drives every kind of reply the core API writes — Conformance, the Mailbox reply, the
// ValidateOnly outcome, refusals, claims (also empty), searches, reads, acknowledgements — in both formats
// and checks that each holds every element DSTU1 marks 1..1. The Mailbox reply's source is spelled out:
// name, software, version and endpoint, all non-empty (CLIENTS.md).
func TestRepliesAreComplete(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		cfg := domainFor("TestConnector")
		h := newHarness(t, b, cfg)
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			t.Run(f.String(), func(t *testing.T) {
				get := func(path, user, pass string) reply {
					return h.do(req{method: "GET", path: "/FHIR/Koppeltaal" + path, user: user, pass: pass, accept: ctypeOf(f)})
				}
				post := func(body []byte) reply {
					return h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "sender", pass: "ps",
						accept: ctypeOf(f), ctype: ctypeOf(f), body: convert(t, body, f)})
				}
				requireComplete(t, "metadata", get("/metadata", "", ""))

				// The Java test connector's message leaves source.software out and source.endpoint empty (its
				// patient and identifier made unique per format).
				example := []byte(strings.NewReplacer("3db7ce43-cb49-4c18-bcd9-8adc37ffd657", "patient-"+f.String(),
					"5ce95052-e8df-45bb-840d-672ecec205b3", "message-"+f.String()).
					Replace(string(fixture(t, "examples/createorupdatepatient-request-testconnector.xml"))))
				r := post(example)
				if r.Status != http.StatusOK {
					t.Fatalf("post: %d %s", r.Status, r)
				}
				requireComplete(t, "Mailbox reply", r)
				src := header(t, bundleOf(t, r)).Source()
				if src.Name == "" || src.Software != "Koppelpoort" || src.Version == "" || src.Endpoint != h.ts.URL+"/FHIR/Koppeltaal/Mailbox" {
					t.Errorf("Mailbox reply source %+v", src)
				}
				requireComplete(t, "the same POST again (a retry)", post(example))
				// Another message on the version the sender came with, which this server has replaced: 409.
				again, err := dstu1.ParseBundle(convert(t, example, f), f)
				if err != nil {
					t.Fatal(err)
				}
				again.MessageHeader().Child("identifier").Value = "stale-" + f.String()
				if r := post(koppeltaal.EncodeBundle(again, f)); r.Status != http.StatusConflict {
					t.Fatalf("stale post: %d %s", r.Status, r)
				} else {
					requireComplete(t, "409", r)
				}
				again.Categories = append(again.Categories, dstu1.Category{Term: dstu1.TermValidateOnly, Scheme: dstu1.SchemeTag})
				current := header(t, bundleOf(t, r)).Data()[0] // the version the first POST issued
				again.Entries[1].SetSelfLink(current)
				if err := again.MessageHeader().SetData(0, current); err != nil {
					t.Fatal(err)
				}
				if r := post(koppeltaal.EncodeBundle(again, f)); r.Status != http.StatusOK {
					t.Fatalf("ValidateOnly: %d %s", r.Status, r)
				} else {
					requireComplete(t, "ValidateOnly", r)
				}
				requireComplete(t, "unparseable POST", h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "sender", pass: "ps",
					accept: ctypeOf(f), ctype: ctypeOf(f), body: []byte("<feed")}))
				requireComplete(t, "401", get("/MessageHeader/_search?_summary=true", "sender", "wrong"))
				requireComplete(t, "404", get("/MessageHeader/999999", "sender", "ps"))

				claimed := claim(h, "receiver", "pr", f)
				requireComplete(t, "claim", claimed)
				self := bundleOf(t, claimed).Entries[0].SelfLink()
				id := strings.TrimPrefix(bundleOf(t, claimed).Entries[0].ID, h.ts.URL+"/FHIR/Koppeltaal")
				requireComplete(t, "empty claim", claim(h, "receiver", "pr", f))
				requireComplete(t, "search", get("/MessageHeader/_search?_summary=true&_count=5", "receiver", "pr"))
				requireComplete(t, "read by _id", get("/MessageHeader/_search?_id="+self, "receiver", "pr"))
				requireComplete(t, "read", get(id, "receiver", "pr"))
				acked := ack(h, "receiver", "pr", self, "Success", "", f)
				if acked.Status != http.StatusOK {
					t.Fatalf("ack: %d %s", acked.Status, acked)
				}
				requireComplete(t, "acknowledgement", acked)
				requireComplete(t, "stale acknowledgement", ack(h, "receiver", "pr", self, "Success", "", f))
			})
		}
	})
}

// TestTestGameBlackBoxState: the Test Game's status update carries an Other coded BlackBoxState (its state,
// under its own URLs). It is accepted and passed through unchanged: another instance claims it, in either
// format, with the same content (the same tree; the same bytes when it reads the format that was posted).
func TestTestGameBlackBoxState(t *testing.T) {
	raw := fixture(t, "testgame/updatecareplanactivitystatus-blackboxstate.json")
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, domainFor("Demo"))
		for _, in := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
			for _, out := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
				t.Run(in.String()+"-to-"+out.String(), func(t *testing.T) {
					// A new activity (its own resource URLs) and message per case.
					id := in.String() + "-" + out.String()
					posted, err := dstu1.ParseBundle([]byte(strings.ReplaceAll(string(raw), "9f2c", id)), dstu1.FormatJSON)
					if err != nil {
						t.Fatal(err)
					}
					posted.MessageHeader().Child("identifier").Value = "game-" + id
					body := koppeltaal.EncodeBundle(posted, in)
					r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "sender", pass: "ps",
						accept: ctypeOf(in), ctype: ctypeOf(in), body: body})
					if r.Status != http.StatusOK {
						t.Fatalf("post: %d %s", r.Status, r)
					}
					sent, _ := dstu1.ParseBundle(body, in)
					got := bundleOf(t, claim(h, "receiver", "pr", out))
					if len(got.Entries) != 3 || got.Entries[2].ResourceType() != "BlackBoxState" {
						t.Fatalf("claimed %d entries: %s", len(got.Entries), koppeltaal.EncodeBundle(got, out))
					}
					if eq, diff := dstu1.EqualResource(sent.Entries[2].Resource, got.Entries[2].Resource); !eq {
						t.Fatalf("BlackBoxState changed on the way: %s", diff)
					}
					if in == out && string(koppeltaal.EncodeResource(got.Entries[2].Resource, out)) != string(koppeltaal.EncodeResource(sent.Entries[2].Resource, in)) {
						t.Fatalf("BlackBoxState bytes changed:\n%s\n%s", koppeltaal.EncodeResource(got.Entries[2].Resource, out),
							koppeltaal.EncodeResource(sent.Entries[2].Resource, in))
					}
					if u, _ := dstu1.SplitHistory(got.Entries[2].SelfLink()); u != "https://game.example/koppeltaal/Other/BlackBoxState:"+id {
						t.Fatalf("BlackBoxState self link %q", got.Entries[2].SelfLink())
					}
				})
			}
		}
	})
}

// TestFocalPatientMismatch: a message whose MessageHeader#Patient extension names another patient than its
// focal resource (the Patient of CreateOrUpdatePatient, CarePlan.patient) is refused with a 400 that says so,
// and nothing is stored; where they agree — also written differently (versioned, relative) — or where the
// extension names a RelatedPerson (TA allows that for CarePlans), the message is accepted.
func TestFocalPatientMismatch(t *testing.T) {
	var a, other string // per format: each run creates its patient
	carePlan := func(ext, patientRef string) *dstu1.Bundle {
		b := carePlanMessage("A", "https://a.example/fhir/CarePlan/"+uuid.NewString(), "", ext, "n")
		b.Entries[1].Resource.Add(dstu1.NewReference("patient", patientRef))
		b.Entries[1].Resource.SortElements()
		return b
	}
	patientWithExt := func(ext string) *dstu1.Bundle {
		b := patientMessage("A", a)
		b.MessageHeader().SetPatient(ext)
		return b
	}
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			a, other = "https://a.example/fhir/Patient/A"+f.String(), "https://a.example/fhir/Patient/B"+f.String()
			for _, c := range []struct {
				name   string
				msg    *dstu1.Bundle
				status int
			}{
				{"Patient A with extension B", patientWithExt(other), http.StatusBadRequest},
				{"CarePlan of A with extension B", carePlan(other, a), http.StatusBadRequest},
				{"CarePlan of A (relative) with extension B", carePlan(other, "Patient/A"+f.String()), http.StatusBadRequest},
				{"Patient A with extension A, versioned", patientWithExt(a + "/_history/2026-11-28T12:00:00:000.0000"), http.StatusOK},
				{"CarePlan of A (relative) with extension A", carePlan(a, "Patient/A"+f.String()), http.StatusOK},
				{"CarePlan of A with a RelatedPerson extension", carePlan("https://a.example/fhir/RelatedPerson/R", a), http.StatusOK},
			} {
				t.Run(f.String()+"/"+c.name, func(t *testing.T) {
					before := h.messageCount()
					r := postAs(h, "portal@a", "pa", c.msg, f)
					if r.Status != c.status {
						t.Fatalf("%d, want %d: %s", r.Status, c.status, r)
					}
					if c.status == http.StatusOK {
						return
					}
					if got := firstIssue(t, r); !strings.Contains(got, other) || !strings.Contains(got, a) || !strings.Contains(got, "MessageHeader#Patient") {
						t.Fatalf("the refusal should name both patients and the extension: %q", got)
					}
					if h.messageCount() != before {
						t.Fatal("a refused message was stored")
					}
				})
			}
		}
	})
}

// TestSearchParameters: MessageHeader searches filter on identifier (1.1.0 "search by identifier") and on
// processingStatus as the Test Game spells it; _count and page must be whole numbers from 1 (400 naming the
// parameter otherwise), a _count above the maximum is clamped (clients send up to 5000); parameters the
// server does not know are ignored, as FHIR servers do, and left out of the self link.
func TestSearchParameters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		var ids []string
		for i := 0; i < 3; i++ {
			m := patientMessage("A", "https://a.example/Patient/search-"+uuid.NewString())
			if r := postAs(h, "portal@a", "pa", m, dstu1.FormatJSON); r.Status != http.StatusOK {
				t.Fatalf("post: %d %s", r.Status, r)
			}
			ids = append(ids, m.MessageHeader().Identifier())
		}
		claim(h, "game@a", "ga", dstu1.FormatJSON) // the first one is Claimed now
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			search := func(query string) reply {
				return h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?" + query, user: "game@a", pass: "ga", accept: ctypeOf(f)})
			}
			found := func(query string) []string {
				t.Helper()
				r := search(query)
				if r.Status != http.StatusOK {
					t.Fatalf("%s %s: %d %s", f, query, r.Status, r)
				}
				var got []string
				for _, e := range bundleOf(t, r).Entries {
					got = append(got, dstu1.AsMessageHeader(e.Resource).Identifier())
				}
				return got
			}
			if got := found("_summary=true&identifier=" + ids[1]); len(got) != 1 || got[0] != ids[1] {
				t.Errorf("%s: identifier=%s found %v", f, ids[1], got)
			}
			if self := bundleOf(t, search("identifier="+ids[1])).Link("self"); !strings.Contains(self, "identifier="+ids[1]) {
				t.Errorf("%s: self link %q does not keep the identifier filter", f, self)
			}
			if got := found("identifier=no-such-message"); len(got) != 0 {
				t.Errorf("%s: unknown identifier found %v", f, got)
			}
			if got := found("_count=999&processingStatus=Claimed"); len(got) != 1 || got[0] != ids[0] {
				t.Errorf("%s: processingStatus=Claimed found %v", f, got)
			}
			if got := found("_count=999&processingStatus=New&ProcessingStatus=New"); len(got) != 2 {
				t.Errorf("%s: both spellings, same value: %v", f, got)
			}
			if got := found("_count=5000&unknown-parameter=x"); len(got) != 3 {
				t.Errorf("%s: _count=5000 with an unknown parameter: %v", f, got)
			}
			if self := bundleOf(t, search("_count=5000&unknown-parameter=x")).Link("self"); !strings.Contains(self, "_count=1000") || strings.Contains(self, "unknown") {
				t.Errorf("%s: self link %q: want the clamped _count=1000 and no unknown parameter", f, self)
			}
			if got := found("_count=1&page=3"); len(got) != 1 || got[0] != ids[2] {
				t.Errorf("%s: _count=1&page=3 found %v", f, got)
			}
			for _, bad := range []struct{ query, param string }{
				{"_count=abc", "_count"}, {"_count=-1", "_count"}, {"_count=0", "_count"}, {"_count=1.5", "_count"},
				{"page=0", "page"}, {"page=-2", "page"}, {"page=x", "page"}, {"_count=10&page=99999999999999999999", "page"},
				{"processingStatus=New&ProcessingStatus=Claimed", "ProcessingStatus"},
				{"_query=MessageHeader.GetNextNewAndClaim&_count=abc", "_count"},
			} {
				r := search(bad.query)
				if r.Status != http.StatusBadRequest || fmtOf(t, r) != f || !strings.Contains(firstIssue(t, r), bad.param) {
					t.Errorf("%s: %s: %d %s, want 400 naming %s", f, bad.query, r.Status, r, bad.param)
				}
			}
		}
	})
}

// TestMalformedMessagesRefused: the hostile messages that were accepted and routed before (issue 10) are
// refused with 400 and an OperationOutcome in the client's format whose issue names the element — in the
// details and as issue.location — and says what was expected; nothing is stored. Two identical domain tags
// are one domain (accepted); two different ones make the domain ambiguous (refused).
func TestMalformedMessagesRefused(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		const p = "https://a.example/Patient/malformed" // the refused messages never create it
		base := func(patientURL string) *dstu1.Bundle {
			m := patientMessage("A", patientURL)
			m.Entries[1].Resource.Add(dstu1.NewExtension("https://a.example/ext#score", dstu1.NewPrimitive("valueDecimal", "1.5")))
			m.Entries[1].Resource.Add(dstu1.NewPrimitive("active", "true"))
			m.Entries[1].Resource.SortElements()
			return m
		}
		cases := []struct {
			name     string
			f        dstu1.Format
			from, to string // a replacement in the encoded message
			where    string // the element named
		}{
			{"identifier a number", dstu1.FormatJSON, `"identifier":"`, `"identifier":12345,"x":"`, "entry[0].content.identifier"},
			{"data an object", dstu1.FormatJSON, `"data":[{"reference":"` + p + `"}]`, `"data":{"reference":"` + p + `"}`, "entry[0].content.data"},
			{"timestamp a number", dstu1.FormatJSON, `"timestamp":"2026-11-28T12:00:00Z"`, `"timestamp":1764331200`, "entry[0].content.timestamp"},
			{"timestamp yesterday", dstu1.FormatJSON, `"timestamp":"2026-11-28T12:00:00Z"`, `"timestamp":"yesterday"`, "entry[0].content.timestamp"},
			{"reference a number", dstu1.FormatJSON, `"data":[{"reference":"`, `"data":[{"reference":42,"x":"`, "entry[0].content.data[0].reference"},
			{"extension null", dstu1.FormatJSON, `"name":[{"text":"P"}]`, `"name":[{"extension":null,"text":"P"}]`, "entry[1].content.name[0].extension"},
			{"name an object", dstu1.FormatJSON, `"name":[{"text":"P"}]`, `"name":{"text":"P"}`, "entry[1].content.name"},
			{"entry id a number", dstu1.FormatJSON, `{"id":"` + p + `"`, `{"id":7`, "entry[1].id"},
			{"a number of 400 digits", dstu1.FormatJSON, `"valueDecimal":1.5`, `"valueDecimal":` + strings.Repeat("7", 400), "entry[1].content.extension[0].valueDecimal"},
			{"boolean a string", dstu1.FormatJSON, `"active":true`, `"active":"true"`, "entry[1].content.active"},
			{"instant out of range", dstu1.FormatXML, `<timestamp value="2026-11-28T12:00:00Z"/>`, `<timestamp value="2026-11-31T12:00:00Z"/>`, "feed/entry[0]/content/MessageHeader/timestamp"},
			{"dateTime not a date", dstu1.FormatXML, `<active value="true"/>`, `<active value="true"/><birthDate value="12-04-1990"/>`, "feed/entry[1]/content/Patient/birthDate"},
			{"boolean yes", dstu1.FormatXML, `<active value="true"/>`, `<active value="yes"/>`, "feed/entry[1]/content/Patient/active"},
			{"decimal of 400 digits", dstu1.FormatXML, `<valueDecimal value="1.5"/>`, `<valueDecimal value="` + strings.Repeat("7", 400) + `"/>`, "feed/entry[1]/content/Patient/extension/valueDecimal"},
			{"integer not whole", dstu1.FormatXML, `<active value="true"/>`, `<active value="true"/><multipleBirthInteger value="1.5"/>`, "feed/entry[1]/content/Patient/multipleBirthInteger"},
			{"uri with a space", dstu1.FormatXML, `<endpoint value="https://sender.example/fhir"/>`, `<endpoint value="https://sender example/fhir"/>`, "feed/entry[0]/content/MessageHeader/source/endpoint"},
		}
		for _, c := range cases {
			t.Run(c.f.String()+"/"+c.name, func(t *testing.T) {
				good := string(koppeltaal.EncodeBundle(base(p), c.f))
				bad := strings.Replace(good, c.from, c.to, 1)
				if bad == good {
					t.Fatalf("%q is not in %s", c.from, good)
				}
				before := h.messageCount()
				r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "portal@a", pass: "pa",
					accept: ctypeOf(c.f), ctype: ctypeOf(c.f), body: []byte(bad)})
				if r.Status != http.StatusBadRequest || fmtOf(t, r) != c.f {
					t.Fatalf("%d %s, want 400 in %s", r.Status, r, c.f)
				}
				issue := resourceOf(t, r).Child("issue")
				if d := issue.Str("details"); !strings.Contains(d, c.where) || !strings.Contains(d, "expected") {
					t.Errorf("details %q: want the element %s and what was expected", d, c.where)
				}
				if loc := issue.Str("location"); loc != c.where {
					t.Errorf("location %q, want %q", loc, c.where)
				}
				if h.messageCount() != before {
					t.Error("a refused message was stored")
				}
			})
		}
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			domainTag := func(d string) dstu1.Category {
				return dstu1.Category{Term: dstu1.DomainTermPrefix + d, Label: d, Scheme: dstu1.SchemeSecurity}
			}
			m := base(p)
			m.Categories = append(m.Categories, domainTag("B"))
			before := h.messageCount()
			r := postAs(h, "portal@a", "pa", m, f)
			if r.Status != http.StatusBadRequest || !strings.Contains(firstIssue(t, r), "A, B") || h.messageCount() != before {
				t.Errorf("%s: two domain tags A and B: %d %s", f, r.Status, r)
			}
			m = base("https://a.example/Patient/two-tags-" + f.String())
			m.Categories = append(m.Categories, domainTag("A"))
			if r := postAs(h, "portal@a", "pa", m, f); r.Status != http.StatusOK {
				t.Errorf("%s: the domain tag twice: %d %s", f, r.Status, r)
			}
		}
	})
}

// TestCarePlanActivityResultRouted: CreateOrUpdateCarePlanActivityResult is routed (decision 22) in both
// forms deployed connectors send — TD-CP's DiagnosticReport + Questionnaire + Observation (the HealthOnline
// example, its .NET type name in Questionnaire.authored replaced by a dateTime) and the TA profile's Other
// coded CarePlanActivityResult (what the Test Client sends) — and claimed by a subscriber in either format.
// The extra resource types stay refused in other messages.
func TestCarePlanActivityResultRouted(t *testing.T) {
	raw := strings.Replace(string(fixture(t, "examples/createorupdatecareplanactivityresult-request-healthonline-step4.xml")),
		"Hl7.Fhir.Model.FhirDateTime", "2019-11-14T14:34:26+01:00", 1)
	example, err := dstu1.ParseBundle([]byte(raw), dstu1.FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	other, err := testclient.ResultMessage("https://portal.example/Patient/7", "activity-1", "r1",
		client.BuildOptions{Domain: "HealthOnline", ResourceBase: "https://game.example/fhir/Koppeltaal", MessageID: "result-1"})
	if err != nil {
		t.Fatal(err)
	}
	var h *harness
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		h = newHarness(t, sqliteOnly(t), domainFor("HealthOnline")) // the example carries versions: a fresh server each
		for name, msg := range map[string]*dstu1.Bundle{"td-cp": example, "other": other} {
			msg.MessageHeader().Child("identifier").Value = name + "-" + f.String()
			r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "sender", pass: "ps",
				accept: ctypeOf(f), ctype: ctypeOf(f), body: koppeltaal.EncodeBundle(msg, f)})
			if r.Status != http.StatusOK {
				t.Fatalf("%s %s: %d %s", name, f, r.Status, r)
			}
			got := bundleOf(t, claim(h, "receiver", "pr", f))
			if got.MessageHeader().EventCode() != "CreateOrUpdateCarePlanActivityResult" || len(got.Entries) != len(msg.Entries) {
				t.Fatalf("%s %s: claimed %s", name, f, koppeltaal.EncodeBundle(got, f))
			}
		}
	}
	// A DiagnosticReport in another message is still an unsupported resource type.
	example.MessageHeader().Child("event").Child("code").Value = "UpdateCarePlanActivityStatus"
	example.MessageHeader().Child("identifier").Value = "not-a-result"
	r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "sender", pass: "ps",
		accept: ctypeOf(dstu1.FormatJSON), ctype: ctypeOf(dstu1.FormatJSON), body: koppeltaal.EncodeBundle(example, dstu1.FormatJSON)})
	if got := strings.Join(outcome(t, r), "|"); r.Status != http.StatusBadRequest || got != "The resource type 'DiagnosticReport' is not supported." {
		t.Fatalf("DiagnosticReport in a status message: %d %q", r.Status, got)
	}
}

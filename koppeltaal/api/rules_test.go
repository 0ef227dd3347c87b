package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// twoDomains has domains A and B, each with a portal (sender) and a game (receiver).
func twoDomains() koppeltaal.Config {
	evs := []string{"CreateOrUpdatePatient", "CreateOrUpdateCarePlan"}
	return koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: "A"}, {Name: "B"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}, {ID: "Game"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: "A", Username: "portal@a", Password: "pa"},
			{Application: "Game", Domain: "A", Username: "game@a", Password: "ga", Subscriptions: evs},
			{Application: "Portal", Domain: "B", Username: "portal@b", Password: "pb"},
			{Application: "Game", Domain: "B", Username: "game@b", Password: "gb", Subscriptions: evs},
		},
		MaxBodyBytes: 64 << 10,
	}
}

// patientMessage builds a CreateOrUpdatePatient message for domain with a fresh patient URL.
func patientMessage(domain, patientURL string) *dstu1.Bundle {
	b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), domain)
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{
		Identifier: uuid.NewString(), Timestamp: "2026-11-28T12:00:00Z",
		Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdatePatient", Display: "CreateOrUpdatePatient"},
		Source: dstu1.Source{Software: "test", Endpoint: "https://sender.example/fhir"},
		Data:   []string{patientURL}, Patient: patientURL,
	})
	b.AddEntry(mh.Resource, "", "")
	p := dstu1.NewResource("Patient")
	p.Add(dstu1.NewElement("name", dstu1.NewPrimitive("text", "P")))
	b.AddEntry(p, patientURL, patientURL)
	return b
}

func postAs(h *harness, user, pass string, b *dstu1.Bundle, f dstu1.Format) reply {
	h.t.Helper()
	return h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: user, pass: pass,
		accept: ctypeOf(f), ctype: ctypeOf(f), body: koppeltaal.EncodeBundle(b, f)})
}

// TestDomainIsolation: an instance of domain A can never post into, search,
// read, claim or acknowledge anything of domain B, whatever ids it guesses.
func TestDomainIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		f := dstu1.FormatJSON
		const pB = "https://b.example/Patient/1"
		if r := postAs(h, "portal@b", "pb", patientMessage("B", pB), f); r.Status != 200 {
			t.Fatalf("post in B: %d %s", r.Status, r)
		}
		// Keep one B entry New and one Claimed.
		if r := postAs(h, "portal@b", "pb", patientMessage("B", "https://b.example/Patient/2"), f); r.Status != 200 {
			t.Fatalf("post in B: %d %s", r.Status, r)
		}
		claimed := bundleOf(t, claim(h, "game@b", "gb", f))
		selfB := claimed.Entries[0].SelfLink()

		// Posting into B with A's credentials: refused, nothing stored.
		before := h.messageCount()
		r := postAs(h, "portal@a", "pa", patientMessage("B", "https://b.example/Patient/3"), f)
		if r.Status != http.StatusForbidden || !strings.Contains(strings.Join(outcome(t, r), ""), "does not match the domain 'A'") {
			t.Fatalf("cross-domain post: %d %s", r.Status, r)
		}
		if h.messageCount() != before {
			t.Fatal("cross-domain post stored a message")
		}
		for _, user := range [][2]string{{"portal@a", "pa"}, {"game@a", "ga"}} {
			if r := claim(h, user[0], user[1], f); len(bundleOf(t, r).Entries) != 0 {
				t.Fatalf("%s claimed a B message: %s", user[0], r)
			}
			r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&_count=1000&Patient=" + url.QueryEscape(pB),
				user: user[0], pass: user[1], accept: "application/json"})
			if b := bundleOf(t, r); len(b.Entries) != 0 || b.TotalResults != "0" {
				t.Fatalf("%s searched B: %s", user[0], r)
			}
			for id := 1; id <= 6; id++ {
				paths := []string{
					fmt.Sprintf("/FHIR/Koppeltaal/MessageHeader/%d", id),
					fmt.Sprintf("/FHIR/Koppeltaal/MessageHeader/_search?_id=%d", id),
					"/FHIR/Koppeltaal/MessageHeader/_search?_id=" + url.QueryEscape(selfB),
					strings.TrimPrefix(selfB, h.ts.URL),
				}
				for _, p := range paths {
					if r := h.do(req{method: "GET", path: p, user: user[0], pass: user[1], accept: "application/json"}); r.Status != http.StatusNotFound {
						t.Fatalf("%s GET %s: %d %s", user[0], p, r.Status, r)
					}
				}
				for _, p := range []string{fmt.Sprintf("/FHIR/Koppeltaal/MessageHeader/%d", id), strings.TrimPrefix(selfB, h.ts.URL)} {
					if r := ack(h, user[0], user[1], h.ts.URL+p, "Success", "", f); r.Status != http.StatusNotFound {
						t.Fatalf("%s PUT %s: %d %s", user[0], p, r.Status, r)
					}
				}
			}
		}
		// B's entries are untouched: still Claimed and New.
		r = h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true", user: "game@b", pass: "gb", accept: "application/json"})
		var got []string
		for _, e := range bundleOf(t, r).Entries {
			ps, _ := dstu1.AsMessageHeader(e.Resource).ProcessingStatus()
			got = append(got, ps.Status)
		}
		if fmt.Sprint(got) != "[Claimed New]" {
			t.Fatalf("B's statuses after A's attempts: %v", got)
		}
	})
}

// TestRejectionsStoreNothing: every refused POST gets the right status and an
// OperationOutcome in the client's format, and changes nothing.
func TestRejectionsStoreNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		good := func() *dstu1.Bundle { return patientMessage("A", "https://a.example/Patient/"+uuid.NewString()) }
		enc := func(b *dstu1.Bundle) []byte { return koppeltaal.EncodeBundle(b, dstu1.FormatJSON) }
		cases := []struct {
			name   string
			user   string
			pass   string
			body   []byte
			status int
			want   string
		}{
			{"no credentials", "", "", enc(good()), 401, "Authentication required"},
			{"wrong password", "portal@a", "nope", enc(good()), 401, "Authentication failed"},
			{"unknown user", "mallory", "pa", enc(good()), 401, "Authentication failed"},
			{"too large", "portal@a", "pa", append(enc(good()), bytes.Repeat([]byte(" "), 70<<10)...), 413, "larger than the limit"},
			{"not FHIR", "portal@a", "pa", []byte("hello"), 400, "cannot be parsed"},
			{"null in array", "portal@a", "pa", bytes.Replace(enc(good()), []byte(`"text":"P"`), []byte(`"text":"P","given":[null]`), 1), 400,
				"The FHIR serialization does not support arrays with empty (null) elements"},
			{"unsupported resource", "portal@a", "pa", func() []byte {
				b := good()
				c := dstu1.NewResource("Condition")
				c.Add(dstu1.NewElement("subject", dstu1.NewPrimitive("reference", "x")))
				b.AddEntry(c, "", "https://a.example/Condition/1")
				return enc(b)
			}(), 400, "The resource type 'Condition' is not supported."},
			{"no domain tag", "portal@a", "pa", func() []byte { b := good(); b.Categories = b.Categories[1:]; return enc(b) }(), 400, "no domain tag"},
			{"header not first", "portal@a", "pa", func() []byte {
				b := good()
				b.Entries[0], b.Entries[1] = b.Entries[1], b.Entries[0]
				return enc(b)
			}(), 400, "must be a MessageHeader"},
			{"unknown event", "portal@a", "pa", func() []byte {
				b := good()
				b.MessageHeader().Child("event").Child("code").Value = "CreateOrUpdateCareplan"
				return enc(b)
			}(), 400, "The message event 'CreateOrUpdateCareplan' is not supported."},
			{"careplan without patient extension", "portal@a", "pa", func() []byte {
				b := good()
				mh := b.MessageHeader()
				mh.Child("event").Child("code").Value = "CreateOrUpdateCarePlan"
				mh.Remove(func(n *dstu1.Node) bool { return n.Name == "extension" })
				return enc(b)
			}(), 400, "MessageHeader#Patient is required for CreateOrUpdateCarePlan"},
		}
		for _, c := range cases {
			before := h.messageCount()
			r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: c.user, pass: c.pass,
				accept: "application/json", ctype: "application/json", body: c.body})
			if r.Status != c.status {
				t.Errorf("%s: status %d, want %d: %s", c.name, r.Status, c.status, r)
				continue
			}
			if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("%s: Content-Type %q for a JSON client", c.name, ct)
			}
			if got := strings.Join(outcome(t, r), "|"); !strings.Contains(got, c.want) {
				t.Errorf("%s: issues %q, want %q", c.name, got, c.want)
			}
			if c.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Basic realm="Koppeltaal"`) {
				t.Errorf("%s: WWW-Authenticate %q", c.name, r.Header.Get("WWW-Authenticate"))
			}
			if h.messageCount() != before {
				t.Errorf("%s: a rejected request stored a message", c.name)
			}
		}
		// XML clients get XML errors.
		r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/99", user: "game@a", pass: "ga"})
		if r.Status != 404 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/xml+fhir") || !bytes.HasPrefix(r.Body, []byte("<OperationOutcome")) {
			t.Fatalf("XML 404: %d %q %s", r.Status, r.Header.Get("Content-Type"), r)
		}
		if r := claim(h, "game@a", "ga", dstu1.FormatJSON); len(bundleOf(t, r).Entries) != 0 {
			t.Fatalf("rejected messages were routed: %s", r)
		}
	})
}

// TestAcknowledgeRules checks the processing-status transitions of SPEC.md §5.4.
func TestAcknowledgeRules(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		f := dstu1.FormatXML
		for i := 0; i < 3; i++ {
			if r := postAs(h, "portal@a", "pa", patientMessage("A", fmt.Sprintf("https://a.example/Patient/%d", i)), f); r.Status != 200 {
				t.Fatal(r)
			}
		}
		m1 := bundleOf(t, claim(h, "game@a", "ga", f)).Entries[0]
		steps := []struct {
			name      string
			user      string
			link      string
			status    string
			exception string
			want      int
			wantState string
		}{
			{"other instance", "portal@a", m1.SelfLink(), "Success", "", 404, ""},
			{"client cannot claim", "game@a", m1.SelfLink(), "Claimed", "", 400, ""},
			{"client cannot replace", "game@a", m1.SelfLink(), "ReplacedByNewVersion", "", 400, ""},
			{"failed needs exception", "game@a", m1.SelfLink(), "Failed", "", 400, ""},
			{"wrong version", "game@a", m1.ID + "/_history/2001-01-01T00:00:00:000.0000", "Success", "", 409, ""},
			{"back to New", "game@a", m1.SelfLink(), "New", "", 200, "New"},
		}
		for _, s := range steps {
			r := ack(h, s.user, "ga", s.link, s.status, s.exception, f)
			if s.user == "portal@a" {
				r = ack(h, s.user, "pa", s.link, s.status, s.exception, f)
			}
			if r.Status != s.want {
				t.Fatalf("%s: %d, want %d: %s", s.name, r.Status, s.want, r)
			}
			if s.wantState != "" {
				if ps, _ := dstu1.AsMessageHeader(resourceOf(t, r)).ProcessingStatus(); ps.Status != s.wantState {
					t.Fatalf("%s: state %s", s.name, ps.Status)
				}
			}
		}
		// Claimed again (same message: oldest New), then Success via the unversioned URL (JS Test Game style).
		again := bundleOf(t, claim(h, "game@a", "ga", f)).Entries[0]
		if again.ID != m1.ID {
			t.Fatalf("re-claim got %s, want %s", again.ID, m1.ID)
		}
		r := ack(h, "game@a", "ga", again.ID, "Success", "", f)
		if r.Status != 200 || r.Header.Get("Content-Location") == "" {
			t.Fatalf("unversioned ack: %d %s", r.Status, r)
		}
		if r := ack(h, "game@a", "ga", again.ID, "Success", "", f); r.Status != 200 {
			t.Fatalf("repeated Success: %d %s", r.Status, r)
		}
		if r := ack(h, "game@a", "ga", again.ID, "New", "", f); r.Status != 409 {
			t.Fatalf("Success -> New: %d %s", r.Status, r)
		}
		m2 := bundleOf(t, claim(h, "game@a", "ga", f)).Entries[0]
		r = ack(h, "game@a", "ga", m2.SelfLink(), "Failed", "cannot map patient", f)
		ps, _ := dstu1.AsMessageHeader(resourceOf(t, r)).ProcessingStatus()
		if r.Status != 200 || ps.Status != "Failed" || ps.Exception != "cannot map patient" {
			t.Fatalf("Failed: %d %+v", r.Status, ps)
		}
		// Search by status sees exactly that.
		r = h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&ProcessingStatus=Failed", user: "game@a", pass: "ga"})
		if b := bundleOf(t, r); b.TotalResults != "1" || b.Entries[0].ID != m2.ID {
			t.Fatalf("ProcessingStatus=Failed search: %s", r)
		}
	})
}

// TestSearchPaging: _count pages with next/previous links, clamped to 1000.
func TestSearchPaging(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		for i := 0; i < 7; i++ {
			if r := postAs(h, "portal@a", "pa", patientMessage("A", fmt.Sprintf("https://a.example/Patient/%d", i)), dstu1.FormatJSON); r.Status != 200 {
				t.Fatal(r)
			}
		}
		path := "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&_count=3"
		var ids []string
		for pages := 0; path != ""; pages++ {
			if pages > 3 {
				t.Fatal("paging does not end")
			}
			r := h.do(req{method: "GET", path: path, user: "game@a", pass: "ga", accept: "application/json"})
			b := bundleOf(t, r)
			if b.TotalResults != "7" {
				t.Fatalf("totalResults %s", b.TotalResults)
			}
			for _, e := range b.Entries {
				ids = append(ids, e.ID)
				if len(e.Resource.Children) == 0 || e.Resource.Type() != "MessageHeader" {
					t.Fatalf("summary entry is not a MessageHeader")
				}
			}
			if pages > 0 && b.Link("previous") == "" {
				t.Fatalf("page %d has no previous link", pages+1)
			}
			path = strings.TrimPrefix(b.Link("next"), h.ts.URL)
		}
		if len(ids) != 7 {
			t.Fatalf("paged through %d entries, want 7: %v", len(ids), ids)
		}
		r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&_count=5000", user: "game@a", pass: "ga", accept: "application/json"})
		if b := bundleOf(t, r); r.Status != 200 || len(b.Entries) != 7 || !strings.Contains(b.Link("self"), "_count=1000") {
			t.Fatalf("_count=5000: %d self=%s", r.Status, b.Link("self"))
		}
	})
}

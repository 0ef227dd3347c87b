package api_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// carePlanWith builds a CreateOrUpdateCarePlan message with n-1 resources besides its focal CarePlan.
func carePlanOfSize(domain string, n int) *dstu1.Bundle {
	b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), domain)
	base := "https://a.example/fhir/" + uuid.NewString()
	patient, focal := base+"/Patient/1", base+"/CarePlan/1"
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{Identifier: uuid.NewString(), Timestamp: "2026-11-28T12:00:00Z",
		Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan", Display: "CreateOrUpdateCarePlan"},
		Source: dstu1.Source{Software: "test", Endpoint: "https://sender.example/fhir"}, Data: []string{focal}, Patient: patient})
	b.AddEntry(mh.Resource, "", "")
	cp := dstu1.NewResource("CarePlan")
	cp.Add(dstu1.NewReference("patient", patient), dstu1.NewPrimitive("status", "active"))
	b.AddEntry(cp, focal, focal)
	for i := 2; i < n; i++ {
		p := dstu1.NewResource("Practitioner")
		p.Add(dstu1.NewElement("name", dstu1.NewPrimitive("text", fmt.Sprint("P", i))))
		u := fmt.Sprintf("%s/Practitioner/%d", base, i)
		b.AddEntry(p, u, u)
	}
	return b
}

// TestMessagesWithManyEntries (issue 16 item 4): a message with more entries
// than koppeltaal.max_entries is refused with 413 and an OperationOutcome and
// stores nothing; a larger limit takes thousands of resources in one message
// on both databases (the multi-row statements stay below every database's
// bind-parameter and column limits).
func TestMessagesWithManyEntries(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		cfg := twoDomains()
		cfg.MaxBodyBytes = 8 << 20
		h := newHarness(t, b, cfg)
		before := h.messageCount()
		r := postAs(h, "portal@a", "pa", carePlanOfSize("A", koppeltaal.DefaultMaxEntries+1), dstu1.FormatJSON)
		if r.Status != http.StatusRequestEntityTooLarge || !strings.Contains(strings.Join(outcome(t, r), " "), "entries") {
			t.Fatalf("%d entries: %d %s", koppeltaal.DefaultMaxEntries+1, r.Status, r)
		}
		if h.messageCount() != before {
			t.Fatal("a refused message was stored")
		}
		if r := postAs(h, "portal@a", "pa", carePlanOfSize("A", koppeltaal.DefaultMaxEntries), dstu1.FormatJSON); r.Status != 200 {
			t.Fatalf("%d entries: %d %s", koppeltaal.DefaultMaxEntries, r.Status, r)
		}

		cfg.MaxEntries = 6000
		big := newHarness(t, b, cfg)
		const n = 5000
		for _, f := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
			r := postAs(big, "portal@a", "pa", carePlanOfSize("A", n), f)
			if r.Status != 200 {
				t.Fatalf("%d entries in %v: %d %.300s", n, f, r.Status, r)
			}
			if d := header(t, bundleOf(t, r)).Data(); len(d) != n-1 {
				t.Fatalf("%d entries: %d versioned references in the reply", n, len(d))
			}
		}
		if got := len(bundleOf(t, claim(big, "game@a", "ga", dstu1.FormatJSON)).Entries); got != koppeltaal.DefaultMaxEntries {
			t.Fatalf("first claim: %d entries", got)
		}
		if got := len(bundleOf(t, claim(big, "game@a", "ga", dstu1.FormatJSON)).Entries); got != n {
			t.Fatalf("claim of the big message: %d entries", got)
		}
	})
}

package api_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// A message with the ValidateOnly tag goes through every check of a POST,
// version checks against the current state included, and is neither stored
// nor routed: a valid one gets 200 with an informational OperationOutcome, an
// invalid one the error a real POST would get. The real POST of the same
// message afterwards is not mistaken for a retry.
func TestValidateOnlyChecksButStoresNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			post := func(msg *dstu1.Bundle) reply {
				return h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "portal@a", pass: "pa",
					accept: ctypeOf(f), ctype: ctypeOf(f), body: koppeltaal.EncodeBundle(msg, f)})
			}
			validateOnly := func(msg *dstu1.Bundle) *dstu1.Bundle {
				c := msg.Clone()
				c.Categories = append(c.Categories, dstu1.Category{Term: dstu1.TermValidateOnly, Scheme: dstu1.SchemeTag})
				return c
			}
			before := h.messageCount()
			patientURL := "https://portal.example/fhir/Patient/" + uuid.NewString()
			msg := patientMessage("A", patientURL)

			r := post(validateOnly(msg))
			if r.Status != http.StatusOK || !slices.Equal(outcome(t, r), []string{koppeltaal.TextValidatedOnly}) {
				t.Fatalf("%v: valid ValidateOnly message: %d %s", f, r.Status, r.Body)
			}
			if n := h.messageCount(); n != before {
				t.Fatalf("%v: ValidateOnly stored a message (%d → %d)", f, before, n)
			}
			if r := claim(h, "game@a", "ga", f); len(bundleOf(t, r).Entries) != 0 {
				t.Fatalf("%v: ValidateOnly message was routed: %s", f, r.Body)
			}

			// The same message for real: accepted as new, not as a retry of the check.
			first := post(msg)
			if first.Status != http.StatusOK {
				t.Fatalf("%v: real POST after ValidateOnly: %d %s", f, first.Status, first.Body)
			}
			issued := dstu1.AsMessageHeader(bundleOf(t, first).Entries[0].Resource).Data()[0]

			// Updates are checked against the version the server now has.
			update := patientMessage("A", patientURL)
			if r := post(validateOnly(update)); r.Status != http.StatusConflict ||
				!slices.Equal(outcome(t, r), []string{koppeltaal.TextFocalWithoutVersion + " @" + patientURL}) {
				t.Fatalf("%v: ValidateOnly update without version: %d %s", f, r.Status, r.Body)
			}
			update.Entries[1].Links[0].Href = patientURL + "/_history/2000-01-01T00:00:00:000.0000"
			if r := post(validateOnly(update)); r.Status != http.StatusConflict ||
				!slices.Equal(outcome(t, r), []string{koppeltaal.TextVersionNotCorrect + " @" + patientURL}) {
				t.Fatalf("%v: ValidateOnly update with a stale version: %d %s", f, r.Status, r.Body)
			}
			update.Entries[1].Links[0].Href = issued
			if r := post(validateOnly(update)); r.Status != http.StatusOK {
				t.Fatalf("%v: ValidateOnly update with the current version: %d %s", f, r.Status, r.Body)
			}
			if n := h.messageCount(); n != before+1 {
				t.Fatalf("%v: %d messages stored, want 1", f, n-before)
			}
			if r := claim(h, "game@a", "ga", f); len(bundleOf(t, r).Entries) == 0 {
				t.Fatalf("%v: the real message was not delivered", f)
			}
			if r := claim(h, "game@a", "ga", f); len(bundleOf(t, r).Entries) != 0 {
				t.Fatalf("%v: more than the real message was delivered: %s", f, r.Body)
			}
		}
	})
}

package api_test

import (
	"net/http"
	"testing"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestRepeatedPostIsAnsweredOnce: a sender that lost the reply to an accepted
// POST and sends the same message again (same identifier and content, possibly
// a new envelope) gets the original reply, and
// subscribers get the message once. The same identifier with other content is
// a new message (and here, an update without version, a 409).
func TestRepeatedPostIsAnsweredOnce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			patientURL := "https://portal.example/fhir/Patient/" + uuid.NewString()
			msg := patientMessage("A", patientURL)
			body := koppeltaal.EncodeBundle(msg, f)
			post := req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "portal@a", pass: "pa",
				accept: ctypeOf(f), ctype: ctypeOf(f), body: body}
			first := h.do(post)
			// The retry regenerates its envelope (feed id), as senders that rebuild a message do.
			msg.ID = "urn:uuid:" + uuid.NewString()
			post.body = koppeltaal.EncodeBundle(msg, f)
			again := h.do(post)
			if first.Status != http.StatusOK || again.Status != http.StatusOK {
				t.Fatalf("%v: first %d, repeat %d: %s", f, first.Status, again.Status, again.Body)
			}
			d1 := dstu1.AsMessageHeader(bundleOf(t, first).Entries[0].Resource).Data()
			d2 := dstu1.AsMessageHeader(bundleOf(t, again).Entries[0].Resource).Data()
			if len(d1) != 1 || len(d2) != 1 || d1[0] != d2[0] {
				t.Fatalf("%v: repeat answered %v, first %v", f, d2, d1)
			}
			if r := claim(h, "game@a", "ga", f); len(bundleOf(t, r).Entries) == 0 {
				t.Fatalf("%v: the message was not delivered", f)
			}
			if r := claim(h, "game@a", "ga", f); len(bundleOf(t, r).Entries) != 0 {
				t.Fatalf("%v: the repeated POST was delivered a second time", f)
			}
			// Same identifier, different content: not a retry.
			mh := dstu1.AsMessageHeader(msg.Entries[0].Resource)
			msg.Entries[1].Resource.Add(dstu1.NewPrimitive("birthDate", "1990-01-01"))
			changed := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "portal@a", pass: "pa",
				accept: ctypeOf(f), ctype: ctypeOf(f), body: koppeltaal.EncodeBundle(msg, f)})
			if changed.Status != http.StatusConflict {
				t.Fatalf("%v: changed message with identifier %s again: %d, want 409 (focal without version)", f, mh.Identifier(), changed.Status)
			}
		}
	})
}

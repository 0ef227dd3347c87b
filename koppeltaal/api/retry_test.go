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

// TestRetriedAcknowledgementIsAccepted (issue 15): a client that lost the
// reply to a status PUT and sends the identical PUT again — to the versioned
// link it had, which the first PUT made stale — gets 200 and the current
// state; a PUT that would change something still needs the current version.
func TestRetriedAcknowledgementIsAccepted(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		h := newHarness(t, b, twoDomains())
		f := dstu1.FormatJSON
		for i := 0; i < 2; i++ {
			if r := postAs(h, "portal@a", "pa", patientMessage("A", "https://a.example/Patient/"+uuid.NewString()), f); r.Status != 200 {
				t.Fatal(r)
			}
		}
		status := func(r reply) string {
			ps, _ := dstu1.AsMessageHeader(resourceOf(t, r)).ProcessingStatus()
			return ps.Status + "/" + ps.Exception
		}
		for _, c := range []struct{ status, exception, other, otherException string }{
			{"Success", "", "New", ""},
			{"Failed", "cannot map patient", "Failed", "another reason"},
		} {
			link := bundleOf(t, claim(h, "game@a", "ga", f)).Entries[0].SelfLink()
			first := ack(h, "game@a", "ga", link, c.status, c.exception, f)
			retry := ack(h, "game@a", "ga", link, c.status, c.exception, f)
			if first.Status != 200 || retry.Status != 200 {
				t.Fatalf("%s: first %d, retry with the link it was sent to %d: %s", c.status, first.Status, retry.Status, retry)
			}
			if status(retry) != c.status+"/"+c.exception || retry.Header.Get("Content-Location") != first.Header.Get("Content-Location") {
				t.Fatalf("%s retry answered %s at %s, first %s", c.status, status(retry), retry.Header.Get("Content-Location"), first.Header.Get("Content-Location"))
			}
			// Whatever the version in the link: the current one, none, one that never existed.
			unversioned, _ := dstu1.SplitHistory(link)
			for _, l := range []string{first.Header.Get("Content-Location"), unversioned, unversioned + "/_history/1999-01-01T00:00:00.000000Z"} {
				if r := ack(h, "game@a", "ga", l, c.status, c.exception, f); r.Status != 200 || status(r) != c.status+"/"+c.exception {
					t.Fatalf("%s retried at %s: %d %s", c.status, l, r.Status, r)
				}
			}
			if r := ack(h, "game@a", "ga", link, c.other, c.otherException, f); r.Status != http.StatusConflict {
				t.Fatalf("%s then %s %q on the stale link: %d, want 409: %s", c.status, c.other, c.otherException, r.Status, r)
			}
		}
	})
}

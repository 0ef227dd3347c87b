package regress

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

func searchCases() []Case {
	return []Case{
		{ID: "search/summary", Title: "_summary=true&_count=N&Patient= lists that patient's MessageHeaders, and only MessageHeaders",
			Ref: "CLIENTS.md Calls: search headers; SPEC.md §3.3", Formats: both, Run: func(t *T) {
				d := t.patientWithCarePlans(2)
				b := t.summary(t.Subscriber(0), d.Patient, nil)
				t.Expect(len(b.Entries) == 2, "entries", "the patient's 2 MessageHeaders", entryTypes(b))
				for _, mh := range headers(b) {
					t.Equal("MessageHeader#Patient of a listed message", d.Patient, stripHistory(mh.Patient()))
				}
				t.Expect(len(headers(b)) == len(b.Entries), "entry types", "MessageHeader only", entryTypes(b))
			}},
		{ID: "search/count-clamped", Title: "_count=5000 is clamped, not refused",
			Ref: "CLIENTS.md Calls: search headers (clients send _count up to 5000: clamp to 1000)", Formats: both, Run: func(t *T) {
				d := t.patientWithCarePlans(1)
				b := t.summary(t.Subscriber(0), d.Patient, url.Values{"_count": {"5000"}})
				t.Expect(len(b.Entries) == 1, "entries", "the patient's message", entryTypes(b))
			}},
		{ID: "search/test-game-query", Title: "the Test Game's search (_count=999, processingStatus=New next to ProcessingStatus=New) works",
			Ref: "CLIENTS.md What browser modules send (lower-case processingStatus)", Formats: both, Run: func(t *T) {
				d := t.patientWithCarePlans(1)
				b := t.summary(t.Subscriber(0), d.Patient, url.Values{"_count": {"999"}, "processingStatus": {"New"}, "ProcessingStatus": {"New"}})
				t.Expect(len(b.Entries) == 1, "entries", "the patient's New message", entryTypes(b))
			}},
		{ID: "search/paging-next", Title: "a search is paged with next links that, followed, list every message exactly once",
			Ref: "CLIENTS.md Calls: search headers (paged with next links; list activity definitions: next links are followed)", Formats: both, Run: func(t *T) {
				d := t.patientWithCarePlans(3)
				seen := map[string]int{}
				link := fhir("/MessageHeader/_search?" + url.Values{"_summary": {"true"}, "_count": {"1"}, "Patient": {d.Patient}}.Encode())
				for pages := 0; link != "" && pages < 10; pages++ {
					resp := t.Do(Request{URL: link, Basic: t.Subscriber(0)})
					t.Require(resp.Status == http.StatusOK, "a page of the search", "HTTP 200", resp.Status)
					b := t.bundle(resp)
					t.Expect(len(b.Entries) <= 1, "entries on a page with _count=1", "at most 1", len(b.Entries))
					for _, mh := range headers(b) {
						seen[mh.Identifier()]++
					}
					link = findLink(b, "next")
					if link != "" {
						u, err := url.Parse(link)
						t.Require(err == nil && u.IsAbs() && strings.HasPrefix(u.Path, fhirPrefix+"/"), "the next link", "an absolute URL under "+fhirPrefix+"/", link)
					}
				}
				t.Expect(len(seen) == 3, "messages found by following next", "all 3", len(seen))
				for id, n := range seen {
					t.Expect(n == 1, "how often message "+id+" was listed", "once", n)
				}
			}},
		{ID: "search/patient-filter", Title: "Patient= lists only that patient's messages",
			Ref: "CLIENTS.md Calls: search headers ([&Patient=]); SPEC.md §3.3", Formats: both, Run: func(t *T) {
				a, b := t.patientWithCarePlans(1), t.patientWithCarePlans(2)
				t.Expect(len(t.summary(t.Subscriber(0), a.Patient, nil).Entries) == 1, "messages of the first patient", "1", "other")
				t.Expect(len(t.summary(t.Subscriber(0), b.Patient, nil).Entries) == 2, "messages of the second patient", "2", "other")
			}},
		{ID: "search/event-filter", Title: "event= lists only messages of that event",
			Ref: "CLIENTS.md Calls: search headers ([&event=]); SPEC.md §3.3", Formats: both, Run: func(t *T) {
				d := t.patientWithCarePlans(1)
				got := t.summary(t.Subscriber(0), d.Patient, url.Values{"event": {"CreateOrUpdateCarePlan"}})
				t.Expect(len(got.Entries) == 1, "event=CreateOrUpdateCarePlan", "the patient's CarePlan message", entryTypes(got))
				none := t.summary(t.Subscriber(0), d.Patient, url.Values{"event": {"CreateOrUpdateUserMessage"}})
				t.Expect(len(none.Entries) == 0, "event=CreateOrUpdateUserMessage", "no messages", entryTypes(none))
			}},
		{ID: "search/processingstatus-filter", Title: "ProcessingStatus= lists only messages in that status (New, Claimed, Success, Failed)",
			Ref: "CLIENTS.md Calls: search headers ([&ProcessingStatus=]); SPEC.md §3.3", Formats: both, Run: func(t *T) {
				d := t.patientWithCarePlans(4)
				a := t.Subscriber(0)
				t.ackOK(a, t.claimWait(a, d.Patient), "Success", "")
				t.ackOK(a, t.claimWait(a, d.Patient), "Failed", "regress: failed on purpose")
				t.claimWait(a, d.Patient)
				for _, s := range []string{"New", "Claimed", "Success", "Failed"} {
					hs := headers(t.summary(a, d.Patient, url.Values{"ProcessingStatus": {s}}))
					ok := len(hs) == 1
					if ok {
						ps, _ := hs[0].ProcessingStatus()
						ok = ps.Status == s
					}
					t.Expect(ok, "ProcessingStatus="+s, "exactly the one message in status "+s, len(hs))
				}
			}},
		{ID: "search/identifier", Title: "identifier=<MessageHeader.identifier> finds exactly that message",
			Ref: "SPEC.md §3.3 (1.1.0 search by MessageHeader.identifier)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				msg := t.carePlan(d, "Available")
				t.postOK(t.Portal(), d, msg)
				other := *d
				other.CarePlan = d.Base + "/CarePlan/2"
				t.postOK(t.Portal(), &other, t.carePlan(&other, "Available"))
				want := msg.MessageHeader().Identifier()
				// Without another filter: a server that ignores the parameter lists the whole mailbox.
				hs := headers(t.search(t.Subscriber(0), url.Values{"_summary": {"true"}, "identifier": {want}}))
				var got []string
				for _, mh := range hs {
					got = append(got, mh.Identifier())
				}
				t.Expect(len(got) == 1 && got[0] == want, "identifier="+want, "that one message", got)
			}},
		{ID: "search/bad-count-or-page", Title: "a _count or page that is negative or not a number gets 400 naming the parameter",
			Ref: "issue 10 defect 7; SPEC.md §3.3 (a too-large _count is clamped instead)", Formats: both, Run: func(t *T) {
				for _, q := range []url.Values{{"_count": {"-1"}}, {"_count": {"ten"}}, {"page": {"-2"}}, {"page": {"x"}}} {
					q.Set("_summary", "true")
					details := t.outcome(t.Do(Request{URL: fhir("/MessageHeader/_search?" + q.Encode()), Basic: t.Subscriber(0)}), http.StatusBadRequest)
					name := "_count"
					if q.Has("page") {
						name = "page"
					}
					t.Expect(strings.Contains(strings.Join(details, " "), name), "the refusal of "+q.Encode(), "an issue naming "+name, details)
				}
			}},
	}
}

// patientWithCarePlans posts n CarePlan messages (different CarePlans, so none replaces another) about one
// new patient and waits until the first subscriber has them all.
func (t *T) patientWithCarePlans(n int) *dossier {
	d := t.newDossier()
	for i := 1; i <= n; i++ {
		cp := *d
		cp.CarePlan = d.Base + "/CarePlan/" + itoa(i)
		t.postOK(t.Portal(), d, t.carePlan(&cp, "Available"))
	}
	t.Eventually(t.s.cfg.DeliveryWait, func() bool { return len(t.summary(t.Subscriber(0), d.Patient, nil).Entries) >= n })
	return d
}

func findLink(b *dstu1.Bundle, rel string) string {
	for _, l := range b.Links {
		if l.Rel == rel {
			return l.Href
		}
	}
	return ""
}

func stripHistory(u string) string {
	b, _ := dstu1.SplitHistory(u)
	return b
}

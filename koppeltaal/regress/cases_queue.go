package regress

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

func queueCases() []Case {
	return []Case{
		{ID: "queue/claim-whole-message", Title: "GetNextNewAndClaim returns the whole message bundle (MessageHeader first) with status Claimed",
			Ref: "CLIENTS.md Calls: claim next; SPEC.md §3.2, §5.3", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				got := t.claimWait(t.Subscriber(0), d.Patient)
				for _, u := range []string{d.CarePlan, d.Patient, d.Practitioner} {
					t.Expect(selfLinkOf(got, u) != "", "the claimed bundle", "an entry for "+u, entryTypes(got))
				}
				ps, _ := got.MessageHeader().ProcessingStatus()
				t.Equal("ProcessingStatus of the claimed message", "Claimed", ps.Status)
			}},
		{ID: "queue/claim-empty", Title: "GetNextNewAndClaim with nothing waiting returns a bundle with an empty entry list and totalResults 0",
			Ref: "CLIENTS.md Calls: claim next; SPEC.md §5.3 step 5 (Python connector fixture)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				resp := t.Do(Request{URL: claimURL(d.Patient, nil), Basic: t.Subscriber(0)})
				t.Require(resp.Status == http.StatusOK, "GetNextNewAndClaim with nothing waiting", "HTTP 200", resp.Status)
				b := t.bundle(resp)
				t.Expect(len(b.Entries) == 0, "entries", "none", entryTypes(b))
				t.Expect(b.HasTotal && b.TotalResults == "0", "totalResults", "0", b.TotalResults)
				if t.Format == dstu1.FormatJSON {
					var raw map[string]json.RawMessage
					_ = json.Unmarshal(resp.Body, &raw)
					t.Expect(string(raw["entry"]) == "[]", `the JSON member "entry"`, "[] (clients read bundle['entry'])", string(raw["entry"]))
				}
			}},
		{ID: "queue/claim-once", Title: "a claimed message is not claimed again (until it is set back to New)",
			Ref: "SPEC.md §3.2 (atomic claim), §5.2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				t.claimWait(t.Subscriber(0), d.Patient)
				t.Expect(t.claim(t.Subscriber(0), d.Patient) == nil, "a second GetNextNewAndClaim", "an empty bundle", "the same message again")
			}},
		{ID: "queue/claim-in-order", Title: "messages about different resources are claimed oldest first",
			Ref: "SPEC.md §5.3 step 2 (the first unread message)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				first := t.carePlan(d, "Available")
				t.postOK(t.Portal(), d, first)
				second := *d
				second.CarePlan = d.Base + "/CarePlan/2"
				next := t.carePlan(&second, "Available")
				t.postOK(t.Portal(), &second, next)
				for i, want := range []*dstu1.Bundle{first, next} {
					got := t.claimWait(t.Subscriber(0), d.Patient)
					t.Equal("identifier of claim "+itoa(i+1), want.MessageHeader().Identifier(), got.MessageHeader().Identifier())
				}
			}},
		{ID: "queue/claim-event-filter", Title: "GetNextNewAndClaim with event= only claims messages of that event",
			Ref: "CLIENTS.md Calls: claim next ([&event=]); SPEC.md §3.2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				resp := t.Do(Request{URL: claimURL(d.Patient, url.Values{"event": {"UpdateCarePlanActivityStatus"}}), Basic: t.Subscriber(0)})
				t.Require(resp.Status == http.StatusOK, "GetNextNewAndClaim&event=UpdateCarePlanActivityStatus", "HTTP 200", resp.Status)
				t.Expect(len(t.bundle(resp).Entries) == 0, "claim for another event", "an empty bundle", entryTypes(t.bundle(resp)))
				resp = t.Do(Request{URL: claimURL(d.Patient, url.Values{"event": {"CreateOrUpdateCarePlan"}}), Basic: t.Subscriber(0)})
				t.Expect(len(t.bundle(resp).Entries) > 0, "claim for CreateOrUpdateCarePlan", "the CarePlan message", "an empty bundle")
			}},
		{ID: "queue/each-subscriber-own-status", Title: "every subscriber gets its own copy with its own processing status",
			Ref: "SPEC.md §5 (status per recipient), §6.3 step 4", Formats: both, Needs: []Capability{CapSecondSubscriber}, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				a := t.claimWait(t.Subscriber(0), d.Patient)
				b := t.claimWait(t.Subscriber(1), d.Patient)
				t.ackOK(t.Subscriber(0), a, "Failed", "regress: the first subscriber could not process it")
				idB, _ := headerRef(b)
				t.Equal("the second subscriber's status after the first one's Failed", "Claimed", t.statusOf(t.Subscriber(1), idB).Status)
				t.ackOK(t.Subscriber(1), b, "Success", "")
				idA, _ := headerRef(a)
				t.Equal("the first subscriber's status after the second one's Success", "Failed", t.statusOf(t.Subscriber(0), idA).Status)
			}},
		{ID: "queue/ack-success-self-link", Title: "PUT Success to the claimed MessageHeader's self link (the Python connector) gets 2xx and the status sticks",
			Ref: "CLIENTS.md Calls: acknowledge; SPEC.md §3.5", Formats: both, Run: func(t *T) {
				got := t.postAndClaim()
				resp := t.ack(t.Subscriber(0), got, "Success", "")
				t.Require(ok2xx(resp), "PUT Success to the self link", "HTTP 2xx", resp.Status)
				if len(resp.Body) > 0 {
					t.expectFormat(resp)
				}
				id, _ := headerRef(got)
				t.Equal("ProcessingStatus afterwards", "Success", t.statusOf(t.Subscriber(0), id).Status)
			}},
		{ID: "queue/ack-unversioned-accept-any", Title: "PUT Success to the history-less /MessageHeader/<id> with Accept: */* (the JS Test Game) gets 2xx",
			Ref: "CLIENTS.md Calls: acknowledge; What browser modules send", Formats: both, Run: func(t *T) {
				got := t.postAndClaim()
				id, _ := headerRef(got)
				resp := t.Do(Request{Method: http.MethodPut, URL: id, Basic: t.Subscriber(0), Accept: "*/*", Body: ackBody(got, t.Format, "Success", "")})
				t.Require(ok2xx(resp), "PUT to "+id+" with Accept */*", "HTTP 2xx", resp.Status)
				t.Equal("ProcessingStatus afterwards", "Success", t.statusOf(t.Subscriber(0), id).Status)
			}},
		{ID: "queue/ack-failed-with-exception", Title: "PUT Failed with a ProcessingStatusException records both",
			Ref: "SPEC.md §3.5, §4.2 (exception required with Failed)", Formats: both, Run: func(t *T) {
				got := t.postAndClaim()
				const why = "regress: the activity definition is unknown to this module"
				t.ackOK(t.Subscriber(0), got, "Failed", why)
				id, _ := headerRef(got)
				ps := t.statusOf(t.Subscriber(0), id)
				t.Equal("ProcessingStatus afterwards", "Failed", ps.Status)
				t.Equal("ProcessingStatusException afterwards", why, ps.Exception)
			}},
		{ID: "queue/ack-failed-needs-exception", Title: "PUT Failed without an exception is refused with an OperationOutcome and changes nothing",
			Ref: "SPEC.md §3.5 (an exception description must be passed), §5.4", Formats: both, Run: func(t *T) {
				t.refusedAck(t.Subscriber(0), "Failed")
			}},
		{ID: "queue/ack-new-redelivers", Title: "PUT New (a transient failure) makes the message claimable again",
			Ref: "SPEC.md §3.5, §5.2 (Claimed → New by the client)", Formats: both, Run: func(t *T) {
				got := t.postAndClaim()
				t.ackOK(t.Subscriber(0), got, "New", "")
				again := t.claimWait(t.Subscriber(0), got.MessageHeader().Patient())
				t.Equal("the message claimed after PUT New", got.MessageHeader().Identifier(), again.MessageHeader().Identifier())
			}},
		{ID: "queue/ack-stale-version", Title: "PUT to an outdated MessageHeader self link gets 409 with exactly \"The specified resource version is not correct\"",
			Ref: "CLIENTS.md Error texts clients look for (the same text for MessageHeader PUT)", Formats: both, Run: func(t *T) {
				got := t.postAndClaim()
				t.ackOK(t.Subscriber(0), got, "New", "") // the MessageHeader's version moves on
				t.claimWait(t.Subscriber(0), got.MessageHeader().Patient())
				details := t.outcome(t.ack(t.Subscriber(0), got, "Success", ""), http.StatusConflict)
				t.Expect(len(details) > 0 && details[0] == textStaleVersion, "issue[0].details", `"`+textStaleVersion+`"`, details)
			}},
		{ID: "queue/ack-not-yours", Title: "an instance cannot set the status of another instance's message",
			Ref: "SPEC.md §5.4 (only the owning instance), §6.4", Formats: both, Needs: []Capability{CapSecondSubscriber}, Run: func(t *T) {
				t.refusedAck(t.Subscriber(1), "Success")
			}},
		{ID: "queue/ack-claimed-refused", Title: "a client cannot set Claimed, ReplacedByNewVersion or MaximumRetriesExceeded",
			Ref: "SPEC.md §5.4 (the server sets those)", Formats: both, Run: func(t *T) {
				t.refusedAck(t.Subscriber(0), "Claimed", "ReplacedByNewVersion", "MaximumRetriesExceeded")
			}},
		{ID: "queue/read-by-id", Title: "_search?_id= with the id or the full versioned URL returns the whole message",
			Ref: "CLIENTS.md Calls: read one message; SPEC.md §3.4", Formats: both, Run: func(t *T) {
				got := t.postAndClaim()
				id, self := headerRef(got)
				for _, ref := range []string{lastSegment(id), self} {
					b := t.read(t.Subscriber(0), ref)
					t.Expect(len(b.Entries) == len(got.Entries), "the message read with _id="+ref, "all its entries", entryTypes(b))
				}
			}},
		{ID: "queue/read-does-not-claim", Title: "reading a New message leaves it New",
			Ref: "SPEC.md §3.4 (a read does not change the processing status)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				var hs []*dstu1.MessageHeader
				t.Eventually(t.s.cfg.DeliveryWait, func() bool { hs = headers(t.summary(t.Subscriber(0), d.Patient, nil)); return len(hs) > 0 })
				t.Require(len(hs) == 1, "the subscriber's messages about the patient", "one", len(hs))
				b := t.summary(t.Subscriber(0), d.Patient, nil)
				id := b.Entries[0].ID
				t.read(t.Subscriber(0), id)
				t.Equal("ProcessingStatus after a read", "New", t.statusOf(t.Subscriber(0), id).Status)
				t.claimWait(t.Subscriber(0), d.Patient)
			}},
		{ID: "queue/replaced-by-new-version", Title: "a newer version of an unclaimed message marks the older one ReplacedByNewVersion; only the newest is claimed",
			Ref: "SPEC.md §5.1, §6.3 step 5 (the queue only keeps the most recent version)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				upd := t.carePlan(d, "InProgress")
				t.postOK(t.Portal(), d, upd)
				got := t.claimWait(t.Subscriber(0), d.Patient)
				t.Equal("the claimed message", upd.MessageHeader().Identifier(), got.MessageHeader().Identifier())
				t.Expect(t.claim(t.Subscriber(0), d.Patient) == nil, "a second claim", "empty (the older version was replaced)", "another message")
				t.expectStates(t.Subscriber(0), d.Patient, "ReplacedByNewVersion", "Claimed")
			}},
		{ID: "queue/replaced-while-claimed", Title: "a claimed but unacknowledged message is replaced by a newer version too",
			Ref: "SPEC.md §5.2 (anything but Success → ReplacedByNewVersion)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				t.claimWait(t.Subscriber(0), d.Patient)
				t.postOK(t.Portal(), d, t.carePlan(d, "InProgress"))
				t.expectStates(t.Subscriber(0), d.Patient, "ReplacedByNewVersion", "New")
			}},
		{ID: "queue/success-stays-success", Title: "a message acknowledged Success stays Success when a newer version arrives",
			Ref: "SPEC.md §5.2, §7.4 step 6 (if already Success it stays Success)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				t.ackOK(t.Subscriber(0), t.claimWait(t.Subscriber(0), d.Patient), "Success", "")
				t.postOK(t.Portal(), d, t.carePlan(d, "InProgress"))
				t.expectStates(t.Subscriber(0), d.Patient, "Success", "New")
			}},
		{ID: "queue/claim-timeout", Title: "a claim not acknowledged within the claim timeout goes back to New and can be claimed again",
			Ref: "SPEC.md §5.2 (Claimed → New: time-out of claim)", Formats: both, Needs: []Capability{CapClaimTimeout}, Run: func(t *T) {
				got := t.postAndClaim()
				id, _ := headerRef(got)
				t.waitForStatus(t.Subscriber(0), id, "New")
				again := t.claimWait(t.Subscriber(0), got.MessageHeader().Patient())
				t.Equal("the message claimed after the time-out", got.MessageHeader().Identifier(), again.MessageHeader().Identifier())
			}},
		{ID: "queue/maximum-retries-exceeded", Title: "a message claimed max_retries times without acknowledgement ends MaximumRetriesExceeded",
			Ref: "SPEC.md §5.1, §5.2 (max 5 retries)", Formats: both, Needs: []Capability{CapClaimTimeout}, Run: func(t *T) {
				got := t.postAndClaim()
				id, _ := headerRef(got)
				patient := got.MessageHeader().Patient()
				for i := 1; i < t.s.cfg.MaxRetries; i++ {
					t.waitForStatus(t.Subscriber(0), id, "New")
					t.claimWait(t.Subscriber(0), patient)
				}
				t.waitForStatus(t.Subscriber(0), id, "MaximumRetriesExceeded")
				t.Expect(t.claim(t.Subscriber(0), patient) == nil, "GetNextNewAndClaim afterwards", "empty", "the message again")
			}},
		{ID: "queue/legacy-recipient", Title: "a 1.3.3 recipient gets the focal resource versioned and the other resources without version",
			Ref: "SPEC.md §4.3, §7.3 E (1.3.2/1.3.3 recipients: remove the versions)", Formats: both, Needs: []Capability{CapLegacy}, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				got := t.claimWait(t.Legacy(), d.Patient)
				t.Equal("the CarePlan's self link", d.versioned(d.CarePlan), selfLinkOf(got, d.CarePlan))
				for _, u := range []string{d.Patient, d.Practitioner} {
					t.Equal("the self link of "+u, u, selfLinkOf(got, u))
				}
				t.ackOK(t.Legacy(), got, "Success", "")
			}},
	}
}

// postAndClaim posts a CarePlan message for a new patient and claims it as the first subscriber.
func (t *T) postAndClaim() *dstu1.Bundle {
	d := t.newDossier()
	t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
	return t.claimWait(t.Subscriber(0), d.Patient)
}

// refusedAck claims a new message as the first subscriber, has by PUT each of statuses (without an
// exception) and expects every PUT refused with an OperationOutcome and the message still Claimed.
func (t *T) refusedAck(by *Account, statuses ...string) {
	got := t.postAndClaim()
	for _, s := range statuses {
		t.outcome(t.ack(by, got, s, ""))
	}
	id, _ := headerRef(got)
	t.Equal("ProcessingStatus after the refused PUT", "Claimed", t.statusOf(t.Subscriber(0), id).Status)
}

// expectStates checks the statuses of a's messages about patient, oldest first.
func (t *T) expectStates(a *Account, patient string, want ...string) {
	t.expectStatesOf(a, patient, nil, want...)
}

// expectStatesOf is expectStates for the messages a search with extra finds.
func (t *T) expectStatesOf(a *Account, patient string, extra url.Values, want ...string) {
	var got []string
	for _, mh := range headers(t.summary(a, patient, extra)) {
		ps, _ := mh.ProcessingStatus()
		got = append(got, ps.Status)
	}
	t.Expect(slices.Equal(got, want), "the statuses of "+a.Username+"'s messages about the patient, oldest first", strings.Join(want, ", "), got)
}

// waitForStatus waits (claim timeout plus sweep interval, twice over) until message id has status.
func (t *T) waitForStatus(a *Account, id, status string) {
	c := t.s.cfg
	var got string
	ok := t.Eventually(2*(c.ClaimTimeout+c.SweepInterval), func() bool { got = t.statusOf(a, id).Status; return got == status })
	t.Require(ok, "ProcessingStatus of "+id+" within "+(2*(c.ClaimTimeout+c.SweepInterval)).String(), status, got)
}

func lastSegment(u string) string {
	for i := len(u) - 1; i >= 0; i-- {
		if u[i] == '/' {
			return u[i+1:]
		}
	}
	return u
}

func itoa(i int) string { return strconv.Itoa(i) }

package regress

import (
	"maps"
	"net/http"
	"strconv"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/testclient"
)

func mailboxCases() []Case {
	return []Case{
		{ID: "mailbox/post-careplan", Title: "a new CarePlan message gets 200 and a bundle holding exactly one MessageHeader",
			Ref: "CLIENTS.md Calls: send message; SPEC.md §3.1, §4.8", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				resp := t.post(t.Portal(), t.encode(t.carePlan(d, "Available")))
				t.Require(resp.Status == http.StatusOK, "Mailbox POST", "HTTP 200", resp.Status)
				b := t.bundle(resp)
				t.Expect(len(b.Entries) == 1 && b.MessageHeader() != nil, "the reply's entries", "exactly one: a MessageHeader", entryTypes(b))
			}},
		{ID: "mailbox/reply-event-and-response", Title: "the Mailbox reply has the request's event, response.identifier = the request identifier and response.code ok",
			Ref: "CLIENTS.md Calls: send message; SPEC.md §4.8, §7.4 step 2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				msg := t.carePlan(d, "Available")
				mh := t.postOK(t.Portal(), d, msg)
				t.Equal("reply event.code", "CreateOrUpdateCarePlan", mh.Event().Code)
				id, code, ok := mh.Response()
				t.Expect(ok, "reply MessageHeader.response", "present", "absent")
				t.Equal("reply response.identifier", msg.MessageHeader().Identifier(), id)
				t.Equal("reply response.code", "ok", code)
			}},
		{ID: "mailbox/reply-data-versions", Title: "the reply's data[0] is the focal resource's versioned URL, then one data per other versioned resource (1.3.5 sender)",
			Ref: "CLIENTS.md Calls: send message; SPEC.md §4.8, §7.2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				data := t.postOK(t.Portal(), d, t.carePlan(d, "Available")).Data()
				t.Require(len(data) > 0, "reply data", "at least the focal reference", "none")
				base, v := dstu1.SplitHistory(data[0])
				t.Expect(base == d.CarePlan && v != "", "reply data[0]", d.CarePlan+"/_history/<version>", data[0])
				seen := map[string]bool{}
				for _, ref := range data {
					b, v := dstu1.SplitHistory(ref)
					t.Expect(v != "", "reply data "+ref, "a versioned URL (/_history/<version>)", ref)
					seen[b] = true
				}
				for _, u := range []string{d.Patient, d.Practitioner} {
					t.Expect(seen[u], "reply data", "a versioned reference to "+u+" (a new resource got a version)", data)
				}
			}},
		{ID: "mailbox/reply-source-software", Title: "the Mailbox reply's MessageHeader.source has non-empty name, software, version and endpoint",
			Ref: "CLIENTS.md Fields clients require: Mailbox reply MessageHeader.source (the Python connector rejects a reply without software)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				src := t.postOK(t.Portal(), d, t.carePlan(d, "Available")).Source()
				t.Expect(src.Name != "", "reply source.name", "non-empty", src.Name)
				t.Expect(src.Software != "", "reply source.software (DSTU1 1..1)", "non-empty", src.Software)
				t.Expect(src.Version != "", "reply source.version", "non-empty", src.Version)
				t.Expect(src.Endpoint != "", "reply source.endpoint (DSTU1 1..1)", "non-empty", src.Endpoint)
			}},
		{ID: "mailbox/reply-required-elements", Title: "the Mailbox reply's MessageHeader has every DSTU1 1..1 element: identifier, timestamp (an instant), event, source",
			Ref: "CLIENTS.md Fields clients require (every element DSTU1 marks 1..1 is present); SPEC.md §4.2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				mh := t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				t.Expect(mh.Identifier() != "", "reply identifier", "present", "absent")
				_, err := time.Parse(time.RFC3339Nano, mh.Timestamp())
				t.Expect(err == nil, "reply timestamp", "an instant (yyyy-mm-ddThh:mm:ss+zz:zz)", mh.Timestamp())
				ev := mh.Event()
				t.Expect(ev.System == dstu1.SystemMessageEvents && ev.Code != "", "reply event", "system "+dstu1.SystemMessageEvents+" and a code", ev)
				t.Expect(mh.Child("source") != nil, "reply source", "present", "absent")
			}},
		{ID: "mailbox/versions-increase", Title: "an update gets a new focal version that is greater when compared as strings",
			Ref: "CLIENTS.md Calls: update activity definition (versions increase as strings); SPEC.md §7.2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				v1 := d.version(d.CarePlan)
				t.postOK(t.Portal(), d, t.carePlan(d, "InProgress"))
				v2 := d.version(d.CarePlan)
				t.Expect(v2 > v1, "the CarePlan's version after an update", "greater than "+v1+" (as strings)", v2)
			}},
		{ID: "mailbox/focal-without-version", Title: "the focal resource sent without a version while the server has one gets 409 with the exact client text",
			Ref: "CLIENTS.md Error texts clients look for; SPEC.md §7.1", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				blank := *d
				blank.Versions = map[string]string{}
				details := t.outcome(t.post(t.Portal(), t.encode(t.carePlan(&blank, "InProgress"))), http.StatusConflict)
				t.Expect(contains(details, textNoFocalVersion), "OperationOutcome issue details", textNoFocalVersion, details)
			}},
		{ID: "mailbox/stale-version-text", Title: "a stale focal version gets 409 with issue details exactly \"The specified resource version is not correct\" (no final period)",
			Ref: "CLIENTS.md Error texts clients look for (clients compare issue[0].details exactly)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				stale := t.staleUpdate(d)
				details := t.outcome(t.post(t.Portal(), t.encode(stale)), http.StatusConflict)
				t.Expect(len(details) > 0 && details[0] == textStaleVersion, "issue[0].details", `"`+textStaleVersion+`"`, details)
			}},
		{ID: "mailbox/stale-version-issue-resource", Title: "the 409 names the resource with the wrong version in OperationOutcome#IssueResource",
			Ref: "SPEC.md §3.13 (one issue per wrong resource, IssueResource extension)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				stale := t.staleUpdate(d)
				resp := t.post(t.Portal(), t.encode(stale))
				t.outcome(resp, http.StatusConflict)
				oo, err := replyLimits.ParseResource(resp.Body, t.replyFormat(resp))
				t.Require(err == nil, "the 409 body", "an OperationOutcome", err)
				var named []string
				oo.Each("issue", func(n *dstu1.Node) bool {
					named = append(named, n.Extension(dstu1.ExtIssueResource).ExtensionValue().Str("reference"))
					return true
				})
				found := false
				for _, ref := range named {
					b, _ := dstu1.SplitHistory(ref)
					found = found || b == d.CarePlan
				}
				t.Expect(found, "OperationOutcome#IssueResource of the issues", d.CarePlan, named)
			}},
		{ID: "mailbox/stale-version-stores-nothing", Title: "a message refused with 409 is not stored or routed",
			Ref: "SPEC.md §7.3 B (the message is rejected and processing stops)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				stale := t.staleUpdate(d)
				t.outcome(t.post(t.Portal(), t.encode(stale)), http.StatusConflict)
				// The subscriber got the first two messages, not the refused third.
				got := headers(t.summary(t.Subscriber(0), d.Patient, nil))
				t.Expect(len(got) == 2, "the subscriber's messages about the patient", "the 2 accepted messages", len(got))
			}},
		{ID: "mailbox/nonfocal-without-version", Title: "other resources of an update sent without a version are accepted (not version-checked)",
			Ref: "CLIENTS.md Error texts clients look for (other resources without version are not version-checked)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
				focalOnly := *d
				focalOnly.Versions = map[string]string{d.CarePlan: d.version(d.CarePlan)}
				t.postOK(t.Portal(), nil, t.carePlan(&focalOnly, "InProgress"))
			}},
		{ID: "mailbox/patient-message", Title: "CreateOrUpdatePatient (the focal Patient is the message's patient) is accepted and versioned",
			Ref: "SPEC.md §4.4; CLIENTS.md Calls: send message", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				data := t.postOK(t.Portal(), d, t.patientMessage(d, "Eerste")).Data()
				base, v := dstu1.SplitHistory(first(data))
				t.Expect(base == d.Patient && v != "", "reply data[0]", d.Patient+"/_history/<version>", data)
			}},
		{ID: "mailbox/activity-status", Title: "UpdateCarePlanActivityStatus from a module reaches the portal subscribed to it",
			Ref: "SPEC.md §4.4 (CarePlanActivityStatus is an Other resource, not self-contained)", Formats: both, Run: func(t *T) {
				_, got := t.statusToPortal(false)
				t.Equal("event of the portal's message", "UpdateCarePlanActivityStatus", got.MessageHeader().Event().Code)
			}},
		{ID: "mailbox/blackboxstate-other", Title: "UpdateCarePlanActivityStatus carrying an Other coded BlackBoxState is accepted and passed on unchanged",
			Ref: "CLIENTS.md What browser modules send (the Test Game's post update)", Formats: both, Run: func(t *T) {
				msg, got := t.statusToPortal(true)
				sent, recv := blackBox(msg), blackBox(got)
				t.Require(recv != nil, "the portal's copy of the message", "the BlackBoxState Other entry", entryTypes(got))
				ok, diff := dstu1.EqualResource(sent, recv)
				t.Expect(ok, "the BlackBoxState resource as the portal received it", "unchanged", diff)
			}},
		{ID: "mailbox/validate-only", Title: "a message with the ValidateOnly tag gets 2xx and is neither stored nor routed",
			Ref: "SPEC.md §3.1 (ARCH13 §11.1 ValidateOnly tag)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				msg := t.carePlan(d, "Available")
				msg.Categories = append(msg.Categories, dstu1.Category{Term: dstu1.TermValidateOnly, Scheme: dstu1.SchemeTag})
				resp := t.post(t.Portal(), t.encode(msg))
				t.Expect(resp.Status >= 200 && resp.Status < 300, "Mailbox POST with the ValidateOnly tag", "HTTP 2xx", resp.Status)
				t.Expect(t.claim(t.Subscriber(0), d.Patient) == nil, "GetNextNewAndClaim for the patient afterwards", "empty (nothing was routed)", "a message")
				// Nothing was stored: the same resources are still new, so a real POST without versions passes.
				msg.Categories = msg.Categories[:len(msg.Categories)-1]
				t.postOK(t.Portal(), d, msg)
			}},
		{ID: "mailbox/legacy-reply-focal-only", Title: "a 1.3.3 sender's reply lists only the focal resource's version",
			Ref: "SPEC.md §4.8, §7.3 F (api-version < 1.3.5: focal version only)", Formats: both, Needs: []Capability{CapLegacy}, Run: func(t *T) {
				d := t.newDossier()
				data := t.postOK(t.Legacy(), d, t.carePlan(d, "Available")).Data()
				t.Expect(len(data) == 1, "reply data of a 1.3.3 sender", "one reference: the focal CarePlan", data)
				base, v := dstu1.SplitHistory(first(data))
				t.Expect(base == d.CarePlan && v != "", "reply data[0]", d.CarePlan+"/_history/<version>", first(data))
			}},
		{ID: "mailbox/legacy-nonfocal-not-checked", Title: "a 1.3.3 sender's other resources are not version-checked: an outdated Patient version next to the right focal one is accepted",
			Ref: "SPEC.md §7.1, §7.3 B (1.3.3: only the focal resource is versioned)", Formats: both, Needs: []Capability{CapLegacy}, Run: func(t *T) {
				d := t.newDossier()
				t.postOK(t.Portal(), d, t.carePlan(d, "Available")) // a 1.3.5 sender: every resource gets a version
				old := maps.Clone(d.Versions)
				t.postOK(t.Portal(), d, t.patientMessage(d, "Tweede")) // the Patient's version moves on
				mixed := *d
				mixed.Versions = map[string]string{d.CarePlan: d.version(d.CarePlan), d.Patient: old[d.Patient]}
				t.postOK(t.Legacy(), nil, t.carePlan(&mixed, "InProgress"))
			}},
		{ID: "mailbox/python-connector-replay", Title: "the Python connector's recorded Mailbox posts (fresh URLs, this server's versions) get 200, or 409 where they re-post a stale version",
			Ref: "CLIENTS.md (recorded requests, clients/python-connector-requests.jsonl)", Formats: both, Run: func(t *T) {
				t.replayRecording("python-connector-requests.jsonl", true)
			}},
		{ID: "mailbox/python-connector-updates-replay", Title: "the Python connector's recorded update posts get 200",
			Ref: "CLIENTS.md (recorded requests, clients/python-connector-updates-requests.jsonl)", Formats: both, Run: func(t *T) {
				t.replayRecording("python-connector-updates-requests.jsonl", false)
			}},
	}
}

// staleUpdate posts a CarePlan twice and returns a third message that carries the first version.
func (t *T) staleUpdate(d *dossier) *dstu1.Bundle {
	t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
	old := maps.Clone(d.Versions)
	t.postOK(t.Portal(), d, t.carePlan(d, "InProgress"))
	stale := *d
	stale.Versions = old
	return t.carePlan(&stale, "Completed")
}

// statusToPortal has the first subscriber post an UpdateCarePlanActivityStatus (with the BlackBoxState
// when blackBox) for a new patient and the portal claim and acknowledge it; it returns both copies.
func (t *T) statusToPortal(blackBox bool) (sent, got *dstu1.Bundle) {
	d := t.newDossier()
	sent = t.activityStatus(d, t.moduleBase(), "Completed", blackBox)
	t.postOK(t.Subscriber(0), d, sent)
	got = t.claimWait(t.Portal(), d.Patient)
	t.ackOK(t.Portal(), got, "Success", "")
	return sent, got
}

// moduleBase is a module's own resource base, unique per case.
func (t *T) moduleBase() string {
	return "https://module.regress.example/" + t.Unique("kt") + "/fhir/Koppeltaal"
}

// activityStatus is UpdateCarePlanActivityStatus for the dossier's activity, sent from base; with
// blackBox the Test Game's BlackBoxState Other resource rides along.
func (t *T) activityStatus(d *dossier, base, status string, blackBox bool) *dstu1.Bundle {
	u := testclient.StatusUpdate{Patient: d.Patient, Activity: d.Activity, ID: "1", Status: status, Percentage: 50}
	if blackBox {
		u.State = []byte(`{"level":3,"score":1200,"case":"` + t.Unique("state") + `"}`)
	}
	b, err := testclient.StatusMessage(u, t.buildOptions(d, base))
	if err != nil {
		t.Fatalf("building the status message: %v", err)
	}
	return b
}

// blackBox returns a message's BlackBoxState resource, or nil.
func blackBox(b *dstu1.Bundle) *dstu1.Resource {
	for _, e := range b.Entries {
		if e.ResourceType() == "BlackBoxState" {
			return e.Resource
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func first(list []string) string {
	if len(list) == 0 {
		return ""
	}
	return list[0]
}

// replayRecording posts a recording's Mailbox bodies in order, translated to this run, and checks each
// answer against the rules of SPEC.md §7 for a 1.3.5 sender. stale says the recording re-posts stale
// versions on purpose, so a 409 must occur.
func (t *T) replayRecording(name string, stale bool) {
	tr := t.newTranslator("PythonAdapterTesting", "https://example.com/fhir/Koppeltaal", "https://sender.example/fhir/Koppeltaal")
	conflicts := 0
	for i, raw := range t.recordedMailboxBodies(name) {
		b, err := dstu1.ParseBundle(tr.apply(raw), dstu1.FormatJSON)
		t.Require(err == nil, "recorded body "+strconv.Itoa(i+1), "a DSTU1 bundle", err)
		want := tr.expect(b)
		resp := t.post(t.Portal(), t.encode(b))
		step := "recorded Mailbox post " + strconv.Itoa(i+1) + " (" + eventOf(b) + ")"
		if want == http.StatusConflict {
			conflicts++
			t.outcome(resp, http.StatusConflict)
			continue
		}
		t.Require(resp.Status == http.StatusOK, step, "HTTP 200", resp.Status)
		mh := t.bundle(resp).MessageHeader()
		t.Require(mh != nil, step+": the reply", "a MessageHeader", "none")
		id, code, _ := mh.Response()
		t.Expect(id == b.MessageHeader().Identifier() && code == "ok", step+": reply response", "identifier = the request's, code ok", id+" "+code)
		tr.issued(mh)
	}
	if stale {
		t.Expect(conflicts > 0, "the recording's stale re-posts", "at least one 409", "none predicted")
	}
}

package regress

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// hostile is a malformed or refused Mailbox POST: the body comes from mutating a valid CarePlan message;
// the target must answer a 4xx OperationOutcome in the client's format and store nothing.
type hostile struct {
	id, title, ref string
	formats        []dstu1.Format
	// jsonMut changes the decoded JSON message (entries: 0 MessageHeader, 1 CarePlan, 2 Patient, 3 Practitioner).
	jsonMut func(msg map[string]any)
	// xmlMut changes the XML message text.
	xmlMut func(s string) string
	// bundleMut changes the message before it is encoded (both formats).
	bundleMut func(t *T, b *dstu1.Bundle)
	// names are words the OperationOutcome must mention (the element or parameter that is wrong).
	names []string
	// statuses that are right (default any 4xx).
	statuses []int
}

func hostileCases() []Case {
	mh := func(m map[string]any) map[string]any { return entry(m, 0) }
	primitive := "issue 10 defect 7 (a JSON value of the wrong type: 400 naming the element, nothing stored)"
	xmlPrimitive := "issue 10 defect 7 (an XML value that is not a valid DSTU1 primitive: 400 naming the element)"
	hs := []hostile{
		{id: "identifier-number", title: "MessageHeader.identifier as a JSON number", ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) { mh(m)["identifier"] = json.Number("12345") }, names: []string{"identifier"}},
		{id: "data-object", title: "MessageHeader.data as an object instead of an array", ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) { mh(m)["data"] = mh(m)["data"].([]any)[0] }, names: []string{"data"}},
		{id: "timestamp-number", title: "MessageHeader.timestamp as a JSON number", ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) { mh(m)["timestamp"] = json.Number("1767225600") }, names: []string{"timestamp"}},
		{id: "timestamp-yesterday", title: `MessageHeader.timestamp "yesterday" (not an instant)`, ref: primitive + "; " + xmlPrimitive, formats: both,
			jsonMut: func(m map[string]any) { mh(m)["timestamp"] = "yesterday" },
			xmlMut:  replaceValue("timestamp", "yesterday"), names: []string{"timestamp"}},
		{id: "data-reference-number", title: "data[0].reference as a JSON number", ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) { mh(m)["data"].([]any)[0].(map[string]any)["reference"] = json.Number("42") }, names: []string{"reference"}},
		{id: "extension-null", title: `"extension": null on the MessageHeader`, ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) { mh(m)["extension"] = nil }, names: []string{"extension"}},
		{id: "patient-name-object", title: "Patient.name as an object instead of an array", ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) { entry(m, 2)["name"] = entry(m, 2)["name"].([]any)[0] }, names: []string{"name"}},
		{id: "entry-id-number", title: "an entry id as a JSON number", ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) { m["entry"].([]any)[1].(map[string]any)["id"] = json.Number("7") }, names: []string{"id"}},
		{id: "number-400-digits", title: "an integer of 400 digits (Patient#Age)", ref: primitive, formats: jsonOnly,
			jsonMut: func(m map[string]any) {
				entry(m, 2)["extension"] = []any{map[string]any{"url": dstu1.KoppeltaalBase + "Patient#Age", "valueInteger": json.Number("4" + strings.Repeat("2", 399))}}
			}, names: []string{"valueInteger"}},
		{id: "two-domain-tags", title: "two domain security tags (which one counts is ambiguous)", ref: "issue 10 defect 7 (an ambiguous domain); SPEC.md §4.1 (category 2..2)", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) {
				b.Categories = append(b.Categories, dstu1.Category{Term: dstu1.DomainTermPrefix + "Other" + t.s.run, Label: "Other", Scheme: dstu1.SchemeSecurity})
			}, names: []string{"domain"}},
		{id: "xml-invalid-datetime", title: `CarePlan#StartDate valueDateTime "31-02-1980"`, ref: xmlPrimitive, formats: xmlOnly,
			xmlMut: replaceValue("valueDateTime", "31-02-1980"), names: []string{"valueDateTime"}},
		{id: "xml-invalid-instant", title: `MessageHeader.timestamp "2026-13-45T99:99:99Z"`, ref: xmlPrimitive, formats: xmlOnly,
			xmlMut: replaceValue("timestamp", "2026-13-45T99:99:99Z"), names: []string{"timestamp"}},
		{id: "xml-invalid-boolean", title: `Patient.active "yes"`, ref: xmlPrimitive, formats: xmlOnly,
			xmlMut: replaceValue("active", "yes"), names: []string{"active"}},
		{id: "xml-invalid-integer", title: `Patient#Age valueInteger "12a"`, ref: xmlPrimitive, formats: xmlOnly,
			bundleMut: func(t *T, b *dstu1.Bundle) {
				// The XML writer writes the value as given; JSON could not even carry it as a number.
				p := b.Entries[2].Resource
				p.Children = append([]*dstu1.Node{dstu1.NewExtension(dstu1.KoppeltaalBase+"Patient#Age", dstu1.NewPrimitive("valueInteger", "12a"))}, p.Children...)
			}, names: []string{"valueInteger"}},
		{id: "xml-invalid-uri", title: `MessageHeader.event.system "http://exa mple.org/MessageEvents" (a space in the host; "not used" is a URI clients send)`, ref: xmlPrimitive, formats: xmlOnly,
			xmlMut: replaceValue("system", "http://exa mple.org/MessageEvents"), names: []string{"system"}},
		{id: "null-in-array", title: "a JSON array holding null", ref: "SPEC.md §3.13 (the documented text; the old server said 500)", formats: jsonOnly,
			jsonMut: func(m map[string]any) { mh(m)["data"] = []any{nil} }, names: []string{textNullInArray}, statuses: []int{400, 422, 500}},
		{id: "unsupported-resource", title: "a Condition entry (an unsupported resource type)", ref: "SPEC.md §3.13, §4.5", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) {
				c := dstu1.NewResource("Condition")
				c.Add(dstu1.NewReference("subject", b.MessageHeader().Patient()))
				b.AddEntry(c, "https://portal.regress.example/Condition/1", "https://portal.regress.example/Condition/1")
			}, names: []string{"The resource type 'Condition' is not supported"}},
		{id: "wrong-domain", title: "a domain tag naming another domain than the credentials'", ref: "SPEC.md §2.2 (domain check)", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) {
				for i, c := range b.Categories {
					if c.Scheme == dstu1.SchemeSecurity {
						b.Categories[i] = dstu1.Category{Term: dstu1.DomainTermPrefix + "Elsewhere", Label: "Elsewhere", Scheme: dstu1.SchemeSecurity}
					}
				}
			}},
		{id: "no-domain-tag", title: "no domain security tag", ref: "SPEC.md §4.1 (the domain tag is required), §2.2", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) {
				var keep []dstu1.Category
				for _, c := range b.Categories {
					if c.Scheme != dstu1.SchemeSecurity {
						keep = append(keep, c)
					}
				}
				b.Categories = keep
			}},
		{id: "unknown-event", title: "an event code that is not a Koppeltaal message", ref: "SPEC.md §4.4", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) { b.MessageHeader().Child("event").Child("code").Value = "DeleteEverything" }},
		{id: "header-not-first", title: "the MessageHeader not as the first entry", ref: "SPEC.md §3.1 (the MessageHeader must be the first entry)", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) { b.Entries[0], b.Entries[1] = b.Entries[1], b.Entries[0] }},
		{id: "no-identifier", title: "a MessageHeader without identifier", ref: "SPEC.md §4.2 (identifier 1..1)", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) {
				b.MessageHeader().Remove(func(n *dstu1.Node) bool { return n.Name == "identifier" })
			}, names: []string{"identifier"}},
		{id: "activitydefinition-message", title: "a client-posted CreateOrUpdateActivityDefinition message", ref: "SPEC.md §3.1 (only the server sends it; TD-FR)", formats: both,
			bundleMut: func(t *T, b *dstu1.Bundle) {
				ev := b.MessageHeader().Child("event")
				ev.Child("code").Value, ev.Child("display").Value = "CreateOrUpdateActivityDefinition", "CreateOrUpdateActivityDefinition"
			}},
	}
	var cases []Case
	for _, h := range hs {
		cases = append(cases, Case{ID: "hostile/" + h.id, Title: "refused with a 4xx OperationOutcome, nothing stored: " + h.title, Ref: h.ref,
			Formats: h.formats, Run: func(t *T) { t.runHostile(h) }})
	}
	return append(cases, otherHostileCases()...)
}

// runHostile posts the hostile message about a new patient, checks the refusal, and that nothing was
// stored: the subscriber has no message about the patient, and the valid message is still accepted as new.
func (t *T) runHostile(h hostile) {
	d := t.newDossier()
	valid := t.carePlan(d, "Available")
	bad := valid.Clone()
	if h.bundleMut != nil {
		h.bundleMut(t, bad)
	}
	body := t.encode(bad)
	switch {
	case t.Format == dstu1.FormatJSON && h.jsonMut != nil:
		body = mutateJSON(t, body, h.jsonMut)
	case t.Format == dstu1.FormatXML && h.xmlMut != nil:
		mutated := h.xmlMut(string(body))
		t.Require(mutated != string(body), "the hostile XML", "a changed message (a bug in the case)", "unchanged")
		body = []byte(mutated)
	}
	details := t.outcome(t.post(t.Portal(), body), h.statuses...)
	all := strings.ToLower(strings.Join(details, " "))
	for _, n := range h.names {
		t.Expect(strings.Contains(all, strings.ToLower(n)), "the OperationOutcome", "an issue naming "+n, details)
	}
	t.expectNothingStored(d, valid)
}

// expectNothingStored checks that no message about d's patient reached the first subscriber, and that the
// valid message for d's resources is still accepted as new (no version was issued for them).
func (t *T) expectNothingStored(d *dossier, valid *dstu1.Bundle) {
	got := t.summary(t.Subscriber(0), d.Patient, nil)
	t.Expect(len(got.Entries) == 0, "the subscriber's messages about the patient after the refusal", "none", entryTypes(got))
	resp := t.post(t.Portal(), t.encode(valid))
	t.Expect(resp.Status == http.StatusOK, "the valid message for the same new resources, after the refusal", "HTTP 200 (nothing of the refused one was stored)", resp.Status)
}

// entry returns the content of entry i of a decoded JSON bundle.
func entry(m map[string]any, i int) map[string]any {
	return m["entry"].([]any)[i].(map[string]any)["content"].(map[string]any)
}

func mutateJSON(t *T, body []byte, fn func(map[string]any)) []byte {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var m map[string]any
	t.Require(dec.Decode(&m) == nil, "the valid message as JSON", "decodable", "not")
	fn(m)
	out, err := json.Marshal(m)
	t.Require(err == nil, "the hostile JSON", "encodable", err)
	return out
}

// replaceValue changes the value attribute of the first <name value="…"/> element.
func replaceValue(name, value string) func(string) string {
	re := regexp.MustCompile(`<` + name + ` value="[^"]*"`)
	return func(s string) string {
		loc := re.FindStringIndex(s)
		if loc == nil {
			return s
		}
		return s[:loc[0]] + `<` + name + ` value="` + value + `"` + s[loc[1]:]
	}
}

// otherHostileCases are refusals that are not Mailbox bodies.
func otherHostileCases() []Case {
	return []Case{
		{ID: "hostile/not-a-bundle", Title: "a single resource posted to the Mailbox is refused with a 4xx OperationOutcome",
			Ref: "SPEC.md §3.1 (the body is one message bundle)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				r := t.carePlan(d, "Available").Entries[2].Resource
				t.outcome(t.post(t.Portal(), r.Encode(t.Format)))
				t.expectNothingStored(d, t.carePlan(d, "Available"))
			}},
		{ID: "hostile/unparseable", Title: "a truncated body is refused with a 4xx OperationOutcome in the client's format",
			Ref: "CLIENTS.md Transport facts (JSON errors for JSON clients); SPEC.md §3.1", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				body := t.encode(t.carePlan(d, "Available"))
				t.outcome(t.post(t.Portal(), body[:len(body)/2]))
				t.expectNothingStored(d, t.carePlan(d, "Available"))
			}},
		{ID: "hostile/empty-body", Title: "an empty Mailbox POST is refused with a 4xx OperationOutcome",
			Ref: "SPEC.md §3.1", Formats: both, Run: func(t *T) {
				t.outcome(t.Do(Request{Method: http.MethodPost, URL: fhir("/Mailbox"), Basic: t.Portal(), Body: []byte{}, ContentType: mediaTypes(t.Format)}))
			}},
		{ID: "hostile/patient-extension-mismatch", Title: "CreateOrUpdatePatient whose MessageHeader#Patient names another patient than the focal Patient is refused",
			Ref: "issue 10 (patient-extension mismatch; issue 14 item 15); SPEC.md §4.2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				msg := t.patientMessage(d, "Verkeerd")
				msg.MessageHeader().SetPatient(d.Base + "/Patient/2")
				t.outcome(t.post(t.Portal(), t.encode(msg)))
				for _, p := range []string{d.Patient, d.Base + "/Patient/2"} {
					got := t.summary(t.Subscriber(0), p, nil)
					t.Expect(len(got.Entries) == 0, "messages filed under "+p, "none", entryTypes(got))
				}
			}},
		{ID: "hostile/no-credentials", Title: "a call without credentials gets 401 with WWW-Authenticate and an OperationOutcome in the client's format",
			Ref: "CLIENTS.md Transport facts (Basic sent pre-emptively; JSON errors); SPEC.md §2.2", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				resp := t.Do(Request{Method: http.MethodPost, URL: fhir("/Mailbox"), Body: t.encode(t.carePlan(d, "Available"))})
				t.outcome(resp, http.StatusUnauthorized)
				t.Expect(resp.Header.Get("WWW-Authenticate") != "", "WWW-Authenticate on the 401", "present", "absent")
				t.expectNothingStored(d, t.carePlan(d, "Available"))
			}},
		{ID: "hostile/unknown-instance", Title: "unknown credentials get 401 with an OperationOutcome in the client's format",
			Ref: "SPEC.md §2.2", Formats: both, Run: func(t *T) {
				nobody := &Account{Username: t.Unique("nobody"), Password: "wrong"}
				t.outcome(t.Do(Request{URL: claimURL("", nil), Basic: nobody}), http.StatusUnauthorized)
			}},
		{ID: "hostile/unknown-endpoint", Title: "an unknown FHIR path gets 404 with an OperationOutcome in the client's format",
			Ref: "CLIENTS.md Transport facts (an HTML or text error page crashes the Python connector)", Formats: both, Run: func(t *T) {
				t.outcome(t.Do(Request{URL: fhir("/NoSuchResource/1"), Basic: t.Portal()}), http.StatusNotFound)
			}},
		{ID: "hostile/claim-with-processingstatus", Title: "GetNextNewAndClaim with ProcessingStatus is refused",
			Ref: "SPEC.md §3.2 (ProcessingStatus cannot be passed to the named query)", Formats: both, Run: func(t *T) {
				got := t.postForNewPatient()
				t.outcome(t.Do(Request{URL: claimURL(got, url.Values{"ProcessingStatus": {"New"}}), Basic: t.Subscriber(0)}))
				t.claimWait(t.Subscriber(0), got) // nothing was claimed by the refused call
			}},
		{ID: "hostile/unknown-named-query", Title: "an unknown named query is refused with an OperationOutcome",
			Ref: "SPEC.md §3.2", Formats: both, Run: func(t *T) {
				t.outcome(t.Do(Request{URL: fhir("/MessageHeader/_search?_query=MessageHeader.DeleteAll"), Basic: t.Subscriber(0)}))
			}},
		{ID: "hostile/bogus-processing-status", Title: "PUT of a ProcessingStatus that does not exist is refused and changes nothing",
			Ref: "SPEC.md §5.1, §5.4", Formats: both, Run: func(t *T) {
				t.refusedAck(t.Subscriber(0), "Bogus")
			}},
		{ID: "hostile/activitydefinition-not-an-ad", Title: "POST Other with something that is not an ActivityDefinition is refused and not listed",
			Ref: "SPEC.md §3.7; CLIENTS.md (every listed definition must be well formed)", Formats: both, Run: func(t *T) {
				d := t.newDossier()
				before := len(t.listADs(true).Entries)
				t.outcome(t.Do(Request{Method: http.MethodPost, URL: fhir("/Other"), Basic: t.Portal(), Body: t.carePlan(d, "Available").Entries[2].Resource.Encode(t.Format)}))
				t.Expect(len(t.listADs(true).Entries) == before, "the definitions afterwards", "as many as before", "more")
			}},
	}
}

// postForNewPatient posts a CarePlan about a new patient and returns the patient (the message stays New).
func (t *T) postForNewPatient() string {
	d := t.newDossier()
	t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
	return d.Patient
}

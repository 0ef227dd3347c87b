package regress

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// What the suite reads in replies, by the texts and URLs CLIENTS.md and SPEC.md give.
const (
	textStaleVersion    = "The specified resource version is not correct" // CLIENTS.md: no final period
	textNoFocalVersion  = "No version specified for the focal resource, message is rejected."
	textNullInArray     = "The FHIR serialization does not support arrays with empty (null) elements"
	queryClaim          = "MessageHeader.GetNextNewAndClaim"
	systemActivityState = dstu1.KoppeltaalBase + "CarePlanActivityStatus"
)

// replyLimits parse what the target answers as clients do: the DSTU1 shapes and JSON types, without
// judging every primitive's value (a case checks the values clients read, such as timestamps).
var replyLimits = dstu1.Limits{SkipValueChecks: true}

// dossier is one patient and the resources a case sends about them, in the sender's own URL space (unique
// per case and run), with the versions the target issued.
type dossier struct {
	Base         string
	Patient      string
	CarePlan     string
	Practitioner string
	Activity     string // the CarePlan activity's identifier
	Definition   string // the ActivityDefinition identifier the activity names
	Versions     map[string]string
}

// newDossier returns a fresh patient under a base of its own, e.g.
// https://portal.regress.example/kt-1a2b3c4d-7/fhir/Koppeltaal/Patient/1.
func (t *T) newDossier() *dossier {
	base := "https://portal.regress.example/" + t.Unique("kt") + "/fhir/Koppeltaal"
	d := &dossier{Base: base, Patient: base + "/Patient/1", CarePlan: base + "/CarePlan/1", Practitioner: base + "/Practitioner/1",
		Activity: "activity-1", Definition: "regress-activity", Versions: map[string]string{}}
	return d
}

// version is what the sender knows of a resource's version ("" for a new resource).
func (d *dossier) version(u string) string { return d.Versions[u] }

// versioned is u with its known version.
func (d *dossier) versioned(u string) string {
	if v := d.Versions[u]; v != "" {
		return u + "/_history/" + v
	}
	return u
}

// buildOptions bind a message to the dossier's sender.
func (t *T) buildOptions(d *dossier, base string) client.BuildOptions {
	if base == "" {
		base = d.Base
	}
	return client.BuildOptions{Domain: t.s.cfg.Domain, ResourceBase: base, SourceName: "Koppelpoort regress",
		SourceSoftware: "Koppelpoort regress", SourceVersion: "1.3.5", MessageID: t.Unique("msg"), Version: d.version}
}

// build turns a declared message into a bundle, ending the case if the declaration is wrong (a bug in the case).
func (t *T) build(m client.Message, o client.BuildOptions) *dstu1.Bundle {
	b, err := client.BuildMessage(m, o)
	if err != nil {
		t.Fatalf("building the message: %v", err)
	}
	return b
}

// carePlan is CreateOrUpdateCarePlan with the CarePlan (focal), its Patient and Practitioner, the activity
// in status activityStatus. The resources are the dossier's URLs, all under d.Base.
func (t *T) carePlan(d *dossier, activityStatus string) *dstu1.Bundle {
	return t.build(client.Message{Event: "CreateOrUpdateCarePlan", Patient: d.Patient, Resources: []client.Resource{
		{Type: "CarePlan", ID: lastSegment(d.CarePlan), Body: carePlanBody(d, activityStatus)},
		{Type: "Patient", ID: lastSegment(d.Patient), Body: patientBody("Regress", "Patiënt")},
		{Type: "Practitioner", ID: lastSegment(d.Practitioner), Body: map[string]any{"name": map[string]any{"family": []any{"Behandelaar"}, "given": []any{"Regress"}}}},
	}}, t.buildOptions(d, ""))
}

// patientMessage is CreateOrUpdatePatient with the Patient as focal resource.
func (t *T) patientMessage(d *dossier, given string) *dstu1.Bundle {
	return t.build(client.Message{Event: "CreateOrUpdatePatient", Patient: d.Patient,
		Resources: []client.Resource{{Type: "Patient", ID: lastSegment(d.Patient), Body: patientBody(given, "Patiënt")}}}, t.buildOptions(d, ""))
}

func patientBody(given, family string) map[string]any {
	return map[string]any{
		"name":   []any{map[string]any{"use": "official", "given": []any{given}, "family": []any{family}}},
		"gender": map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/v3/AdministrativeGender", "code": "UN", "display": "Unknown"}}},
		"active": true,
	}
}

func carePlanBody(d *dossier, activityStatus string) map[string]any {
	ext := func(name string, v map[string]any) map[string]any {
		v["url"] = dstu1.KoppeltaalBase + "CarePlan#" + name
		return v
	}
	return map[string]any{
		"patient": map[string]any{"reference": d.Patient},
		"status":  "active",
		"participant": []any{map[string]any{"member": map[string]any{"reference": d.Practitioner},
			"role": map[string]any{"coding": []any{map[string]any{"system": dstu1.KoppeltaalBase + "CarePlanParticipantRole", "code": "Caregiver", "display": "Caregiver"}}}}},
		"activity": []any{map[string]any{"prohibited": false, "extension": []any{
			ext("ActivityIdentifier", map[string]any{"valueString": d.Activity}),
			ext("ActivityDefinition", map[string]any{"valueString": d.Definition}),
			ext("StartDate", map[string]any{"valueDateTime": "2026-01-01T09:00:00+01:00"}),
			ext("ActivityStatus", map[string]any{"valueCoding": map[string]any{"system": systemActivityState, "code": activityStatus, "display": activityStatus}}),
		}}},
	}
}

// encode writes b in the case's format.
func (t *T) encode(b *dstu1.Bundle) []byte { return b.Encode(t.Format) }

// post sends a message bundle (or raw bytes) to the Mailbox.
func (t *T) post(a *Account, body []byte) *Response {
	return t.Do(Request{Method: http.MethodPost, URL: fhir("/Mailbox"), Basic: a, Body: body})
}

// postOK posts b, requires 200 with a reply bundle, records the issued versions in d and returns the
// reply's MessageHeader.
func (t *T) postOK(a *Account, d *dossier, b *dstu1.Bundle) *dstu1.MessageHeader {
	resp := t.post(a, t.encode(b))
	t.Require(resp.Status == http.StatusOK, "Mailbox POST of "+eventOf(b), "HTTP 200 with the response message", resp.Status)
	reply := t.bundle(resp)
	mh := reply.MessageHeader()
	t.Require(mh != nil, "the Mailbox reply", "a bundle whose first entry is a MessageHeader", entryTypes(reply))
	if d != nil {
		for u, v := range client.IssuedVersions(reply) {
			d.Versions[u] = v
		}
	}
	return mh
}

func eventOf(b *dstu1.Bundle) string {
	if mh := b.MessageHeader(); mh != nil {
		return mh.Event().Code
	}
	return "a message"
}

// bundle parses a reply as a bundle in the case's format, requiring the format's content type.
func (t *T) bundle(resp *Response) *dstu1.Bundle {
	t.expectFormat(resp)
	b, err := replyLimits.ParseBundle(resp.Body, t.replyFormat(resp))
	t.Require(err == nil, "the reply body", "a DSTU1 bundle in "+t.Format.String(), err)
	return b
}

// resource parses a reply as one resource in the case's format.
func (t *T) resource(resp *Response) *dstu1.Resource {
	t.expectFormat(resp)
	r, err := replyLimits.ParseResource(resp.Body, t.replyFormat(resp))
	t.Require(err == nil, "the reply body", "one DSTU1 resource in "+t.Format.String(), err)
	return r
}

func (t *T) replyFormat(resp *Response) dstu1.Format {
	if t.Format != 0 {
		return t.Format
	}
	if f := resp.Format(); f != 0 {
		return f
	}
	return dstu1.Sniff(resp.Body)
}

// expectFormat checks that a reply's Content-Type is the case's format (CLIENTS.md: a JSON client needs a
// JSON content type on every reply, errors included).
func (t *T) expectFormat(resp *Response) bool {
	if t.Format == 0 {
		return true
	}
	want := "an XML media type (application/xml+fhir, application/xml, ...)"
	if t.Format == dstu1.FormatJSON {
		want = "application/json (a +fhir suffix or charset is fine)"
	}
	return t.Expect(resp.Format() == t.Format, "Content-Type of the reply", want, resp.Header.Get("Content-Type"))
}

// outcome checks an error reply: one of the statuses (any 4xx when none is given), in the case's format,
// an OperationOutcome with at least one issue. It returns the issues' details.
func (t *T) outcome(resp *Response, statuses ...int) []string {
	want := "HTTP 4xx"
	ok := resp.Status >= 400 && resp.Status < 500
	if len(statuses) > 0 {
		want, ok = "HTTP "+joinInts(statuses), false
		for _, s := range statuses {
			ok = ok || resp.Status == s
		}
	}
	t.Expect(ok, "status of the refusal", want+" with an OperationOutcome", resp.Status)
	if resp.Status < 400 {
		return nil // accepted: there is no refusal to look at
	}
	t.expectFormat(resp)
	r, err := replyLimits.ParseResource(resp.Body, t.replyFormat(resp))
	if !t.Expect(err == nil && r.Type() == "OperationOutcome", "the refusal's body", "an OperationOutcome", describeBody(r, err)) {
		return nil
	}
	var details []string
	r.Each("issue", func(n *dstu1.Node) bool {
		details = append(details, n.Str("details"))
		return true
	})
	t.Expect(len(details) > 0, "the OperationOutcome", "at least one issue", "none")
	return details
}

func describeBody(r *dstu1.Resource, err error) string {
	if err != nil {
		return err.Error()
	}
	return "a " + r.Type()
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, " or ")
}

// entryTypes lists a bundle's entries by Koppeltaal type, for reports.
func entryTypes(b *dstu1.Bundle) string {
	var out []string
	for _, e := range b.Entries {
		if e.Resource == nil {
			out = append(out, "(deleted)")
			continue
		}
		out = append(out, e.Resource.KoppeltaalType())
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// claimURL is GetNextNewAndClaim for one patient (every case claims only its own patient's messages, so
// nothing else waiting in a long-lived server's mailboxes gets in the way).
func claimURL(patient string, extra url.Values) string {
	q := url.Values{"_query": {queryClaim}}
	if patient != "" {
		q.Set("Patient", patient)
	}
	for k, v := range extra {
		q[k] = v
	}
	return fhir("/MessageHeader/_search?" + q.Encode())
}

// claim claims a's next message about patient; nil when there is none.
func (t *T) claim(a *Account, patient string) *dstu1.Bundle {
	resp := t.Do(Request{URL: claimURL(patient, nil), Basic: a})
	t.Require(resp.Status == http.StatusOK, "GetNextNewAndClaim", "HTTP 200 with a bundle", resp.Status)
	b := t.bundle(resp)
	if len(b.Entries) == 0 {
		return nil
	}
	return b
}

// claimWait claims a's next message about patient, waiting up to the delivery wait for it.
func (t *T) claimWait(a *Account, patient string) *dstu1.Bundle {
	var b *dstu1.Bundle
	t.Eventually(t.s.cfg.DeliveryWait, func() bool { b = t.claim(a, patient); return b != nil })
	t.Require(b != nil, "GetNextNewAndClaim for "+a.Username+" (Patient="+patient+")", "the message posted for that patient", "an empty bundle")
	t.Require(b.MessageHeader() != nil, "the claimed bundle", "a MessageHeader as first entry", entryTypes(b))
	return b
}

// headerRef is the claimed MessageHeader entry's id ([base]/MessageHeader/<n>) and self link.
func headerRef(b *dstu1.Bundle) (id, self string) {
	if len(b.Entries) == 0 {
		return "", ""
	}
	return b.Entries[0].ID, b.Entries[0].SelfLink()
}

// ackBody is the claimed MessageHeader with its ProcessingStatus changed (what clients PUT).
func ackBody(b *dstu1.Bundle, f dstu1.Format, status, exception string) []byte {
	mh := dstu1.AsMessageHeader(b.Entries[0].Resource.Clone())
	mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: status, Exception: exception, LastChanged: time.Now().UTC().Format(time.RFC3339)})
	return mh.Resource.Encode(f)
}

// ack PUTs status to the claimed message's self link (the Python connector's way).
func (t *T) ack(a *Account, b *dstu1.Bundle, status, exception string) *Response {
	_, self := headerRef(b)
	return t.Do(Request{Method: http.MethodPut, URL: self, Basic: a, Body: ackBody(b, t.Format, status, exception)})
}

// ackOK acks and requires a 2xx.
func (t *T) ackOK(a *Account, b *dstu1.Bundle, status, exception string) {
	resp := t.ack(a, b, status, exception)
	t.Require(resp.Status >= 200 && resp.Status < 300, "PUT of ProcessingStatus "+status+" to the self link", "HTTP 2xx", resp.Status)
}

// statusOf reads one message by its MessageHeader id and returns its ProcessingStatus (and exception).
func (t *T) statusOf(a *Account, id string) dstu1.ProcessingStatus {
	b := t.read(a, id)
	ps, _ := b.MessageHeader().ProcessingStatus()
	return ps
}

// read fetches a whole message with _search?_id=.
func (t *T) read(a *Account, id string) *dstu1.Bundle {
	resp := t.Do(Request{URL: fhir("/MessageHeader/_search?" + url.Values{"_id": {id}}.Encode()), Basic: a})
	t.Require(resp.Status == http.StatusOK, "read a message with _search?_id=", "HTTP 200 with the message bundle", resp.Status)
	b := t.bundle(resp)
	t.Require(b.MessageHeader() != nil, "the message read by _id", "a bundle whose first entry is a MessageHeader", entryTypes(b))
	return b
}

// search runs a MessageHeader search and returns the bundle.
func (t *T) search(a *Account, q url.Values) *dstu1.Bundle {
	resp := t.Do(Request{URL: fhir("/MessageHeader/_search?" + q.Encode()), Basic: a})
	t.Require(resp.Status == http.StatusOK, "MessageHeader search", "HTTP 200 with a bundle", resp.Status)
	return t.bundle(resp)
}

// headers returns the MessageHeaders of a search bundle.
func headers(b *dstu1.Bundle) []*dstu1.MessageHeader {
	var out []*dstu1.MessageHeader
	for _, e := range b.Entries {
		if mh := dstu1.AsMessageHeader(e.Resource); mh != nil {
			out = append(out, mh)
		}
	}
	return out
}

// summary lists a's messages about patient (all pages' first, up to 100).
func (t *T) summary(a *Account, patient string, extra url.Values) *dstu1.Bundle {
	q := url.Values{"_summary": {"true"}, "_count": {"100"}, "Patient": {patient}}
	for k, v := range extra {
		q[k] = v
	}
	return t.search(a, q)
}

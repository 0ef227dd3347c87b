package dstu1

import (
	"os"
	"strings"
	"testing"
)

func mustBundle(t testing.TB, path string) *Bundle {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := ParseBundle(data, Sniff(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

func TestBundleAccessors(t *testing.T) {
	tests := []struct {
		file      string
		domain    string
		message   bool
		event     string
		patient   string
		data      []string
		types     []string
		status    string
		expired   string // "" absent, "true"/"false"
		selfLinks int
	}{
		{
			file: "testdata/examples/createorupdatecareplan-request-vzvztest-careteam.xml", domain: "VZVZTest", message: true,
			event: "CreateOrUpdateCarePlan", patient: "https://testprovidemb.vitalhealthsoftware.com/Koppeltaal/Patient/d4849156-d961-45bb-a16c-e929209c2dc5",
			data:  []string{"https://testprovidemb.vitalhealthsoftware.com/Koppeltaal/CarePlan/7d676a2f-edec-4dc4-8f9b-910474663bbb"},
			types: []string{"MessageHeader", "CarePlan", "Organization", "Patient", "Practitioner", "CareTeam"}, selfLinks: 5,
		},
		{
			file: "testdata/examples/bv-step3-queued-message-getnextnewandclaim.xml", domain: "EricTest", message: true,
			event: "CreateOrUpdateCarePlan", patient: "http://local.emhp/Patient/9664",
			data:   []string{"http://local.emhp/CarePlan/81636954/_history/2019-03-19T12:00:02:188.9659"},
			types:  []string{"MessageHeader", "CarePlan", "Patient", "CareTeam", "CareTeam"},
			status: "Claimed", expired: "false", selfLinks: 5,
		},
		{
			file: "testdata/schema-examples/CreateOrUpdateUserMessage.xml", domain: "Koppeltaal Samples", message: true,
			event: "CreateOrUpdateUserMessage", patient: "http://test.mijnapplicatie.nl/fhir/Patient/215325",
			data:  []string{"http://test.mijnapplicatie.nl/fhir/UserMessage/123456754/_history/2015-06-09T08:20:53:974.6774"},
			types: []string{"MessageHeader", "UserMessage"}, selfLinks: 1,
		},
		{
			file: "testdata/clients/python-connector-03-post-mailbox.json", domain: "PythonAdapterTesting", message: true,
			event: "CreateOrUpdateCarePlan", patient: "https://example.com/fhir/Koppeltaal/Patient/8701459c48db4f9aa8fa605848c3a339",
			data:  []string{"https://example.com/fhir/Koppeltaal/CarePlan/f3cb3be082984742a6b0735aec0b0959"},
			types: []string{"MessageHeader", "CarePlan", "Patient", "Practitioner"}, selfLinks: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := mustBundle(t, tt.file)
			if d, ok := b.Domain(); !ok || d != tt.domain {
				t.Errorf("Domain() = %q, %v; want %q", d, ok, tt.domain)
			}
			if b.IsMessage() != tt.message {
				t.Errorf("IsMessage() = %v", b.IsMessage())
			}
			mh := b.MessageHeader()
			if mh == nil {
				t.Fatal("no MessageHeader")
			}
			if mh.EventCode() != tt.event || mh.Event().System != SystemMessageEvents {
				t.Errorf("event = %+v", mh.Event())
			}
			if mh.Patient() != tt.patient {
				t.Errorf("Patient() = %q", mh.Patient())
			}
			if got := mh.Data(); strings.Join(got, " ") != strings.Join(tt.data, " ") {
				t.Errorf("Data() = %v", got)
			}
			var types []string
			links := 0
			for _, e := range b.Entries {
				types = append(types, e.ResourceType())
				if e.SelfLink() != "" {
					links++
				}
			}
			if got := strings.Join(types, ","); !strings.HasPrefix(got, strings.Join(tt.types, ",")) {
				t.Errorf("types = %s, want %v", got, tt.types)
			}
			if links != tt.selfLinks {
				t.Errorf("%d self links, want %d", links, tt.selfLinks)
			}
			ps, ok := mh.ProcessingStatus()
			if ok != (tt.status != "") || ps.Status != tt.status {
				t.Errorf("ProcessingStatus() = %+v, %v", ps, ok)
			}
			exp, present := mh.IsExpired()
			if want := tt.expired; (want != "") != present || (present && (exp != (want == "true"))) {
				t.Errorf("IsExpired() = %v, %v; want %q", exp, present, want)
			}
		})
	}
}

func TestOtherResourceTypes(t *testing.T) {
	want := map[string]string{
		"testdata/examples/bv-step3-queued-message-getnextnewandclaim.xml":                            "CareTeam",
		"testdata/examples/createorupdateactivitydefinition-message-edge.xml":                         "ActivityDefinition",
		"testdata/examples/updatecareplanactivitystatus-request-healthonline-step2.xml":               "CarePlanActivityStatus",
		"testdata/examples/getnextnewandclaim-response-createorupdateusermessage-soapui.repaired.xml": "UserMessage",
	}
	data, err := os.ReadFile("testdata/examples/activitydefinition-other-id-vs-identifier-architectuur.xml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseResource(data, FormatXML)
	if err != nil || r.KoppeltaalType() != KindActivityDefinition {
		t.Errorf("vzvz.nl OtherResourceUsage system: %v, %q", err, r.KoppeltaalType())
	}
	for file, kind := range want {
		b := mustBundle(t, file)
		found := false
		for _, e := range b.Entries {
			if e.Resource.Type() == "Other" && e.ResourceType() == kind {
				found = true
			}
		}
		if !found {
			t.Errorf("%s: no Other resource of kind %s", file, kind)
		}
	}
}

func TestDomainWithSpaces(t *testing.T) {
	b := mustBundle(t, "testdata/examples/createorupdatecareplan-request-soapui-new-careplan.repaired.xml")
	if d, _ := b.Domain(); d != "MindDistrict Kickass" {
		t.Fatalf("Domain() = %q", d)
	}
}

func TestSplitHistory(t *testing.T) {
	tests := []struct{ in, base, version string }{
		{"http://x/Patient/1/_history/2019-03-19T12:00:02:188.9659", "http://x/Patient/1", "2019-03-19T12:00:02:188.9659"},
		{"http://x/Patient/1", "http://x/Patient/1", ""},
		{"http://x/Other/ActivityDefinition:2/_history/7", "http://x/Other/ActivityDefinition:2", "7"},
		{"", "", ""},
	}
	for _, tt := range tests {
		if b, v := SplitHistory(tt.in); b != tt.base || v != tt.version {
			t.Errorf("SplitHistory(%q) = %q, %q", tt.in, b, v)
		}
	}
}

func TestProfileURLFormsAndValueCoding(t *testing.T) {
	body := `<MessageHeader xmlns="http://hl7.org/fhir">
  <extension url="http://ggz.koppeltaal.nl/fhir/Koppeltaal/MessageHeader#IsExpired"><valueBoolean value="true"/></extension>
  <extension url="http://example.org/other"><valueString value="keep me"/></extension>
  <extension url="http://ggz.koppeltaal.nl/fhir/Koppeltaal/Profile/MessageHeader#ProcessingStatus">
    <extension url="http://ggz.koppeltaal.nl/fhir/Koppeltaal/Profile/MessageHeader#ProcessingStatusStatus">
      <valueCoding><system value="http://ggz.koppeltaal.nl/fhir/Koppeltaal/ProcessingStatus"/><code value="Failed"/></valueCoding>
    </extension>
    <extension url="http://ggz.koppeltaal.nl/fhir/Koppeltaal/Profile/MessageHeader#ProcessingStatusException"><valueString value="boom"/></extension>
  </extension>
  <extension url="http://ggz.koppeltaal.nl/fhir/Koppeltaal/Profile/MessageHeader#Patient"><valueResource><reference value="http://x/Patient/1"/></valueResource></extension>
  <identifier value="abc"/>
</MessageHeader>`
	r, err := ParseResource([]byte(body), FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	mh := AsMessageHeader(r)
	ps, ok := mh.ProcessingStatus()
	if !ok || ps.Status != "Failed" || ps.Exception != "boom" {
		t.Fatalf("ProcessingStatus() = %+v, %v", ps, ok)
	}
	if mh.Extension(ExtensionURLs(ExtMessageHeaderPatient)...) == nil || CanonicalExtensionURL(KoppeltaalBase+"Profile/MessageHeader#IsExpired") != ExtIsExpired {
		t.Fatal("ExtensionURLs/CanonicalExtensionURL")
	}
	if mh.Patient() != "http://x/Patient/1" {
		t.Fatalf("Patient() = %q", mh.Patient())
	}
	mh.SetProcessingStatus(ProcessingStatus{Status: "Success", LastChanged: "2026-11-28T12:00:00Z"})
	var urls []string
	for _, c := range mh.Children {
		urls = append(urls, c.Name+" "+c.URL)
	}
	want := []string{
		"extension " + ExtMessageHeaderPatient,
		"extension " + ExtProcessingStatus,
		"extension " + ExtIsExpired,
		"extension http://example.org/other",
		"identifier ",
	}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Fatalf("order after SetProcessingStatus:\n%s\nwant\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}
	ps, _ = mh.ProcessingStatus()
	if ps != (ProcessingStatus{Status: "Success", LastChanged: "2026-11-28T12:00:00Z"}) {
		t.Fatalf("after set: %+v", ps)
	}
	if strings.Contains(string(r.XML()), "/Profile/") {
		t.Fatalf("Profile URL form written:\n%s", r.XML())
	}
}

func TestSoapUIAtomNamespacedMessageHeader(t *testing.T) {
	data, err := os.ReadFile("testdata/examples/messageheader-put-processingstatus-success-soapui.xml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseResource(data, FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	mh := AsMessageHeader(r)
	ps, _ := mh.ProcessingStatus()
	if mh.Identifier() != "e279c094-4fe8-4857-a544-0817a18ebbda" || ps.Status != "Success" || ps.LastChanged != "2015-06-18T14:08:48+02:00" {
		t.Fatalf("identifier %q status %+v", mh.Identifier(), ps)
	}
	if !strings.HasPrefix(string(r.XML()), `<MessageHeader xmlns="http://hl7.org/fhir">`) {
		t.Fatalf("output root:\n%s", r.XML())
	}
}

func TestMutations(t *testing.T) {
	orig := mustBundle(t, "testdata/examples/createorupdatecareplan-request-vzvztest-careteam.xml")
	b := orig.Clone()
	mh := b.MessageHeader()
	if err := mh.SetData(0, "https://x/CarePlan/7/_history/v2"); err != nil {
		t.Fatal(err)
	}
	if err := mh.SetData(1, "nope"); err == nil {
		t.Fatal("SetData out of range: no error")
	}
	b.Entries[0].SetSelfLink("https://kt/MessageHeader/12/_history/v1")
	b.Entries[0].SetID("https://kt/MessageHeader/12")
	b.Entries[0].SetTitle("MessageHeader with IID=12")
	b.Entries[0].SetUpdated("2026-11-28T12:00:00+01:00")
	b.SetUpdated("2026-11-28T12:00:00+01:00")
	mh.SetProcessingStatus(ProcessingStatus{Status: "Claimed", LastChanged: "2026-11-28T12:00:00+01:00"})
	mh.SetIsExpired(false)

	// The clone changed, the original did not.
	if ok, _ := Equal(orig, b); ok {
		t.Fatal("clone and original are equal after mutation")
	}
	if got := orig.MessageHeader().Data()[0]; strings.Contains(got, "v2") {
		t.Fatalf("original changed: %s", got)
	}
	if orig.Entries[0].SelfLink() != "" {
		t.Fatal("original entry got a self link")
	}

	// Mutations survive both wire forms.
	for _, f := range []Format{FormatXML, FormatJSON} {
		var out []byte
		if f == FormatXML {
			out = b.XML()
		} else {
			out = b.JSON()
		}
		back, err := ParseBundle(out, f)
		if err != nil {
			t.Fatal(err)
		}
		if ok, d := Equal(b, back); !ok {
			t.Fatalf("%v: %s", f, d)
		}
		bm := back.MessageHeader()
		if bm.Data()[0] != "https://x/CarePlan/7/_history/v2" || back.Entries[0].Title != "MessageHeader with IID=12" || back.Updated == "" {
			t.Fatalf("%v: mutation lost", f)
		}
		if ps, _ := bm.ProcessingStatus(); ps.Status != "Claimed" {
			t.Fatalf("%v: status %+v", f, ps)
		}
	}

	// 1.3.3 recipients: only the focal resource keeps its version.
	mh.SetData(0, "https://testprovidemb.vitalhealthsoftware.com/Koppeltaal/CarePlan/7d676a2f-edec-4dc4-8f9b-910474663bbb/_history/v9")
	b.Entries[1].SetSelfLink("https://testprovidemb.vitalhealthsoftware.com/Koppeltaal/CarePlan/7d676a2f-edec-4dc4-8f9b-910474663bbb/_history/v9")
	if n := b.StripNonFocalVersions(); n != 3 {
		t.Fatalf("StripNonFocalVersions changed %d links, want 3 (Organization, Patient, CareTeam)", n)
	}
	for i, e := range b.Entries[1:] {
		_, v := SplitHistory(e.SelfLink())
		if (i == 0) != (v != "") {
			t.Errorf("entry %d (%s) version %q", i+1, e.ResourceType(), v)
		}
	}
}

func TestBuilders(t *testing.T) {
	oo := NewOperationOutcome("", Issue{Severity: "error", Type: "conflict", Details: "The specified resource version is not correct", Resource: "http://x/Patient/1"})
	for _, f := range []Format{FormatXML, FormatJSON} {
		var out []byte
		if f == FormatXML {
			out = oo.XML()
		} else {
			out = oo.JSON()
		}
		back, err := ParseResource(out, f)
		if err != nil {
			t.Fatalf("%v: %v\n%s", f, err, out)
		}
		if ok, d := EqualResource(oo, back); !ok {
			t.Fatalf("%v: %s", f, d)
		}
		issue := back.Child("issue")
		if issue.Str("details") != "The specified resource version is not correct" || issue.Str("type", "code") != "conflict" ||
			issue.Extension(ExtIssueResource).ExtensionValue().Str("reference") != "http://x/Patient/1" {
			t.Fatalf("%v: issue lost:\n%s", f, out)
		}
	}
	if !strings.HasPrefix(string(oo.XML()), `<OperationOutcome xmlns="http://hl7.org/fhir">`) {
		t.Fatalf("XML root: %s", oo.XML())
	}
	if !strings.HasPrefix(string(oo.JSON()), `{"resourceType":"OperationOutcome"`) {
		t.Fatalf("JSON start: %s", oo.JSON())
	}

	b := NewMessageBundle("urn:uuid:1", "My Domain")
	mh := NewMessageHeader(MessageHeaderFields{
		Identifier: "urn:uuid:2", Timestamp: "2026-11-28T12:00:00+01:00",
		Event:              Coding{System: SystemMessageEvents, Code: "CreateOrUpdateCarePlan", Display: "CreateOrUpdateCarePlan"},
		Source:             Source{Endpoint: "https://kt/FHIR/Koppeltaal/Mailbox"},
		ResponseIdentifier: "req-1", ResponseCode: "ok",
		Data: []string{"http://x/CarePlan/1/_history/1", "http://x/Patient/1/_history/1"},
	})
	b.AddEntry(mh.Resource, "urn:uuid:2", "")
	back, err := ParseBundle(b.XML(), FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	if ok, d := Equal(b, back); !ok {
		t.Fatal(d)
	}
	id, code, ok := back.MessageHeader().Response()
	if d, _ := back.Domain(); d != "My Domain" || !ok || id != "req-1" || code != "ok" || len(back.MessageHeader().Data()) != 2 {
		t.Fatalf("response message lost parts:\n%s", b.XML())
	}
	// Schema order: response comes before source, data last.
	var names []string
	for _, c := range mh.Children {
		names = append(names, c.Name)
	}
	if got := strings.Join(names, ","); got != "identifier,timestamp,event,response,source,data,data" {
		t.Fatalf("MessageHeader order %s", got)
	}
}

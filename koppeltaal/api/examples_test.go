package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// domainFor provisions the domain named in a message, with a 1.3.5 sender and a receiver of every event.
func domainFor(domain string) koppeltaal.Config {
	var evs []string
	for _, e := range koppeltaal.Events {
		if e != "CreateOrUpdateActivityDefinition" {
			evs = append(evs, e)
		}
	}
	return koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: domain}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Sender"}, {ID: "Receiver"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Sender", Domain: domain, Username: "sender", Password: "ps", APIVersion: "1.3.5"},
			{Application: "Receiver", Domain: domain, Username: "receiver", Password: "pr", APIVersion: "1.3.5", Subscriptions: evs},
		},
	}
}

// TestExampleMessages posts every request example of the documentation (XML as
// published, and converted to JSON) to a fresh server and has a subscriber
// that speaks the other format claim it.
func TestExampleMessages(t *testing.T) {
	cases := []struct {
		file   string
		status int
		want   string // for refusals: the OperationOutcome text
	}{
		{"createorupdatecareplan-request-healthonline-step1.xml", 200, ""},
		{"createorupdatecareplan-request-healthonline-step3-update.xml", 200, ""},
		{"createorupdatecareplan-request-soapui-new-careplan.repaired.xml", 200, ""}, // domain name with a space
		{"createorupdatecareplan-request-vzvztest-careteam.xml", 200, ""},
		{"createorupdatepatient-request-testconnector.xml", 200, ""},
		{"updatecareplanactivitystatus-request-engagetest.xml", 200, ""},
		{"updatecareplanactivitystatus-request-healthonline-step2.xml", 200, ""},
		// CreateOrUpdateCarePlanActivityResult carries DiagnosticReport etc., not supported in 1.3.5 (SPEC.md §4.5).
		{"createorupdatecareplanactivityresult-request-healthonline-step4.xml", 400, "is not supported."},
	}
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		for _, c := range cases {
			t.Run(f.String()+"/"+c.file, func(t *testing.T) {
				raw := fixture(t, "examples/"+c.file)
				msg, err := dstu1.ParseBundle(raw, dstu1.FormatXML)
				if err != nil {
					t.Fatalf("example does not parse: %v", err)
				}
				domain, _ := msg.Domain()
				storetest.Run(t, func(t *testing.T, b storetest.Backend) {
					h := newHarness(t, b, domainFor(domain))
					r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "sender", pass: "ps",
						accept: ctypeOf(f), ctype: ctypeOf(f), body: convert(t, raw, f)})
					if r.Status != c.status {
						t.Fatalf("status %d, want %d: %s", r.Status, c.status, r)
					}
					if c.status != http.StatusOK {
						if got := strings.Join(outcome(t, r), "|"); !strings.Contains(got, c.want) {
							t.Fatalf("issues %q, want %q", got, c.want)
						}
						return
					}
					focal := header(t, bundleOf(t, r)).Data()[0]
					// The receiver speaks the other format: XML in, JSON out and the other way round.
					other := dstu1.FormatJSON
					if f == dstu1.FormatJSON {
						other = dstu1.FormatXML
					}
					got := bundleOf(t, claim(h, "receiver", "pr", other))
					if len(got.Entries) != len(msg.Entries) {
						t.Fatalf("claimed message has %d entries, posted %d", len(got.Entries), len(msg.Entries))
					}
					mh := header(t, got)
					if mh.Data()[0] != focal || mh.EventCode() != msg.MessageHeader().EventCode() || mh.Identifier() != msg.MessageHeader().Identifier() {
						t.Fatalf("claimed header: data %v event %s id %s; response focal %s", mh.Data(), mh.EventCode(), mh.Identifier(), focal)
					}
					for i, e := range got.Entries[1:] {
						if e.Resource.Type() != msg.Entries[i+1].Resource.Type() {
							t.Fatalf("entry %d: %s, posted %s", i+1, e.Resource.Type(), msg.Entries[i+1].Resource.Type())
						}
					}
				})
			})
		}
	}
}

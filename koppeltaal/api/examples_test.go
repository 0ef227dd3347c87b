package api_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
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

// TestExampleMessages posts every request example of the documentation (XML as published, and converted to
// JSON) and the Test Game's status update to a fresh server, and has a subscriber that speaks the other format
// claim it: what deployed clients send must stay accepted (the Python connector's recorded requests are
// replayed by TestReplayPythonConnector). On SQLite: what is checked here does not depend on the store.
func TestExampleMessages(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "examples", "*request*"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "testdata", "testgame", "updatecareplanactivitystatus-blackboxstate.json"))
	refused := map[string]string{ // file → text of the 400 it gets
		// Its Questionnaire.authored holds a .NET type name where a dateTime belongs (with a dateTime it is
		// routed: TestCarePlanActivityResultRouted).
		"createorupdatecareplanactivityresult-request-healthonline-step4.xml": "authored",
	}
	if len(files) < 12 {
		t.Fatalf("only %d request examples found", len(files))
	}
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		for _, path := range files {
			file := filepath.Base(path)
			t.Run(f.String()+"/"+file, func(t *testing.T) {
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				// Read as it is (the refused example too) to learn its domain and convert it.
				msg, err := dstu1.Limits{SkipValueChecks: true}.ParseBundle(raw, dstu1.Sniff(raw))
				if err != nil {
					t.Fatalf("example does not parse: %v", err)
				}
				body := koppeltaal.EncodeBundle(msg, f)
				if dstu1.Sniff(raw) == f {
					body = raw // as published
				}
				domain, _ := msg.Domain()
				h := newHarness(t, sqliteOnly(t), domainFor(domain))
				r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "sender", pass: "ps",
					accept: ctypeOf(f), ctype: ctypeOf(f), body: body})
				if want, ok := refused[file]; ok {
					if got := strings.Join(outcome(t, r), "|"); r.Status != http.StatusBadRequest || !strings.Contains(got, want) {
						t.Fatalf("%d %q, want 400 naming %q", r.Status, got, want)
					}
					return
				}
				if r.Status != http.StatusOK {
					t.Fatalf("status %d, want 200: %s", r.Status, r)
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
				requireComplete(t, "claimed example", claim(h, "receiver", "pr", other))
			})
		}
	}
}

package loadtest

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// fixedCarePlan is a CarePlan update message with fixed ids, as a practitioner portal sends it.
func fixedCarePlan() *message {
	base := "https://portal.loadtest-1.loadtest.example/fhir/Koppeltaal/"
	p, cp, pr, org := base+"Patient/7-abc", base+"CarePlan/cp1", base+"Practitioner/loadtest-1", base+"Organization/loadtest-1"
	cts := []string{base + "CareTeam/ct-1", base + "CareTeam/ct-2"}
	return &message{
		domain: "loadtest-1", event: EventCarePlan, identifier: "0d6c4a52-5f0e-4c1b-9a43-2b8f1f0c7e11",
		feedID: "urn:uuid:4b8e6a3c-1d2f-4e5a-8b7c-9d0e1f2a3b4c", mhURL: base + "MessageHeader/0d6c4a52",
		patient: p, source: "lt-practitioner-portal", endpoint: base,
		focal: entry{url: cp, version: "2026-11-28T18:00:00:000.0001", res: carePlanResource(p, pr, cts, []string{"act-1", "act-2", "act-3"}, 2, "")},
		others: []entry{
			{url: p, version: "2026-11-28T18:00:00:000.0001", res: patientResource(7, 2)},
			{url: pr, res: practitionerResource("loadtest-1")},
			{url: org, res: organizationResource("loadtest-1")},
			{url: cts[0], version: "2026-11-28T18:00:00:000.0001", res: careTeamResource("Team 1", p, org, 2)},
			{url: cts[1], res: careTeamResource("Team 2", p, org, 2)},
		},
	}
}

var fixedNow = time.Date(2026, 11, 28, 18, 0, 1, 0, time.UTC)

func TestGoldenMessages(t *testing.T) {
	status := &message{domain: "loadtest-1", event: EventActivityStatus, identifier: "9a1b", feedID: "urn:uuid:1",
		mhURL: "https://lt-game.loadtest.example/fhir/Koppeltaal/MessageHeader/9a1b", patient: "https://portal.loadtest-1.loadtest.example/fhir/Koppeltaal/Patient/7-abc",
		source: "lt-game", endpoint: "https://lt-game.loadtest.example/fhir/Koppeltaal/",
		focal: entry{url: "https://lt-game.loadtest.example/fhir/Koppeltaal/Other/CarePlanActivityStatus:1", res: activityStatusResource("act-2", "Completed", 100)}}
	for name, m := range map[string]*message{"careplan": fixedCarePlan(), "activitystatus": status} {
		for _, format := range []string{"json", "xml"} {
			t.Run(name+"."+format, func(t *testing.T) {
				got := m.render(format, fixedNow)
				if format == "json" {
					var pretty bytes.Buffer
					if err := json.Indent(&pretty, got, "", " "); err != nil {
						t.Fatalf("generated JSON is invalid: %v", err)
					}
					got = pretty.Bytes()
				}
				path := filepath.Join("testdata", "golden", name+"."+format)
				if *update {
					if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(path, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(path)
				if err != nil {
					t.Fatalf("%v (run with -update to create)", err)
				}
				if !bytes.Equal(got, want) {
					t.Fatalf("%s differs from the golden file; run go test -run Golden -update and review the diff", path)
				}
			})
		}
	}
}

// TestMessagesParseWithCodec checks the generated bodies against the project's
// DSTU1 codec: both forms parse, describe the same message, and carry the
// Koppeltaal message shape (domain tag, MessageHeader first, versioned self links).
func TestMessagesParseWithCodec(t *testing.T) {
	m := fixedCarePlan()
	x, err := dstu1.ParseBundle(m.render("xml", fixedNow), dstu1.FormatXML)
	if err != nil {
		t.Fatalf("codec rejects the XML message: %v", err)
	}
	j, err := dstu1.ParseBundle(m.render("json", fixedNow), dstu1.FormatJSON)
	if err != nil {
		t.Fatalf("codec rejects the JSON message: %v", err)
	}
	if ok, diff := dstu1.Equal(x, j); !ok {
		t.Fatalf("XML and JSON forms differ: %s", diff)
	}
	if len(x.Entries) != 7 {
		t.Fatalf("%d entries, want MessageHeader + CarePlan + 5 others", len(x.Entries))
	}
}

func TestParseMailboxReply(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "bv-step2-mailbox-post-response.xml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(b.headers) != 1 {
		t.Fatalf("%d headers", len(b.headers))
	}
	h := b.headers[0]
	if h.respCode != "ok" || h.respID != "299b2931-7e7c-46ab-abe1-1bea66c8d3ec" || len(h.data) != 4 {
		t.Fatalf("reply: %+v", h)
	}
	u, v := splitVersion(h.data[1])
	if u != "http://local.emhp/Patient/9664" || v != "2019-03-19T12:00:02:188.9659" {
		t.Fatalf("splitVersion(%q) = %q, %q", h.data[1], u, v)
	}
}

func TestParseClaimAndAckXML(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "bv-step3-queued-message-getnextnewandclaim.xml"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := parseBundle(raw)
	if err != nil {
		t.Fatal(err)
	}
	h := b.headers[0]
	if h.status != StatusClaimed || h.selfLink != "https://edgekoppeltaal.vhscloud.nl/FHIR/Koppeltaal/MessageHeader/1193807/_history/2019-03-19T12:00:03:688.6699" ||
		h.identifier != "299b2931-7e7c-46ab-abe1-1bea66c8d3ec" || h.event != EventCarePlan || b.entries < 2 {
		t.Fatalf("claimed header: %+v", h)
	}
	ack, err := ackBody(h.raw, StatusFailed, "module crashed", "2026-11-28T18:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	// The acknowledgement is the same MessageHeader with only the status changed.
	res, err := dstu1.ParseBundle([]byte(`<feed xmlns="http://www.w3.org/2005/Atom"><id>urn:uuid:x</id><entry><id>e</id><content type="text/xml">`+string(ack)+`</content></entry></feed>`), dstu1.FormatXML)
	if err != nil {
		t.Fatalf("codec rejects the acknowledgement: %v\n%s", err, ack)
	}
	_ = res
	var got xmlHeader
	if err := xml.Unmarshal(ack, &got); err != nil {
		t.Fatal(err)
	}
	if got.Identifier.Value != h.identifier || len(got.Data) != 1 || got.Event.Code.Value != EventCarePlan {
		t.Fatalf("acknowledgement lost fields: %s", ack)
	}
	s := string(ack)
	if strings.Contains(s, "Claimed") || !strings.Contains(s, `<valueCode value="Failed"/>`) || !strings.Contains(s, "module crashed") || !strings.Contains(s, "MessageHeader#Patient") {
		t.Fatalf("acknowledgement: %s", s)
	}
}

func TestAckJSON(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "python-connector-ack-messageheader.json"))
	if err != nil {
		t.Fatal(err)
	}
	ack, err := ackBody(raw, StatusNew, "", "2026-11-28T18:00:00Z")
	if err != nil {
		t.Fatal(err)
	}
	var h jsonHeader
	if err := json.Unmarshal(ack, &h); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, x := range h.Extension {
		if strings.HasSuffix(x.URL, "#ProcessingStatus") {
			n++
			if x.Extension[0].ValueCode != StatusNew {
				t.Fatalf("status %q", x.Extension[0].ValueCode)
			}
		}
	}
	if n != 1 || h.Identifier != "ee62a8f3-b775-4633-8e22-995f56799956" || len(h.Data) != 1 {
		t.Fatalf("acknowledgement: %s", ack)
	}
}

func TestParseBundleErrors(t *testing.T) {
	for name, body := range map[string]string{
		"empty":       "",
		"text":        "Internal Server Error",
		"outcome":     `{"resourceType":"OperationOutcome"}`,
		"broken":      `{"resourceType":"Bundle","entry":[`,
		"xml outcome": `<OperationOutcome xmlns="http://hl7.org/fhir"/>`,
	} {
		if _, err := parseBundle([]byte(body)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	b, err := parseBundle([]byte(`{"resourceType":"Bundle","totalResults":"0","entry":[]}`))
	if err != nil || len(b.headers) != 0 || b.entries != 0 {
		t.Fatalf("empty claim reply: %+v, %v", b, err)
	}
}

func BenchmarkRenderCarePlan(b *testing.B) {
	m := fixedCarePlan()
	for _, f := range []string{"json", "xml"} {
		b.Run(f, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = m.render(f, fixedNow)
			}
		})
	}
}

func TestJSONString(t *testing.T) {
	for _, s := range []string{"", "plain", `quote " and \ backslash`, "line\nbreak\ttab\r", "ctrl \x01\x1f", "ünïcødé €", "<b>&</b>"} {
		var b bytes.Buffer
		jsonString(&b, s)
		var back string
		if err := json.Unmarshal(b.Bytes(), &back); err != nil || back != s {
			t.Errorf("%q: encoded %s, decoded %q, %v", s, b.String(), back, err)
		}
	}
}

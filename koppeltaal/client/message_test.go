package client_test

import (
	"bytes"
	"flag"
	"os"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

var update = flag.Bool("update", false, "rewrite golden files")

func goldenMessage(t testing.TB) *dstu1.Bundle {
	m := client.Message{Event: "CreateOrUpdateCarePlan", Patient: "epd-1001", Resources: []client.Resource{
		{Type: "CarePlan", ID: "cp-1", Body: map[string]any{"status": "active",
			"patient": map[string]any{"reference": "https://epd.example.nl/fhir/Koppeltaal/Patient/epd-1001"}}},
		{Type: "Patient", ID: "epd-1001", Body: map[string]any{"name": []any{map[string]any{"use": "official", "family": []any{"Berg"}, "given": []any{"Jan"}}}}},
		{Type: "CareTeam", ID: "team-1", Body: map[string]any{"extension": []any{map[string]any{"url": "http://ggz.koppeltaal.nl/fhir/Koppeltaal/CareTeam#Name", "valueString": "Team A"}}}},
	}}
	versions := map[string]string{"https://epd.example.nl/fhir/Koppeltaal/Patient/epd-1001": "2026-11-27T10:00:00:000.0001"}
	b, err := client.BuildMessage(m, client.BuildOptions{Domain: "Demo", ResourceBase: "https://epd.example.nl/fhir/Koppeltaal",
		SourceName: "EPD bridge", MessageID: client.MessageIDFor("route|output|key"), Now: time.Date(2026, 11, 28, 12, 0, 0, 0, time.FixedZone("CET", 3600)),
		Version: func(u string) string { return versions[u] }})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestBuildMessageGolden pins the wire format of a built message (JSON and XML); -update rewrites.
func TestBuildMessageGolden(t *testing.T) {
	b := goldenMessage(t)
	for _, tc := range []struct {
		file string
		body []byte
	}{{"testdata/careplan-message.json", b.JSON()}, {"testdata/careplan-message.xml", b.XML()}} {
		if *update {
			os.WriteFile(tc.file, tc.body, 0o644)
		}
		want, err := os.ReadFile(tc.file)
		if err != nil {
			t.Fatalf("%v (run with -update)", err)
		}
		if !bytes.Equal(tc.body, want) {
			t.Errorf("%s differs from the built message:\n%s", tc.file, tc.body)
		}
	}
	mh := b.MessageHeader()
	if d := mh.Data(); len(d) != 1 || d[0] != "https://epd.example.nl/fhir/Koppeltaal/CarePlan/cp-1" {
		t.Errorf("data: %v", d)
	}
	if p := mh.Patient(); p != "https://epd.example.nl/fhir/Koppeltaal/Patient/epd-1001/_history/2026-11-27T10:00:00:000.0001" {
		t.Errorf("patient extension: %s", p)
	}
	if dom, _ := b.Domain(); dom != "Demo" || !b.IsMessage() {
		t.Errorf("tags: domain %q message %v", dom, b.IsMessage())
	}
	if got := b.Entries[3].ResourceType(); got != "CareTeam" {
		t.Errorf("CareTeam entry type %q", got)
	}
}

func TestBuildMessageRejects(t *testing.T) {
	opts := client.BuildOptions{Domain: "Demo", ResourceBase: "https://x/fhir"}
	for name, m := range map[string]client.Message{
		"no event":        {Resources: []client.Resource{{Type: "Patient", ID: "1"}}},
		"no resources":    {Event: "CreateOrUpdatePatient"},
		"no id":           {Event: "CreateOrUpdatePatient", Resources: []client.Resource{{Type: "Patient"}}},
		"invalid element": {Event: "CreateOrUpdatePatient", Resources: []client.Resource{{Type: "Patient", ID: "1", Body: map[string]any{"name": "not an object"}}}},
	} {
		if _, err := client.BuildMessage(m, opts); err == nil {
			t.Errorf("%s: want error", name)
		}
	}
}

func BenchmarkBuildMessage(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = goldenMessage(b).JSON()
	}
}

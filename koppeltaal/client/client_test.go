package client_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// newServer runs this repository's Koppeltaal server (demo domain) on a SQLite file behind httptest.
func newServer(t *testing.T) string {
	t.Helper()
	return apitest.ServeOnSQLite(t, koppeltaal.DemoConfig())
}

func patientMessage(given string) client.Message {
	return client.Message{Event: "CreateOrUpdatePatient", Patient: "epd-1", Resources: []client.Resource{{
		Type: "Patient", ID: "epd-1",
		Body: map[string]any{"name": []any{map[string]any{"use": "official", "given": []any{given}, "family": []any{"Berg"}}}},
	}}}
}

func TestClientAgainstServer(t *testing.T) {
	for _, format := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
		t.Run(dstu1.MediaType(format), func(t *testing.T) {
			base := newServer(t)
			ctx := context.Background()
			epd := &client.Client{BaseURL: base, Username: koppeltaal.DemoEPDUser, Password: koppeltaal.DemoEPDPassword, Format: format}
			game := &client.Client{BaseURL: base, Username: koppeltaal.DemoGameUser, Password: koppeltaal.DemoGamePassword, Format: format}

			meta, err := epd.Metadata(ctx)
			if err != nil || meta.Type() != "Conformance" {
				t.Fatalf("metadata: %v %v", meta, err)
			}
			versions := map[string]string{}
			opts := client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://epd.example.nl/fhir/Koppeltaal",
				SourceName: "EPD bridge", Version: func(u string) string { return versions[u] }}
			msg, err := client.BuildMessage(patientMessage("Jan"), opts)
			if err != nil {
				t.Fatal(err)
			}
			reply, err := epd.PostMessage(ctx, msg)
			if err != nil {
				t.Fatalf("post: %v", err)
			}
			for u, v := range client.IssuedVersions(reply) {
				versions[u] = v
			}
			patientURL := "https://epd.example.nl/fhir/Koppeltaal/Patient/epd-1"
			if versions[patientURL] == "" {
				t.Fatalf("no version issued for the patient: %v", versions)
			}
			// An update without the version is rejected with 409; with it, accepted.
			stale := client.BuildOptions{Domain: opts.Domain, ResourceBase: opts.ResourceBase}
			msg2, _ := client.BuildMessage(patientMessage("Johannes"), stale)
			if _, err := epd.PostMessage(ctx, msg2); !errors.Is(err, client.ErrVersionConflict) {
				t.Fatalf("update without version: want version conflict, got %v", err)
			}
			msg3, _ := client.BuildMessage(patientMessage("Johannes"), opts)
			if _, err := epd.PostMessage(ctx, msg3); err != nil {
				t.Fatalf("update with version: %v", err)
			}
			// The game is subscribed to CreateOrUpdatePatient: it claims and acknowledges.
			claimed, err := game.Claim(ctx, client.ClaimFilter{})
			if err != nil || claimed == nil {
				t.Fatalf("claim: %v %v", claimed, err)
			}
			if ev := claimed.MessageHeader().EventCode(); ev != "CreateOrUpdatePatient" {
				t.Fatalf("claimed %s", ev)
			}
			if err := game.Ack(ctx, claimed, "Success", ""); err != nil {
				t.Fatalf("ack: %v", err)
			}
			res, err := game.Search(ctx, url.Values{"ProcessingStatus": {"Success"}, "_summary": {"true"}})
			if err != nil || len(res.Entries) == 0 {
				t.Fatalf("search: %v %v", res, err)
			}
			if err := game.Ack(ctx, claimed, "Failed", ""); err == nil {
				t.Fatal("Failed without exception must be refused client-side")
			}
		})
	}
}

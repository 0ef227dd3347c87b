package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// The demo patient's first CarePlan, posted by the demo portal at every start of the demo domain: it
// assigns the demo game and the demo module to koppeltaal.DemoPatient, so the banner's launch and
// `koppelpoort testclient` find something waiting for the patient.
const (
	demoPortalBase  = "https://portal.example/fhir/Koppeltaal"
	demoCarePlanKey = "demo-careplan-1"
)

// demoCarePlan is the same message at every start (fixed identifier, timestamp and content), so a restart
// posts it as a retry: the server answers with its first reply and stores and routes nothing again
// (koppeltaal/README.md decision 18).
func demoCarePlan() (*dstu1.Bundle, error) {
	ext := func(name string, v map[string]any) map[string]any {
		v["url"] = dstu1.KoppeltaalBase + "CarePlan#" + name
		return v
	}
	activity := func(id, definition, name string) map[string]any {
		return map[string]any{"prohibited": false, "extension": []any{
			ext("ActivityIdentifier", map[string]any{"valueString": id}),
			ext("ActivityDefinition", map[string]any{"valueString": definition}),
			ext("ActivityDescription", map[string]any{"valueString": name}),
			ext("StartDate", map[string]any{"valueDateTime": "2026-01-01T09:00:00+01:00"}),
			ext("ActivityStatus", map[string]any{"valueCoding": map[string]any{"system": dstu1.KoppeltaalBase + "CarePlanActivityStatus", "code": "Available", "display": "Available"}}),
		}}
	}
	practitioner := demoPortalBase + "/Practitioner/1"
	return client.BuildMessage(client.Message{Event: "CreateOrUpdateCarePlan", Patient: koppeltaal.DemoPatient, Resources: []client.Resource{
		{Type: "CarePlan", ID: "1", Body: map[string]any{
			"patient": map[string]any{"reference": koppeltaal.DemoPatient},
			"status":  "active",
			"participant": []any{map[string]any{"member": map[string]any{"reference": practitioner},
				"role": map[string]any{"coding": []any{map[string]any{"system": dstu1.KoppeltaalBase + "CarePlanParticipantRole", "code": "Caregiver", "display": "Caregiver"}}}}},
			"activity": []any{
				activity("demo-activity-game", koppeltaal.DemoActivity, "Play the demo game"),
				activity("demo-activity-module", koppeltaal.DemoModuleActivity, "Follow the demo module"),
			},
		}},
		{Type: "Patient", ID: "1", Body: map[string]any{"name": []any{map[string]any{"use": "official", "given": []any{"Demo"}, "family": []any{"Patiënt"}}}}},
		{Type: "Practitioner", ID: "1", Body: map[string]any{"name": map[string]any{"given": []any{"Demo"}, "family": []any{"Behandelaar"}}}},
	}}, client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: demoPortalBase, SourceName: "Demo portal",
		SourceSoftware: "Koppelpoort demo", SourceVersion: "1", MessageID: client.MessageIDFor(demoCarePlanKey),
		Now: time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)})
}

// seedDemoCarePlan posts demoCarePlan as the demo portal through the server core (no HTTP loopback); base
// is the FHIR base. A failure is logged, not fatal: the demo works without it.
func seedDemoCarePlan(ctx context.Context, svc *koppeltaal.Service, base string, logger *slog.Logger) {
	err := func() error {
		msg, err := demoCarePlan()
		if err != nil {
			return err
		}
		portal, err := svc.Authenticate(ctx, koppeltaal.DemoPortalUser, koppeltaal.DemoPortalPassword)
		if err != nil {
			return fmt.Errorf("authenticate the demo portal: %w", err)
		}
		_, err = svc.Post(ctx, portal, msg.JSON(), dstu1.FormatJSON, base)
		return err
	}()
	var ke *koppeltaal.Error
	switch {
	case err == nil:
		logger.Info("demo: the CarePlan of the demo patient is posted (or was already)", "patient", koppeltaal.DemoPatient)
	case errors.As(err, &ke) && ke.Kind == koppeltaal.Conflict:
		// The retry receipt is gone (retention) and the CarePlan exists: nothing to do.
		logger.Info("demo: the CarePlan of the demo patient exists", "patient", koppeltaal.DemoPatient)
	default:
		logger.Warn("demo: could not post the demo patient's CarePlan", "err", err)
	}
}

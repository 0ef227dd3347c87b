package testclient_test

import (
	"context"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/koppeltaal/testclient"
)

// The launches (web, mobile) run against the whole server in cmd/koppelpoort (TestRegressAgainstServe:
// module/* cases); this test runs the module against the Koppeltaal core over real HTTP and checks what it
// did through the portal's and its own mailbox: its own activity reported and acknowledged Success, another
// definition's left alone, --fail-with acknowledged Failed.
func TestModuleWorksThroughItsMailbox(t *testing.T) {
	for _, f := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
		t.Run(f.String(), func(t *testing.T) {
			base := apitest.ServeOnSQLite(t, koppeltaal.DemoConfig())
			portal := &client.Client{BaseURL: base, Username: koppeltaal.DemoPortalUser, Password: koppeltaal.DemoPortalPassword, Format: f}
			ctx := context.Background()
			post := func(patient, definition string) {
				t.Helper()
				msg, err := client.BuildMessage(client.Message{Event: "CreateOrUpdateCarePlan", Patient: patient, Resources: []client.Resource{
					{Type: "CarePlan", ID: definition, Body: map[string]any{"status": "active", "patient": map[string]any{"reference": patient},
						"activity": []any{map[string]any{"extension": []any{
							map[string]any{"url": dstu1.KoppeltaalBase + "CarePlan#ActivityIdentifier", "valueString": "act-" + definition},
							map[string]any{"url": dstu1.KoppeltaalBase + "CarePlan#ActivityDefinition", "valueString": definition},
						}}}}}}}, client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://portal.example/fhir/Koppeltaal"})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := portal.PostMessage(ctx, msg); err != nil {
					t.Fatal(err)
				}
			}
			const mine, theirs = "https://portal.example/fhir/Koppeltaal/Patient/mine", "https://portal.example/fhir/Koppeltaal/Patient/theirs"
			post(mine, koppeltaal.DemoModuleActivity)
			post(theirs, "another-activity")

			m := newModule(t, base, f, "")
			done := watchOnce(t, m, 2)
			if done != 2 {
				t.Fatalf("the module handled %d messages, want 2", done)
			}
			got, err := portal.Claim(ctx, client.ClaimFilter{Patient: mine})
			if err != nil || got == nil {
				t.Fatalf("the portal's status report: %v %v", got, err)
			}
			if st := statusCode(got); st != "Completed" {
				t.Fatalf("the portal claims status %q, want Completed (InProgress was replaced)", st)
			}
			if other, _ := portal.Claim(ctx, client.ClaimFilter{Patient: theirs}); other != nil {
				t.Fatal("the module reported on an activity of another definition")
			}
			states := moduleStates(t, base, f)
			if states[mine] != "Success" || states[theirs] != "Success" {
				t.Fatalf("the module's acknowledgements: %v", states)
			}

			post(mine, koppeltaal.DemoModuleActivity+"-2")
			if watchOnce(t, newModule(t, base, f, "cannot play this"), 1) != 1 {
				t.Fatal("the failing module handled nothing")
			}
			if ps := lastStatus(t, base, f, mine); ps.Status != "Failed" || ps.Exception != "cannot play this" {
				t.Fatalf("with FailWith: %+v", ps)
			}
		})
	}
}

func newModule(t *testing.T, base string, f dstu1.Format, failWith string) *testclient.Module {
	t.Helper()
	m, err := testclient.New(testclient.Config{Server: base, ClientID: koppeltaal.DemoModuleClient, RedirectURI: koppeltaal.DemoModuleRoot + "/callback",
		Username: koppeltaal.DemoModuleUser, Password: koppeltaal.DemoModulePassword, Activity: koppeltaal.DemoModuleActivity, Format: f, FailWith: failWith})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// watchOnce lets the module work through its mailbox until it has handled want messages (or a minute
// passed: a busy CI machine can take seconds per message) and returns how many it handled.
func watchOnce(t *testing.T, m *testclient.Module, want int) int {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	watched := make(chan error, 1)
	go func() { watched <- m.Watch(ctx, 50*time.Millisecond) }()
	for deadline := time.Now().Add(time.Minute); len(m.Handled()) < want && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-watched; err != nil {
		t.Fatal(err)
	}
	return len(m.Handled())
}

func moduleAPI(base string, f dstu1.Format) *client.Client {
	return &client.Client{BaseURL: base, Username: koppeltaal.DemoModuleUser, Password: koppeltaal.DemoModulePassword, Format: f}
}

// moduleStates maps patient → the processing status of the module's latest CarePlan message about them.
func moduleStates(t *testing.T, base string, f dstu1.Format) map[string]string {
	t.Helper()
	b, err := moduleAPI(base, f).Search(context.Background(), map[string][]string{"_summary": {"true"}, "event": {"CreateOrUpdateCarePlan"}})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range b.Entries {
		mh := dstu1.AsMessageHeader(e.Resource)
		ps, _ := mh.ProcessingStatus()
		p, _ := dstu1.SplitHistory(mh.Patient())
		out[p] = ps.Status
	}
	return out
}

func lastStatus(t *testing.T, base string, f dstu1.Format, patient string) dstu1.ProcessingStatus {
	t.Helper()
	b, err := moduleAPI(base, f).Search(context.Background(), map[string][]string{"_summary": {"true"}, "Patient": {patient}})
	if err != nil || len(b.Entries) == 0 {
		t.Fatalf("search: %v", err)
	}
	ps, _ := dstu1.AsMessageHeader(b.Entries[len(b.Entries)-1].Resource).ProcessingStatus()
	return ps
}

func statusCode(b *dstu1.Bundle) string {
	for _, e := range b.Entries {
		if e.ResourceType() == dstu1.KindCarePlanActivityStatus {
			return e.Resource.Extension(dstu1.KoppeltaalBase + "CarePlanActivityStatus#ActivityStatus").ExtensionValue().Str("code")
		}
	}
	return ""
}

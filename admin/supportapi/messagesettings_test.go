package supportapi_test

import (
	"context"
	"net/url"
	"testing"

	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestMessageSettingsThroughAPI: the file's message_settings of domains and applications are the
// MessageSettings attribute of Domain and Application, checked as the file's are, versioned, and in
// effect from the next acknowledgement: a domain's RetainOnSuccessfulRetrieval keeps a body the
// last Success would otherwise remove.
func TestMessageSettingsThroughAPI(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		keep := []map[string]any{{"Event": "CreateOrUpdatePatient", "RetainOnSuccessfulRetrieval": true}}
		dom := e.do("sys", "POST", "/Domain", doc("Domain", "", map[string]any{"Name": "C", "DTAPPhase": "test", "MessageSettings": keep}, "")).
			mustStatus(t, 201, "create a domain with message settings").data()
		id := dom["id"].(string)
		if ms := attr(dom, "MessageSettings").([]any); len(ms) != 1 || ms[0].(map[string]any)["RetainOnSuccessfulRetrieval"] != true {
			t.Fatalf("MessageSettings: %v", ms)
		}
		for _, bad := range [][]map[string]any{{{"Event": "NoSuchEvent"}}, {{"Event": "CreateOrUpdatePatient", "Colour": "blue"}},
			{{"Event": "CreateOrUpdatePatient", "MaximumMessageAgeDays": 999}}, {{"Event": "CreateOrUpdatePatient"}, {"Event": "CreateOrUpdatePatient"}}} {
			e.do("sys", "PATCH", "/Domain/"+id, doc("Domain", id, map[string]any{"MessageSettings": bad}, version(dom))).mustStatus(t, 400, "bad settings")
		}
		for _, in := range []map[string]any{{"Username": "epd@c", "Application": "EPD", "Domain": "C", "Password": "epd password c"},
			{"Username": "portal@c", "Application": "Portal", "Domain": "C", "Password": "portal password c", "Subscriptions": []string{"CreateOrUpdatePatient"}}} {
			e.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", in, "")).mustStatus(t, 201, "instance")
		}
		epd, portal := e.kt("epd@c", "epd password c"), e.kt("portal@c", "portal password c")
		// bodyKept posts a patient, acknowledges it with Success and reports whether the body is still there.
		bodyKept := func(patient string) bool {
			t.Helper()
			if err := e.post(epd, "C", patientMsg(patient)); err != nil {
				t.Fatal(err)
			}
			m, err := portal.Claim(context.Background(), client.ClaimFilter{})
			if err != nil || m == nil {
				t.Fatalf("claim: %v", err)
			}
			if err := portal.Ack(context.Background(), m, "Success", ""); err != nil {
				t.Fatal(err)
			}
			list := e.do("sys", "GET", "/Message?filter[Patient]="+url.QueryEscape(client.PatientURL("https://sender.example/fhir/Koppeltaal", patient)), nil).
				mustStatus(t, 200, "find").list()
			one := e.do("sys", "GET", "/Message/"+list[0]["id"].(string), nil).mustStatus(t, 200, "read").data()
			x, _ := attr(one, "BodyXML").(string)
			return x != ""
		}
		if !bodyKept("c1") {
			t.Fatal("RetainOnSuccessfulRetrieval set through the API: the body went with the Success")
		}
		cur := e.do("sys", "GET", "/Domain/"+id, nil).mustStatus(t, 200, "read").data()
		patched := e.do("sys", "PATCH", "/Domain/"+id, doc("Domain", id, map[string]any{"MessageSettings": []any{}}, version(cur))).
			mustStatus(t, 200, "clear the settings").data()
		if version(patched) == version(cur) {
			t.Fatalf("a change of the settings alone kept version %s", version(cur))
		}
		e.do("sys", "PATCH", "/Domain/"+id, doc("Domain", id, map[string]any{"MessageSettings": keep}, version(cur))).mustStatus(t, 409, "stale version")
		if bodyKept("c2") {
			t.Fatal("settings cleared through the API: the body stayed after the Success")
		}

		app := e.do("sys", "POST", "/Application", doc("Application", "", map[string]any{"Identifier": "Keeper",
			"MessageSettings": []map[string]any{{"Event": "CreateOrUpdateCarePlan", "RetainmentRequired": true}}}, "")).mustStatus(t, 201, "application").data()
		if ms := attr(app, "MessageSettings").([]any); len(ms) != 1 || ms[0].(map[string]any)["RetainmentRequired"] != true {
			t.Fatalf("application MessageSettings: %v", ms)
		}
		appID := app["id"].(string)
		e.do("sys", "PATCH", "/Application/"+appID, doc("Application", appID, map[string]any{"MessageSettings": []map[string]any{{"Event": "Nope"}}}, version(app))).
			mustStatus(t, 400, "bad application setting")
		p := e.do("sys", "PATCH", "/Application/"+appID, doc("Application", appID, map[string]any{"MessageSettings": []any{}}, version(app))).
			mustStatus(t, 200, "clear application settings").data()
		if len(attr(p, "MessageSettings").([]any)) != 0 || version(p) == version(app) {
			t.Fatalf("cleared: %v", p)
		}
		e.do("dora", "PATCH", "/Domain/"+id, doc("Domain", id, map[string]any{"MessageSettings": keep}, version(patched))).mustStatus(t, 404, "another domain's administrator")
	})
}

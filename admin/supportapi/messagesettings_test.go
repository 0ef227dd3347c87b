package supportapi_test

import (
	"context"
	"net/url"
	"testing"
	"time"

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
		// Each problem points at the member it is about, so the console shows it next to its field.
		for _, c := range []struct {
			bad     []map[string]any
			pointer string
		}{
			{[]map[string]any{{"Event": "NoSuchEvent"}}, "/data/attributes/MessageSettings/0/Event"},
			{[]map[string]any{{"Event": "CreateOrUpdatePatient", "Colour": "blue"}}, "/data/attributes/MessageSettings"},
			{[]map[string]any{{"Event": "CreateOrUpdatePatient", "MaximumMessageAgeDays": 999}}, "/data/attributes/MessageSettings/0/MaximumMessageAgeDays"},
			{[]map[string]any{{"Event": "CreateOrUpdatePatient"}, {"Event": "CreateOrUpdatePatient"}}, "/data/attributes/MessageSettings/1/Event"},
		} {
			r := e.do("sys", "PATCH", "/Domain/"+id, doc("Domain", id, map[string]any{"MessageSettings": c.bad}, version(dom))).mustStatus(t, 400, "bad settings")
			errs, _ := r.doc["errors"].([]any)
			if len(errs) != 1 || errs[0].(map[string]any)["source"].(map[string]any)["pointer"] != c.pointer {
				t.Fatalf("settings %v: errors %s, want one at %s", c.bad, r.raw, c.pointer)
			}
		}
		for _, in := range []map[string]any{{"Username": "epd@c", "Application": "EPD", "Domain": "C", "Password": "epd password c"},
			{"Username": "portal@c", "Application": "Portal", "Domain": "C", "Password": "portal password c", "Subscriptions": []string{"CreateOrUpdatePatient"}}} {
			e.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", in, "")).mustStatus(t, 201, "instance")
		}
		epd, portal := e.kt("epd@c", "epd password c"), e.kt("portal@c", "portal password c")
		bodyKept := func(patient string) bool { t.Helper(); return e.bodyKeptAfterSuccess(epd, portal, "C", patient) }
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

// bodyKeptAfterSuccess posts a patient as sender in domain, has receiver claim it and acknowledge it
// with Success, and reports whether the body is still there (read through the Support API).
func (e *env) bodyKeptAfterSuccess(sender, receiver *client.Client, domain, patient string) bool {
	t := e.t
	t.Helper()
	if err := e.post(sender, domain, patientMsg(patient)); err != nil {
		t.Fatal(err)
	}
	m, err := receiver.Claim(context.Background(), client.ClaimFilter{})
	if err != nil || m == nil {
		t.Fatalf("claim: %v", err)
	}
	if err := receiver.Ack(context.Background(), m, "Success", ""); err != nil {
		t.Fatal(err)
	}
	list := e.do("sys", "GET", "/Message?filter[Patient]="+url.QueryEscape(client.PatientURL("https://sender.example/fhir/Koppeltaal", patient)), nil).
		mustStatus(t, 200, "find").list()
	if len(list) != 1 {
		t.Fatalf("messages of patient %s: %d", patient, len(list))
	}
	one := e.do("sys", "GET", "/Message/"+list[0]["id"].(string), nil).mustStatus(t, 200, "read").data()
	x, _ := attr(one, "BodyXML").(string)
	return x != ""
}

// TestMessageSettingsTwoServersSharePostgres: a domain's message setting changed through one server
// is applied by a second server (its own store, the same PostgreSQL database) from its next
// acknowledgement on, without a restart: RetainOnSuccessfulRetrieval set on one keeps the body of a
// message acknowledged on two, and cleared on one lets the next Success on two remove it.
func TestMessageSettingsTwoServersSharePostgres(t *testing.T) {
	b := storetest.NewPostgres(t)
	one := newEnv(t, b.Open(t), ktConfig())
	two := newEnv(t, b.Open(t), ktConfig())
	dom := one.do("sys", "POST", "/Domain", doc("Domain", "", map[string]any{"Name": "Shared"}, "")).mustStatus(t, 201, "domain on one").data()
	id := dom["id"].(string)
	for _, in := range []map[string]any{{"Username": "epd@shared", "Application": "EPD", "Domain": "Shared", "Password": "epd password shared"},
		{"Username": "portal@shared", "Application": "Portal", "Domain": "Shared", "Password": "portal password shared", "Subscriptions": []string{"CreateOrUpdatePatient"}}} {
		one.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", in, "")).mustStatus(t, 201, "instance on one")
	}
	epd, portal := two.kt("epd@shared", "epd password shared"), two.kt("portal@shared", "portal password shared")
	// Warm server two with the domain as it is (no settings): the body goes with the Success.
	deadline := time.Now().Add(3 * time.Second)
	for two.post(epd, "Shared", patientMsg("warm")) != nil { // the new instance, within the caches' bound
		if time.Now().After(deadline) {
			t.Fatal("server two does not know the instance created on one after 3 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if m, err := portal.Claim(context.Background(), client.ClaimFilter{}); err != nil || m == nil {
		t.Fatalf("claim the warm-up: %v", err)
	} else if err := portal.Ack(context.Background(), m, "Success", ""); err != nil {
		t.Fatal(err)
	}
	if two.bodyKeptAfterSuccess(epd, portal, "Shared", "s1") {
		t.Fatal("without message settings the body stayed after the Success")
	}
	keep := []map[string]any{{"Event": "CreateOrUpdatePatient", "RetainOnSuccessfulRetrieval": true}}
	cur := one.do("sys", "PATCH", "/Domain/"+id, doc("Domain", id, map[string]any{"MessageSettings": keep}, version(dom))).mustStatus(t, 200, "set on one").data()
	if !two.bodyKeptAfterSuccess(epd, portal, "Shared", "s2") {
		t.Fatal("RetainOnSuccessfulRetrieval set on server one: server two removed the body at the Success")
	}
	one.do("sys", "PATCH", "/Domain/"+id, doc("Domain", id, map[string]any{"MessageSettings": []any{}}, version(cur))).mustStatus(t, 200, "clear on one")
	if two.bodyKeptAfterSuccess(epd, portal, "Shared", "s3") {
		t.Fatal("settings cleared on server one: server two kept the body after the Success")
	}
}

package supportapi_test

import (
	"io"
	"net/http"
	"net/url"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"testing"

	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestActivityDefinitions: a definition created and deactivated through the
// Support API is what the FHIR ActivityDefinition search returns next.
func TestActivityDefinitions(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		search := func() map[string]bool {
			req, _ := http.NewRequest("GET", e.ts.URL+"/FHIR/Koppeltaal/Other/_search?"+url.Values{"code": {"ActivityDefinition"}}.Encode(), nil)
			req.SetBasicAuth("portal@a", "pa")
			req.Header.Set("Accept", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			bundle, err := dstu1.ParseBundle(body, dstu1.FormatJSON)
			if err != nil {
				t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
			}
			out := map[string]bool{}
			for _, en := range bundle.Entries {
				out[en.Resource.Extension("http://ggz.koppeltaal.nl/fhir/Koppeltaal/ActivityDefinition#ActivityDefinitionIdentifier").ExtensionValue().Str()] =
					en.Resource.Extension("http://ggz.koppeltaal.nl/fhir/Koppeltaal/ActivityDefinition#IsActive").ExtensionValue().Str() == "true"
			}
			return out
		}
		r := e.do("sys", "POST", "/ActivityDefinition", doc("ActivityDefinition", "", map[string]any{"Identifier": "quiz-1", "Domain": "A",
			"Application": "Game", "Name": "Quiz", "ActivityType": "Questionnaire"}, "")).mustStatus(t, 201, "create")
		if active, ok := search()["quiz-1"]; !ok || !active {
			t.Fatalf("the FHIR search does not return the new definition: %v", search())
		}
		id := r.data()["id"].(string)
		e.do("sys", "POST", "/ActivityDefinition", doc("ActivityDefinition", "", map[string]any{"Identifier": "quiz-1", "Domain": "A",
			"Application": "Game", "Name": "Again", "ActivityType": "Game"}, "")).mustStatus(t, 409, "identifier taken")
		e.do("sys", "POST", "/ActivityDefinition", doc("ActivityDefinition", "", map[string]any{"Identifier": "x", "Domain": "A",
			"Application": "Game", "Name": "X", "ActivityType": "Wizardry"}, "")).mustStatus(t, 400, "bad kind")
		e.do("dora", "POST", "/ActivityDefinition", doc("ActivityDefinition", "", map[string]any{"Identifier": "q", "Domain": "B",
			"Application": "Game", "Name": "Q", "ActivityType": "Game"}, "")).mustStatus(t, 400, "domain admin of A in B")
		e.do("sys", "PATCH", "/ActivityDefinition/"+id, doc("ActivityDefinition", id, map[string]any{"IsActive": false}, "stale")).
			mustStatus(t, 409, "stale version")
		p := e.do("sys", "PATCH", "/ActivityDefinition/"+id, doc("ActivityDefinition", id, map[string]any{"IsActive": false}, version(r.data()))).
			mustStatus(t, 200, "deactivate")
		if attr(p.data(), "IsActive") != false || attr(p.data(), "Name") != "Quiz" {
			t.Fatalf("after deactivation: %s", p.raw)
		}
		if active := search()["quiz-1"]; active {
			t.Fatal("the FHIR search still says the definition is active")
		}
		// Sub-activities (the file's sub_activities): a PATCH replaces the list, published like every change.
		for _, bad := range []any{[]map[string]any{{"Identifier": "q-1"}}, []map[string]any{{"Identifier": "q-1", "Name": "Part 1", "Colour": "red"}}} {
			e.do("sys", "PATCH", "/ActivityDefinition/"+id, doc("ActivityDefinition", id, map[string]any{"SubActivities": bad}, version(p.data()))).
				mustStatus(t, 400, "bad sub-activities")
		}
		subs := []map[string]any{{"Identifier": "q-1", "Name": "Part 1"}, {"Identifier": "q-2", "Name": "Part 2", "Description": "the rest", "IsActive": false}}
		p = e.do("sys", "PATCH", "/ActivityDefinition/"+id, doc("ActivityDefinition", id, map[string]any{"SubActivities": subs}, version(p.data()))).
			mustStatus(t, 200, "sub-activities")
		got, _ := attr(p.data(), "SubActivities").([]any)
		if len(got) != 2 || got[0].(map[string]any)["IsActive"] != true || got[1].(map[string]any)["IsActive"] != false ||
			got[1].(map[string]any)["Description"] != "the rest" {
			t.Fatalf("SubActivities after the PATCH: %v", got)
		}
		if sub := searchSubActivities(t, e); sub["q-2"] != "Part 2" || sub["q-1"] != "Part 1" {
			t.Fatalf("the FHIR search shows the sub-activities %v", sub)
		}
		p = e.do("sys", "PATCH", "/ActivityDefinition/"+id, doc("ActivityDefinition", id, map[string]any{"Name": "Quiz 2"}, version(p.data()))).
			mustStatus(t, 200, "rename")
		if sub := searchSubActivities(t, e); len(sub) != 2 {
			t.Fatalf("a PATCH of the name lost the sub-activities: %v", sub)
		}
		e.do("sys", "DELETE", "/ActivityDefinition/"+id, nil).mustStatus(t, 405, "DELETE")
		e.do("dora", "GET", "/ActivityDefinition/"+id, nil).mustStatus(t, 200, "domain admin of A reads it")
	})
}

// searchSubActivities reads the sub-activities (identifier → name) of the ActivityDefinitions the FHIR search returns to portal@a.
func searchSubActivities(t *testing.T, e *env) map[string]string {
	t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+"/FHIR/Koppeltaal/Other/_search?"+url.Values{"code": {"ActivityDefinition"}}.Encode(), nil)
	req.SetBasicAuth("portal@a", "pa")
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	bundle, err := dstu1.ParseBundle(body, dstu1.FormatJSON)
	if err != nil {
		t.Fatalf("%d %s: %v", resp.StatusCode, body, err)
	}
	const base = "http://ggz.koppeltaal.nl/fhir/Koppeltaal/ActivityDefinition#"
	out := map[string]string{}
	for _, en := range bundle.Entries {
		for _, sub := range en.Resource.All("extension") {
			if sub.URL == base+"SubActivity" {
				out[sub.Extension(base+"SubActivityIdentifier").ExtensionValue().Str()] = sub.Extension(base + "SubActivityName").ExtensionValue().Str()
			}
		}
	}
	return out
}

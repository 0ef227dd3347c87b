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
		e.do("sys", "DELETE", "/ActivityDefinition/"+id, nil).mustStatus(t, 405, "DELETE")
		e.do("dora", "GET", "/ActivityDefinition/"+id, nil).mustStatus(t, 200, "domain admin of A reads it")
	})
}

package supportapi_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

func carePlanMsg(patient string) client.Message {
	return client.Message{Event: "CreateOrUpdateCarePlan", Patient: patient, Resources: []client.Resource{
		{Type: "CarePlan", ID: "cp-" + patient, Body: map[string]any{"status": "active",
			"patient": map[string]any{"reference": "https://sender.example/fhir/Koppeltaal/Patient/" + patient}}},
		{Type: "Patient", ID: patient, Body: map[string]any{"name": []any{map[string]any{"text": "P"}}}}}}
}

// TestMessageBrowser: find a patient's messages, read one with its body in
// both formats and each recipient's status history; a domain administrator
// never sees another domain's messages, an application administrator only
// those its instances sent or received.
func TestMessageBrowser(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		cfg := ktConfig()
		// Keep the body of the message its only recipient acknowledges below: by
		// default it goes with the last Success (SPEC.md §10.2).
		cfg.Domains[0].MessageSettings = []koppeltaal.DomainMessageSettingConfig{{Event: "CreateOrUpdatePatient", RetainOnSuccessfulRetrieval: true}}
		e := newEnv(t, b.Open(t), cfg)
		epd := e.kt("epd@a", "ea")
		for _, p := range []string{"p1", "p2", "p3"} {
			if err := e.post(epd, "A", patientMsg(p)); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.post(epd, "A", carePlanMsg("p2")); err != nil {
			t.Fatal(err)
		}
		if err := e.post(e.kt("portal@b", "pb"), "B", patientMsg("p2")); err != nil {
			t.Fatal(err)
		}
		portal := e.kt("portal@a", "pa")
		claimed, err := portal.Claim(context.Background(), client.ClaimFilter{})
		if err != nil || claimed == nil {
			t.Fatalf("claim: %v", err)
		}
		if err := portal.Ack(context.Background(), claimed, "Success", ""); err != nil {
			t.Fatal(err)
		}

		p2 := client.PatientURL("https://sender.example/fhir/Koppeltaal", "p2")
		list := func(who, q string) []map[string]any {
			return e.do(who, "GET", "/Message?"+q, nil).mustStatus(t, 200, who+" "+q).list()
		}
		q := "filter[Patient]=" + url.QueryEscape(p2)
		if got := len(list("sys", q)); got != 3 {
			t.Fatalf("system administrator: %d messages of p2, want 3 (two in A, one in B)", got)
		}
		if got := len(list("dora", q)); got != 2 {
			t.Fatalf("administrator of A: %d messages of p2, want 2", got)
		}
		if got := list("dora", q+"&filter[Event]=CreateOrUpdateCarePlan"); len(got) != 1 || attr(got[0], "Sender") != "epd@a" {
			t.Fatalf("administrator of A, p2 CarePlans: %v", got)
		}
		if got := len(list("dora", "filter[Domain]=B")); got != 0 {
			t.Fatalf("administrator of A filtering on domain B: %d messages", got)
		}
		if got := len(list("dora", "filter[Sender]=portal@b")); got != 0 {
			t.Fatalf("administrator of A filtering on a sender of B: %d messages", got)
		}
		// appy administers Game: game@a gets CarePlans only.
		if got := list("appy", "page[size]=50"); len(got) != 1 || attr(got[0], "Event") != "CreateOrUpdateCarePlan" {
			t.Fatalf("application administrator sees %v, want only the CarePlan its instance received", got)
		}
		all := list("sys", "filter[Domain]=A&page[size]=2")
		if len(all) != 2 {
			t.Fatalf("page of 2: %d", len(all))
		}
		r := e.do("sys", "GET", "/Message?filter[Domain]=A&page[size]=2", nil)
		if next, _ := r.doc["links"].(map[string]any)["next"].(string); !strings.Contains(next, "page[number]=2") {
			t.Fatalf("next link: %s", r.raw)
		}
		older := list("sys", "filter[Domain]=A&filter[id][lt]="+all[1]["id"].(string))
		if len(older) != 2 {
			t.Fatalf("older than the second: %d, want 2", len(older))
		}
		e.do("sys", "GET", "/Message?filter[Body]=x", nil).mustStatus(t, 400, "unknown filter")

		// One message: body in both formats, recipients with their history.
		first := list("sys", "filter[Domain]=A&filter[Event]=CreateOrUpdatePatient&filter[Patient]="+
			url.QueryEscape(client.PatientURL("https://sender.example/fhir/Koppeltaal", "p1")))
		if len(first) != 1 {
			t.Fatalf("p1: %v", first)
		}
		id := first[0]["id"].(string)
		m := e.do("sys", "GET", "/Message/"+id, nil).mustStatus(t, 200, "read message").data()
		if x, _ := attr(m, "BodyXML").(string); !strings.Contains(x, "<feed") {
			t.Fatalf("BodyXML: %q", x)
		}
		if j, _ := attr(m, "BodyJSON").(string); !strings.Contains(j, `"resourceType":"Bundle"`) {
			t.Fatalf("BodyJSON: %q", j)
		}
		rc := attr(m, "Recipients").([]any)
		if len(rc) != 1 {
			t.Fatalf("recipients: %v", rc)
		}
		r0 := rc[0].(map[string]any)
		var hist []string
		for _, h := range r0["History"].([]any) {
			hist = append(hist, h.(map[string]any)["Status"].(string))
		}
		if r0["Instance"] != "portal@a" || strings.Join(hist, ",") != "New,Claimed,Success" {
			t.Fatalf("recipient: %v", r0)
		}
		e.do("appy", "GET", "/Message/"+id, nil).mustStatus(t, 404, "application administrator reads a message of others")
		e.do("dora", "GET", "/Message/"+list("sys", "filter[Domain]=B")[0]["id"].(string), nil).mustStatus(t, 404, "domain admin reads another domain's message")
		e.do("", "GET", "/Message", nil).mustStatus(t, 401, "no credentials")
	})
}

package supportapi_test

import (
	"context"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestAdminAuditTrail: administrative changes and the administrators' reads of patient data through the
// Support API are in the audit trail (package audit), with the administrator, the object and the patient.
func TestAdminAuditTrail(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), oauthConfig())
		patient := "https://sender.example/fhir/Koppeltaal/Patient/audited"
		if err := e.post(e.kt("epd@a", "ea"), "A", patientMsg("audited")); err != nil {
			t.Fatal(err)
		}
		e.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{"Username": "audit@a",
			"Application": "EPD", "Domain": "B"}, "")).mustStatus(t, 201, "create an instance")
		list := e.do("dora", "GET", "/Message?filter[Patient]="+patient, nil).mustStatus(t, 200, "search").list()
		if len(list) != 1 {
			t.Fatalf("search: %d messages", len(list))
		}
		e.do("dora", "GET", "/Message/"+list[0]["id"].(string), nil).mustStatus(t, 200, "read")
		e.grant()
		g := e.do("appy", "GET", "/Authorization", nil).mustStatus(t, 200, "grants").list()
		e.do("appy", "PATCH", "/Authorization/"+g[0]["id"].(string), doc("Authorization", g[0]["id"].(string),
			map[string]any{"GrantStatus": "Revoked"}, version(g[0]))).mustStatus(t, 200, "revoke")
		if err := e.trail.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		has := func(actor, detailPrefix, object, patient string) {
			t.Helper()
			evs, err := audit.Query(context.Background(), e.st, audit.Filter{Actor: actor, Action: audit.ActionAdmin})
			if err != nil {
				t.Fatal(err)
			}
			for _, ev := range evs {
				if strings.HasPrefix(ev.Detail, detailPrefix) && strings.HasPrefix(ev.Object, object) && ev.Patient == patient &&
					ev.Actor.Kind == audit.KindAdmin {
					return
				}
			}
			t.Fatalf("no %s %s %q by %s in the trail: %+v", detailPrefix, object, patient, actor, evs)
		}
		has("sys", "create", "ApplicationInstance/", "")
		has("dora", "search", "Message", patient)
		has("dora", "read", "Message/"+list[0]["id"].(string), patient)
		has("appy", "search", "Authorization", "https://sender.example/fhir/Koppeltaal/Patient/p1")
		has("appy", "revoke", "Authorization/"+g[0]["id"].(string), "https://sender.example/fhir/Koppeltaal/Patient/p1")
	})
}

package activity_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// isolationConfig: Module has an instance in D1 only, Portal in both domains,
// Other in D2 only.
func isolationConfig() koppeltaal.Config {
	ad := []string{"CreateOrUpdateActivityDefinition"}
	return koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: "D1"}, {Name: "D2"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}, {ID: "Module"}, {ID: "Other"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: "D1", Username: "portal@d1", Password: "p1", Subscriptions: ad},
			{Application: "Module", Domain: "D1", Username: "module@d1", Password: "m1", Subscriptions: ad},
			{Application: "Portal", Domain: "D2", Username: "portal@d2", Password: "p2", Subscriptions: ad},
			{Application: "Other", Domain: "D2", Username: "other@d2", Password: "o2", Subscriptions: ad},
		},
	}
}

func definitionOf(app, identifier string) *dstu1.Resource {
	return activity.FromConfig(koppeltaal.ActivityDefinitionConfig{Identifier: identifier, Application: app,
		Name: identifier, Kind: "Game", DefaultPerformer: "Patient", LaunchType: "Web"})
}

// queuedIn counts the CreateOrUpdateActivityDefinition entries queued in a domain.
func (e *env) queuedIn(domain string) int {
	e.t.Helper()
	var n int
	err := e.st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &n, `SELECT COUNT(*) FROM queue q JOIN domains d ON d.id = q.domain_id
			WHERE d.name = ? AND q.event = ?`, domain, activity.Event)
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return n
}

// TestDefinitionsStayInTheirDomains (issue 16 item 1): an instance defines
// activities of its own application only; naming another known application
// is 403 and changes nothing, in both directions between two domains. A
// definition naming an application the server does not know is accepted
// (CLIENTS.md) but stays in the creator's domain, whatever IsDomainSpecific
// says, and registering that application later does not widen it.
func TestDefinitionsStayInTheirDomains(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnvWith(t, b, isolationConfig())
		f := dstu1.FormatJSON
		post := func(cred [2]string, r *dstu1.Resource) reply {
			return e.do("POST", "/FHIR/Koppeltaal/Other", cred, f, koppeltaal.EncodeResource(r, f))
		}
		module1 := [2]string{"module@d1", "m1"}
		portal1 := [2]string{"portal@d1", "p1"}
		portal2 := [2]string{"portal@d2", "p2"}
		other2 := [2]string{"other@d2", "o2"}

		// The attack of issue 16: Module (D1 only) names Portal, which has an instance in D2.
		for _, c := range []struct {
			cred [2]string
			app  string
		}{{module1, "Portal"}, {module1, "Other"}, {other2, "Module"}, {other2, "Portal"}, {portal2, "Other"}} {
			before1, before2, msgs := e.queuedIn("D1"), e.queuedIn("D2"), e.messages()
			r := post(c.cred, definitionOf(c.app, "inject-"+c.cred[0]+"-"+c.app))
			if r.Status != http.StatusForbidden || !strings.Contains(string(r.Body), "OperationOutcome") ||
				!strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("%s defining an activity of %s: %d %s", c.cred[0], c.app, r.Status, r.Body)
			}
			if e.queuedIn("D1") != before1 || e.queuedIn("D2") != before2 || e.messages() != msgs {
				t.Fatalf("%s defining an activity of %s queued messages", c.cred[0], c.app)
			}
		}
		for _, cred := range [][2]string{portal1, portal2, module1, other2} {
			if got := identifiers(e.list(cred, f, "&includearchived=yes")); len(got) != 0 {
				t.Fatalf("%s sees %v after refused injections", cred[0], got)
			}
		}

		// Its own application: accepted, visible (and announced) where that application has instances.
		before2 := e.queuedIn("D2")
		if r := post(portal1, definitionOf("Portal", "portal-own")); r.Status != http.StatusCreated {
			t.Fatalf("own definition: %d %s", r.Status, r.Body)
		}
		if got := identifiers(e.list(portal2, f, "")); len(got) != 1 || got[0] != "portal-own" {
			t.Fatalf("D2 list of Portal's own definition: %v", got)
		}
		if e.queuedIn("D2") != before2+2 { // portal@d2 and other@d2 are subscribed
			t.Fatalf("Portal's definition queued %d in D2, want 2", e.queuedIn("D2")-before2)
		}
		if r := post(module1, definitionOf("Module", "module-own")); r.Status != http.StatusCreated {
			t.Fatalf("own definition: %d %s", r.Status, r.Body)
		}
		if got := identifiers(e.list(portal2, f, "")); len(got) != 1 {
			t.Fatalf("Module's definition (no instance in D2) reached D2: %v", got)
		}

		// An application the server does not know: accepted, but only in the creator's domain.
		before1, before2 := e.queuedIn("D1"), e.queuedIn("D2")
		r := post(other2, definitionOf("FutureApp", "unknown-app"))
		if r.Status != http.StatusCreated {
			t.Fatalf("unknown application: %d %s", r.Status, r.Body)
		}
		if got := identifiers(e.list(portal1, f, "")); len(got) != 2 { // portal-own, module-own
			t.Fatalf("D1 sees %v", got)
		}
		if e.queuedIn("D1") != before1 || e.queuedIn("D2") != before2+2 {
			t.Fatalf("unknown-application definition queued %d in D1, %d in D2", e.queuedIn("D1")-before1, e.queuedIn("D2")-before2)
		}
		// ... and stays there when an application of that name is registered later with an instance in D1.
		cfg := isolationConfig()
		cfg.Applications = append(cfg.Applications, koppeltaal.ApplicationConfig{ID: "FutureApp"})
		cfg.Instances = append(cfg.Instances, koppeltaal.InstanceConfig{Application: "FutureApp", Domain: "D1",
			Username: "future@d1", Password: "f1"})
		if _, err := koppeltaal.Apply(ctx, cfg, e.st, nil); err != nil {
			t.Fatal(err)
		}
		if got := identifiers(e.list(portal1, f, "")); len(got) != 2 {
			t.Fatalf("registering FutureApp made the injected definition visible in D1: %v", got)
		}

		// Updates: only the owning application's instances, and not into another application's name.
		loc := strings.TrimPrefix(r.Header.Get("Content-Location"), e.ts.URL)
		path, _ := dstu1.SplitHistory(loc)
		if r := e.do("PUT", path, portal2, f, koppeltaal.EncodeResource(definitionOf("FutureApp", "unknown-app"), f)); r.Status != http.StatusForbidden {
			t.Fatalf("Portal changing Other's definition: %d %s", r.Status, r.Body)
		}
		if r := e.do("PUT", path, other2, f, koppeltaal.EncodeResource(definitionOf("Portal", "unknown-app"), f)); r.Status != http.StatusForbidden {
			t.Fatalf("Other renaming its definition to Portal's: %d %s", r.Status, r.Body)
		}
		if r := e.do("PUT", path, other2, f, koppeltaal.EncodeResource(definitionOf("Other", "unknown-app"), f)); r.Status != http.StatusOK {
			t.Fatalf("Other adopting its definition: %d %s", r.Status, r.Body)
		}
		if got := identifiers(e.list(portal1, f, "")); len(got) != 2 {
			t.Fatalf("Other's definition (no instance in D1) reached D1: %v", got)
		}
	})
}

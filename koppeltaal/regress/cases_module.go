package regress

import (
	"log/slog"
	"net/http"
	"net/url"
	"slices"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/testclient"
)

// End to end: the portal assigns an activity in a CarePlan and launches the module (koppeltaal/testclient);
// the module signs in, works on the activity, reports to the portal and acknowledges. The suite checks
// the outcome black-box: what the portal receives and the status of the module's copy.
func moduleCases() []Case {
	mod := []Capability{CapModule}
	return []Case{
		{ID: "module/web-launch", Title: "a module launched from the portal claims its CarePlan, reports InProgress and Completed to the portal and acknowledges Success",
			Ref: "SPEC.md §8.2, §4.4 (CarePlan flow), §3.5; CLIENTS.md Calls", Formats: both, Needs: mod, Run: func(t *T) {
				d := t.assignActivity()
				m := t.testModule(d.Definition, "")
				resp := t.webLaunch(t.module().ClientID, t.newLaunchContext(d))
				t.Require(isRedirect(resp.Status), "Launch for the module", "a 3xx redirect", resp.Status)
				s, err := m.Launch(t.ctx, resp.Header.Get("Location"))
				t.Require(err == nil, "the module's sign-in from the launch URL (metadata, Authorize, Token)", "a session", err)
				t.Equal("the token's patient", d.Patient, s.Token.Patient)
				t.expectWorked(d, t.work(s))
			}},
		{ID: "module/mobile-launch", Title: "a module started with a mobile activation code works on its CarePlan the same way",
			Ref: "SPEC.md §8.3; CLIENTS.md Calls: mobile launch", Formats: both, Needs: mod, Run: func(t *T) {
				d := t.assignActivity()
				m := t.testModule(d.Definition, "")
				code := t.activationCode(t.module().ClientID, t.newLaunchContext(d))
				s, err := m.Activate(t.ctx, t.base(), code)
				t.Require(err == nil, "the module's sign-in with the activation code", "a session", err)
				t.expectWorked(d, t.work(s))
			}},
		{ID: "module/failed-ack", Title: "a module that cannot process its CarePlan acknowledges Failed with an exception, which the server keeps",
			Ref: "SPEC.md §3.5, §5.1 (Failed with exception)", Formats: both, Needs: mod, Run: func(t *T) {
				d := t.assignActivity()
				const why = "regress: this module version cannot play the activity"
				m := t.testModule(d.Definition, why)
				s, err := m.Launch(t.ctx, t.webLaunch(t.module().ClientID, t.newLaunchContext(d)).Header.Get("Location"))
				t.Require(err == nil, "the module's sign-in", "a session", err)
				done := t.work(s)
				t.Require(len(done) == 1, "what the module did", "one message handled", len(done))
				t.Equal("the module's acknowledgement", "Failed", done[0].Ack)
				hs := headers(t.summary(t.moduleAccount(), d.Patient, nil))
				t.Require(len(hs) == 1, "the module's messages about the patient", "one", len(hs))
				ps, _ := hs[0].ProcessingStatus()
				t.Expect(ps.Status == "Failed" && ps.Exception == why, "the status the server keeps", "Failed with the exception", ps)
			}},
		{ID: "module/other-activity", Title: "a module leaves activities of other definitions alone and acknowledges Success",
			Ref: "SPEC.md §4.4 (an activity provider reports on its own activities)", Formats: both, Needs: mod, Run: func(t *T) {
				d := t.assignActivity()
				m := t.testModule(t.Unique("another-activity"), "")
				s, err := m.Launch(t.ctx, t.webLaunch(t.module().ClientID, t.newLaunchContext(d)).Header.Get("Location"))
				t.Require(err == nil, "the module's sign-in", "a session", err)
				done := t.work(s)
				t.Expect(len(done) == 1 && done[0].Ack == "Success" && len(done[0].Posted) == 0, "what the module did", "acknowledged Success, posted nothing", done)
				t.Expect(t.claim(t.Portal(), d.Patient) == nil, "the portal's mailbox for the patient", "empty", "a message")
			}},
	}
}

// assignActivity posts a CarePlan whose activity names an ActivityDefinition of this case only.
func (t *T) assignActivity() *dossier {
	d := t.newDossier()
	d.Definition = t.Unique("activity")
	t.postOK(t.Portal(), d, t.carePlan(d, "Available"))
	return d
}

// testModule is the configured module as a koppeltaal/testclient that implements activity.
func (t *T) testModule(activity, failWith string) *testclient.Module {
	c := t.s.cfg.Module
	m, err := testclient.New(testclient.Config{Server: t.s.cfg.Target, ClientID: c.ClientID, ClientSecret: c.ClientSecret,
		RedirectURI: c.RedirectURI, Username: c.Username, Password: c.Password, Domain: t.s.cfg.Domain, Activity: activity,
		ResourceBase: t.moduleBase(), Format: t.Format, FailWith: failWith, HTTP: t.s.hc, Logger: slog.New(slog.DiscardHandler)})
	t.Require(err == nil, "the test client", "configured", err)
	return m
}

// work lets a signed-in module work through its patient's messages.
func (t *T) work(s *testclient.Session) []testclient.Handled {
	done, err := s.Work(t.ctx)
	t.Require(err == nil, "the module working through its messages", "no error", err)
	return done
}

// expectWorked checks the outcome of a module session on d: it handled the CarePlan and acknowledged
// Success, the portal received InProgress then Completed (which replaced it) with the game state, and
// the server keeps the module's copy as Success.
func (t *T) expectWorked(d *dossier, done []testclient.Handled) {
	t.Require(len(done) == 1, "what the module did", "one message handled (the CarePlan)", len(done))
	h := done[0]
	t.Expect(slices.Equal(h.Activities, []string{d.Activity}) && h.Ack == "Success", "the module's work", "activity "+d.Activity+", acknowledged Success", h)
	// The portal was not looking: Completed replaced InProgress in its mailbox (same status resource).
	status := url.Values{"event": {"UpdateCarePlanActivityStatus"}}
	t.expectStatesOf(t.Portal(), d.Patient, status, "ReplacedByNewVersion", "New")
	msg := t.claimWait(t.Portal(), d.Patient)
	t.Equal("the activity status the portal claims", "Completed", activityStatusOf(msg))
	t.Expect(blackBox(msg) != nil, "the status message the portal received", "the module's BlackBoxState", entryTypes(msg))
	t.ackOK(t.Portal(), msg, "Success", "")
	t.expectStates(t.moduleAccount(), d.Patient, "Success")
	if len(h.Stored) > 0 { // the target has a Storage Service: the module's state is there, black-box
		items := t.searchItems(t.moduleAccount(), url.Values{"patient": {d.Patient}, "objectType": {testclient.StateType}})
		t.Expect(len(items) == 1, "the module's state in the Storage Service", "one item for the patient", len(items))
	}
	resp := t.Do(Request{URL: claimURL(d.Patient, nil), Basic: t.moduleAccount()})
	t.Expect(resp.Status == http.StatusOK && len(t.bundle(resp).Entries) == 0, "the module's mailbox for the patient afterwards", "empty", entryTypes(t.bundle(resp)))
}

// activityStatusOf is the ActivityStatus code of an UpdateCarePlanActivityStatus message.
func activityStatusOf(b *dstu1.Bundle) string {
	for _, e := range b.Entries {
		if e.ResourceType() == dstu1.KindCarePlanActivityStatus {
			return e.Resource.Extension(dstu1.KoppeltaalBase + "CarePlanActivityStatus#ActivityStatus").ExtensionValue().Str("code")
		}
	}
	return ""
}

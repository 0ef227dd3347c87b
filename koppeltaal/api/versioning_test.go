package api_test

import (
	"bytes"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const (
	plan     = "http://local.emhp/CarePlan/81636954"
	patient  = "http://local.emhp/Patient/9664"
	teamBlue = "http://local.emhp/CareTeam/82483757" // renamed in step 4
	teamKept = "http://local.emhp/CareTeam/24470607"
	oldV     = "2019-03-19T12:00:02:188.9659" // the version the walk-through's server issued in step 2
)

// ericTest is the BV walk-through's domain: the EMHP portal sends, a 1.3.5 game and a 1.3.3 app receive.
func ericTest() koppeltaal.Config {
	evs := []string{"CreateOrUpdateCarePlan"}
	return koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: "EricTest"}, {Name: "Other"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "EMHP"}, {ID: "Game"}, {ID: "Legacy"}, {ID: "Spy"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "EMHP", Domain: "EricTest", Username: "emhp", Password: "pw-emhp", APIVersion: "1.3.5"},
			{Application: "Game", Domain: "EricTest", Username: "game", Password: "pw-game", APIVersion: "1.3.5", Subscriptions: evs},
			{Application: "Legacy", Domain: "EricTest", Username: "legacy", Password: "pw-legacy", APIVersion: "1.3.3", Subscriptions: evs},
			{Application: "Spy", Domain: "Other", Username: "spy", Password: "pw-spy", APIVersion: "1.3.5", Subscriptions: evs},
		},
	}
}

func claim(h *harness, user, pass string, f dstu1.Format) reply {
	h.t.Helper()
	return h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim",
		user: user, pass: pass, accept: ctypeOf(f)})
}

func ack(h *harness, user, pass, selfLink, status, exception string, f dstu1.Format) reply {
	h.t.Helper()
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{Identifier: "x", Timestamp: "2026-01-01T00:00:00Z",
		Event: dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan"}})
	mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: status, Exception: exception})
	path := strings.TrimPrefix(selfLink, h.ts.URL)
	return h.do(req{method: "PUT", path: path, user: user, pass: pass, accept: ctypeOf(f), ctype: ctypeOf(f),
		body: koppeltaal.EncodeResource(mh.Resource, f)})
}

// TestVersioningWalkthrough replays bv-step1…6: the versions-issued pattern,
// the enriched queued messages, replacement of unprocessed older versions, and
// the conflict behaviour — in XML and in JSON, on SQLite and PostgreSQL.
func TestVersioningWalkthrough(t *testing.T) {
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		t.Run(f.String(), func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, b storetest.Backend) {
				testWalkthrough(t, newHarness(t, b, ericTest()), f)
			})
		})
	}
}

func testWalkthrough(t *testing.T, h *harness, f dstu1.Format) {
	post := func(body []byte) reply {
		return h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "emhp", pass: "pw-emhp",
			accept: ctypeOf(f), ctype: ctypeOf(f), body: convert(t, body, f)})
	}
	// Step 1/2: a new CarePlan with Patient and two CareTeams, no versions.
	r := post(fixture(t, "examples/bv-step1-createorupdatecareplan-request.xml"))
	if r.Status != http.StatusOK {
		t.Fatalf("step 1: %d %s", r.Status, r)
	}
	resp := header(t, bundleOf(t, r))
	if id, code, _ := resp.Response(); id != "299b2931-7e7c-46ab-abe1-1bea66c8d3ec" || code != "ok" {
		t.Fatalf("step 2 response = %q %q", id, code)
	}
	if resp.EventCode() != "CreateOrUpdateCarePlan" || resp.Source().Endpoint != h.ts.URL+"/FHIR/Koppeltaal/Mailbox" {
		t.Fatalf("step 2 event/source: %s %+v", resp.EventCode(), resp.Source())
	}
	data := resp.Data()
	if len(data) != 4 {
		t.Fatalf("step 2: want 4 data references (one per resource), got %v", data)
	}
	_, v1 := dstu1.SplitHistory(data[0])
	if _, err := koppeltaal.ParseVersion(v1); err != nil {
		t.Fatalf("step 2: version %q is not in the Koppeltaal format: %v", v1, err)
	}
	want := []string{plan, patient, teamBlue, teamKept}
	for i, d := range data {
		if d != want[i]+"/_history/"+v1 {
			t.Fatalf("step 2 data[%d] = %q, want %s/_history/%s (all resources share one version, focal first)", i, d, want[i], v1)
		}
	}

	// Step 3: the subscriber claims the enriched message.
	r = claim(h, "game", "pw-game", f)
	msg := bundleOf(t, r)
	if msg.ID != "urn:uuid:299b2931-7e7c-46ab-abe1-1bea66c8d3ec" {
		t.Fatalf("step 3: feed id %q, want the sender's", msg.ID)
	}
	mh := header(t, msg)
	head := msg.Entries[0]
	if !strings.HasPrefix(head.Title, "MessageHeader with IID=") || !strings.HasPrefix(head.ID, h.ts.URL+"/FHIR/Koppeltaal/MessageHeader/") ||
		!strings.HasPrefix(head.SelfLink(), head.ID+"/_history/") {
		t.Fatalf("step 3: entry metadata title=%q id=%q self=%q", head.Title, head.ID, head.SelfLink())
	}
	if ps, _ := mh.ProcessingStatus(); ps.Status != "Claimed" || ps.LastChanged == "" {
		t.Fatalf("step 3: processing status %+v", ps)
	}
	if exp, present := mh.IsExpired(); exp || !present {
		t.Fatalf("step 3: IsExpired = %v (present %v)", exp, present)
	}
	if mh.Data()[0] != plan+"/_history/"+v1 || mh.Patient() != patient {
		t.Fatalf("step 3: data %v patient %q", mh.Data(), mh.Patient())
	}
	for _, u := range want {
		if got := selfLinks(msg)[u]; got != v1 {
			t.Fatalf("step 3: self link of %s has version %q, want %q", u, got, v1)
		}
	}
	firstGame := head.SelfLink()

	// The 1.3.3 app gets only the focal version, and acknowledges it.
	r = claim(h, "legacy", "pw-legacy", f)
	legacyMsg := bundleOf(t, r)
	ls := selfLinks(legacyMsg)
	if ls[plan] != v1 || ls[patient] != "" || ls[teamBlue] != "" {
		t.Fatalf("step 3 (1.3.3 recipient): self-link versions %v, want only the CarePlan versioned", ls)
	}
	if r := ack(h, "legacy", "pw-legacy", legacyMsg.Entries[0].SelfLink(), "Success", "", f); r.Status != http.StatusOK {
		t.Fatalf("legacy ack: %d %s", r.Status, r)
	}

	// Step 4/5: the update, based on the versions of step 2; CareTeam 82483757 renamed.
	step4 := bytes.ReplaceAll(fixture(t, "examples/bv-step4-createorupdatecareplan-update-request.xml"), []byte(oldV), []byte(v1))
	r = post(step4)
	if r.Status != http.StatusOK {
		t.Fatalf("step 4: %d %s", r.Status, r)
	}
	data = header(t, bundleOf(t, r)).Data()
	if len(data) != 2 {
		t.Fatalf("step 5: want data for the CarePlan and the changed CareTeam only, got %v", data)
	}
	_, v2 := dstu1.SplitHistory(data[0])
	if v2 <= v1 || data[0] != plan+"/_history/"+v2 || data[1] != teamBlue+"/_history/"+v2 {
		t.Fatalf("step 5: data %v (v1 %s)", data, v1)
	}

	// Step 6: the game's unprocessed first message is replaced; the update carries old and new versions.
	r = h.do(req{method: "GET", path: strings.TrimPrefix(strings.Split(firstGame, "/_history/")[0], h.ts.URL),
		user: "game", pass: "pw-game", accept: ctypeOf(f)})
	if ps, _ := header(t, bundleOf(t, r)).ProcessingStatus(); ps.Status != "ReplacedByNewVersion" {
		t.Fatalf("step 6: the game's unprocessed first message is %q, want ReplacedByNewVersion", ps.Status)
	}
	r = claim(h, "game", "pw-game", f)
	upd := bundleOf(t, r)
	got := selfLinks(upd)
	wantV := map[string]string{plan: v2, patient: v1, teamBlue: v2, teamKept: v1}
	for u, v := range wantV {
		if got[u] != v {
			t.Fatalf("step 6: %s at version %q, want %q (all: %v)", u, got[u], v, got)
		}
	}
	if header(t, upd).Data()[0] != plan+"/_history/"+v2 {
		t.Fatalf("step 6: focal data %v", header(t, upd).Data())
	}
	// The 1.3.3 app had acknowledged: Success stays Success.
	r = h.do(req{method: "GET", path: strings.TrimPrefix(legacyMsg.Entries[0].ID, h.ts.URL), user: "legacy", pass: "pw-legacy", accept: ctypeOf(f)})
	if ps, _ := header(t, bundleOf(t, r)).ProcessingStatus(); ps.Status != "Success" {
		t.Fatalf("step 6: acknowledged message is %q, want Success", ps.Status)
	}

	// Conflicts: another message built like step 4 (stale versions) and step 1 again (focal without
	// version). (The very same step-4 request again is a retry and gets its original reply: retry_test.go.)
	before := h.messageCount()
	r = post(bytes.ReplaceAll(step4, []byte("05dc0587-71d5-4de3-aa4a-fd5819c2783d"), []byte("05dc0587-71d5-4de3-aa4a-fd5819c2783e")))
	if r.Status != http.StatusConflict {
		t.Fatalf("stale update: %d %s", r.Status, r)
	}
	issues := outcome(t, r)
	wantIssues := []string{koppeltaal.TextVersionNotCorrect + " @" + plan, koppeltaal.TextVersionNotCorrect + " @" + teamBlue}
	if fmt.Sprint(issues) != fmt.Sprint(wantIssues) {
		t.Fatalf("stale update issues = %q, want %q", issues, wantIssues)
	}
	r = post(bytes.ReplaceAll(fixture(t, "examples/bv-step1-createorupdatecareplan-request.xml"), []byte("299b2931-7e7c-46ab-abe1-1bea66c8d3ec"), []byte("299b2931-7e7c-46ab-abe1-1bea66c8d3ed")))
	if r.Status != http.StatusConflict || !strings.Contains(strings.Join(outcome(t, r), "|"), koppeltaal.TextFocalWithoutVersion) {
		t.Fatalf("focal without version: %d %s", r.Status, r)
	}
	if after := h.messageCount(); after != before {
		t.Fatalf("rejected posts stored %d messages", after-before)
	}
	if r := claim(h, "game", "pw-game", f); len(bundleOf(t, r).Entries) != 0 {
		t.Fatalf("rejected posts were routed: %s", r)
	}
	// The other domain never saw anything.
	if r := claim(h, "spy", "pw-spy", f); len(bundleOf(t, r).Entries) != 0 {
		t.Fatalf("another domain received a message: %s", r)
	}
}

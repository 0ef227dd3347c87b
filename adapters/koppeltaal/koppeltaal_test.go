package koppeltaal_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	_ "github.com/koppelpoort/koppelpoort/adapters/file"
	kt "github.com/koppelpoort/koppelpoort/adapters/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

func server(t *testing.T) string {
	t.Helper()
	return apitest.ServeOnSQLite(t, koppeltaal.DemoConfig())
}

func gatewayDB(t *testing.T) adapters.Host {
	st := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "gw.db")}.Open(t)
	return adapters.Host{Store: st, Route: "test"}
}

func patient(given string) adapters.Delivery {
	return adapters.Delivery{Route: "test", Output: "kt", RecordKey: "1", IdempotencyKey: "key-" + given,
		Koppeltaal: &adapters.KoppeltaalMessage{Event: "CreateOrUpdatePatient", Patient: "p1", Resources: []adapters.KoppeltaalResource{{
			Type: "Patient", ID: "p1", Body: map[string]any{"name": []any{map[string]any{"given": []any{given}}}}}}}}
}

// TestOutboundVersionsAndConflictRefresh: a second export is an update with the remembered version; when
// another application moved the resource on, the 409 is answered by a refresh from the mailbox and one retry.
func TestOutboundVersionsAndConflictRefresh(t *testing.T) {
	base := server(t)
	ctx := context.Background()
	// The game instance is subscribed to CreateOrUpdatePatient, so it can see newer versions in its mailbox.
	o := &kt.Outbound{BaseURL: base, Username: koppeltaal.DemoGameUser, Password: koppeltaal.DemoGamePassword, Format: "json",
		Timeout: "10s", Domain: koppeltaal.DemoDomain, ResourceBase: "https://epd.example.nl/fhir/Koppeltaal"}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := o.Provision(ctx, gatewayDB(t)); err != nil {
		t.Fatal(err)
	}
	if err := o.Deliver(ctx, patient("Jan")); err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := o.Deliver(ctx, patient("Johannes")); err != nil {
		t.Fatalf("update with the remembered version: %v", err)
	}
	// The portal updates the same patient behind the gateway's back (it read the version from its mailbox).
	portal := &client.Client{BaseURL: base, Username: koppeltaal.DemoPortalUser, Password: koppeltaal.DemoPortalPassword}
	var current string
	for {
		m, err := portal.Claim(ctx, client.ClaimFilter{})
		if err != nil || m == nil {
			break
		}
		current = m.MessageHeader().Data()[0]
		portal.Ack(ctx, m, "Success", "")
	}
	_, v := splitVersion(current)
	msg, err := client.BuildMessage(client.Message{Event: "CreateOrUpdatePatient", Patient: "p1", Resources: []client.Resource{{Type: "Patient", ID: "p1",
		Body: map[string]any{"name": []any{map[string]any{"given": []any{"Portal"}}}}}}},
		client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://epd.example.nl/fhir/Koppeltaal", Version: func(string) string { return v }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := portal.PostMessage(ctx, msg); err != nil {
		t.Fatalf("portal update: %v", err)
	}
	// The gateway's remembered version is stale now: 409, refresh, retry once, success.
	if err := o.Deliver(ctx, patient("Jan Piet")); err != nil {
		t.Fatalf("update after a foreign update: %v", err)
	}
}

func splitVersion(u string) (string, string) {
	i := strings.Index(u, "/_history/")
	if i < 0 {
		return u, ""
	}
	return u[:i], u[i+len("/_history/"):]
}

// TestInboundAcksFailedAfterDeadLetter: a mailbox message that the route dead-letters is acknowledged
// Failed on the server with the reason; one it delivers is acknowledged Success.
func TestInboundAcksFailedAfterDeadLetter(t *testing.T) {
	base := server(t)
	ctx := context.Background()
	dir := t.TempDir()
	route := `name: mailbox
input:
  koppeltaal: {base_url: "` + base + `", username: epd@demo, password: demo-epd, poll_interval: 50ms}
rules:
  - when: record.event == "UpdateCarePlanActivityStatus"
    dead_letter: "cannot handle {{ record.event }}"
  - transform: t
transforms:
  t:
    fields: {event: record.event, patient: record.patient, focal_type: record.focal_type}
outputs:
  - name: out
    file: {dir: ./out, format: ndjson}
`
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(route), 0o644)
	r, err := routes.LoadFile(filepath.Join(dir, "r.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Backend{Name: "sqlite", DSN: filepath.Join(dir, "gw.db")}.Open(t)
	rctx, cancel := context.WithCancel(ctx)
	rt, err := runtime.New(rctx, runtime.Config{Store: db, Routes: []*routes.Route{r}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(rctx) }()
	defer func() { cancel(); <-done; rt.Close() }()

	// The game reports an activity status; the portal a care plan (the EPD bridge gets both).
	game := &client.Client{BaseURL: base, Username: koppeltaal.DemoGameUser, Password: koppeltaal.DemoGamePassword}
	status, _ := client.BuildMessage(client.Message{Event: "UpdateCarePlanActivityStatus", Patient: "https://epd.example.nl/Patient/1",
		Resources: []client.Resource{{Type: "CarePlanActivityStatus", ID: "s1", Body: map[string]any{"extension": []any{
			map[string]any{"url": "http://ggz.koppeltaal.nl/fhir/Koppeltaal/CarePlanActivityStatus#Activity", "valueString": "a1"}}}}}},
		client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://game.example.nl/fhir"})
	if _, err := game.PostMessage(ctx, status); err != nil {
		t.Fatal(err)
	}
	portal := &client.Client{BaseURL: base, Username: koppeltaal.DemoPortalUser, Password: koppeltaal.DemoPortalPassword}
	cp, _ := client.BuildMessage(client.Message{Event: "CreateOrUpdateCarePlan", Patient: "https://epd.example.nl/Patient/1",
		Resources: []client.Resource{{Type: "CarePlan", ID: "cp1", Body: map[string]any{"status": "active", "patient": map[string]any{"reference": "https://epd.example.nl/Patient/1"}}}}},
		client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://portal.example.nl/fhir"})
	if _, err := portal.PostMessage(ctx, cp); err != nil {
		t.Fatal(err)
	}
	epd := &client.Client{BaseURL: base, Username: koppeltaal.DemoEPDUser, Password: koppeltaal.DemoEPDPassword}
	count := func(status string) int {
		res, err := epd.Search(ctx, url.Values{"ProcessingStatus": {status}, "_summary": {"true"}})
		if err != nil {
			return -1
		}
		return len(res.Entries)
	}
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && !(count("Failed") == 1 && count("Success") == 1) {
		time.Sleep(50 * time.Millisecond)
	}
	if f, s := count("Failed"), count("Success"); f != 1 || s != 1 {
		t.Fatalf("Failed %d, Success %d; want 1 and 1", f, s)
	}
	dl, _ := runtime.ListDeadLetters(ctx, db, runtime.Filter{})
	if len(dl) != 1 || dl[0].Reason != "cannot handle UpdateCarePlanActivityStatus" {
		t.Fatalf("dead letters: %+v", dl)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"path/filepath"
	"testing"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/console"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// TestDashboardReadsRealData: what the dashboard shows is what happened on the server — messages posted,
// received, claimed and acknowledged Failed by an instance, its queue depth, and a route's waiting dead
// letter with its reason — read back through /console/api/dashboard of `koppelpoort serve`.
func TestDashboardReadsRealData(t *testing.T) {
	dir := t.TempDir()
	seedDeadLetter(t, filepath.Join(dir, "koppelpoort-data", "koppelpoort.db"))
	base, _, _, _ := startBinary(t, dir, nil)
	ctx := context.Background()
	epd := &client.Client{BaseURL: base, Username: koppeltaal.DemoEPDUser, Password: koppeltaal.DemoEPDPassword}
	for _, id := range []string{"dash-1", "dash-2"} {
		msg, err := client.BuildMessage(client.Message{Event: "CreateOrUpdatePatient", Patient: "https://epd.example/fhir/Koppeltaal/Patient/" + id,
			Resources: []client.Resource{{Type: "Patient", ID: id, Body: map[string]any{"name": []any{map[string]any{"text": id}}}}}},
			client.BuildOptions{Domain: koppeltaal.DemoDomain, ResourceBase: "https://epd.example/fhir/Koppeltaal"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := epd.PostMessage(ctx, msg); err != nil {
			t.Fatal(err)
		}
	}
	portal := &client.Client{BaseURL: base, Username: koppeltaal.DemoPortalUser, Password: koppeltaal.DemoPortalPassword}
	b, err := portal.Claim(ctx, client.ClaimFilter{})
	if err != nil || b == nil || b.MessageHeader() == nil {
		t.Fatalf("claim: %v %v", b, err)
	}
	if err := portal.Ack(ctx, b, "Failed", "the test says no"); err != nil {
		t.Fatal(err)
	}

	jar, _ := cookiejar.New(nil)
	web := &http.Client{Jar: jar}
	login, _ := json.Marshal(map[string]string{"username": admin.DemoUser, "password": admin.DemoPassword})
	resp, err := web.Post(base+admin.SessionPath, "application/json", bytes.NewReader(login))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("login: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = web.Get(base + "/console/api/dashboard")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("dashboard: %v %v", resp, err)
	}
	var d console.Dashboard
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	sum := func(xs []int) (n int) {
		for _, x := range xs {
			n += x
		}
		return n
	}
	if len(d.Domains) != 1 || sum(d.Domains[0].Posted) < 2 {
		t.Fatalf("posted: %+v", d.Domains)
	}
	var got *console.InstanceDashboard
	for i, in := range d.Domains[0].Instances {
		if in.Username == koppeltaal.DemoPortalUser {
			got = &d.Domains[0].Instances[i]
		}
	}
	if got == nil || sum(got.Received) != 2 || sum(got.Claimed) != 1 || sum(got.Failed) != 1 ||
		got.Queue["New"] != 1 || got.Queue["Failed"] != 1 || got.Queue["Claimed"] != 0 {
		t.Fatalf("portal@demo on the dashboard: %+v", got)
	}
	var route *console.RouteCounters
	for i, r := range d.Routes {
		if r.Route == "browser-route" {
			route = &d.Routes[i]
		}
	}
	if route == nil || route.Waiting != 1 || route.LastError != "BSN is not a number" || route.LastErrorAt == "" {
		t.Fatalf("routes on the dashboard: %+v", d.Routes)
	}
}

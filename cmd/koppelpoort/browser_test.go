package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// TestTestGameFromAnotherOrigin runs a browser module that talks to Koppeltaal exactly as the Koppeltaal
// Test Game does (testdata/testgame.html, CLIENTS.md "What browser modules send") in Debian's headless
// Chromium, served from a second origin, against `koppelpoort serve`: the portal's launch → metadata (GET
// with Content-Type: application/json, so a preflight) → Authorize → Token by GET without client
// authentication → claim with the Bearer token → a status update carrying an Other coded BlackBoxState →
// the acknowledgement PUT to the history-less MessageHeader id with Accept: */*. Then, over plain HTTP, the
// portal gets the status update with the BlackBoxState unchanged and the game's message is Success.
func TestTestGameFromAnotherOrigin(t *testing.T) {
	bctx := testkit.Browser(t)
	page, err := os.ReadFile("testdata/testgame.html")
	if err != nil {
		t.Fatal(err)
	}
	game := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = w.Write(page)
	}))
	defer game.Close()
	gameURL := game.URL + "/game/index.html"
	const user, pass = "testgame@demo", "test-game"
	base := serveDemo(t, filepath.Join(t.TempDir(), "kp.db"), func(cfg *config.Config) {
		kt := cfg.Koppeltaal
		kt.Applications = append(kt.Applications, koppeltaal.ApplicationConfig{ID: "KTSTESTGAME", Name: "Koppeltaal Test Game",
			LaunchURL: gameURL, RedirectURIs: []string{gameURL}, PublicClient: true, AllowedOrigins: []string{game.URL}})
		kt.Instances = append(kt.Instances, koppeltaal.InstanceConfig{Application: "KTSTESTGAME", Domain: koppeltaal.DemoDomain,
			Username: user, Password: pass, Subscriptions: []string{"CreateOrUpdateCarePlan"}})
		kt.SetDefaults()
	})

	// The portal launches the game for the demo patient, whose CarePlan serve posted at start.
	portal := &client.Client{BaseURL: base, Username: koppeltaal.DemoPortalUser, Password: koppeltaal.DemoPortalPassword}
	q := url.Values{"client_id": {"KTSTESTGAME"}, "patient": {koppeltaal.DemoPatient}, "user": {koppeltaal.DemoPatient}, "resource": {"demo-activity-game"}}
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest(http.MethodGet, base+"/OAuth2/Koppeltaal/Launch?"+q.Encode(), nil)
	req.SetBasicAuth(portal.Username, portal.Password)
	resp, err := noRedirect.Do(req)
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("launch: %v %v", resp, err)
	}
	resp.Body.Close()

	result := runInChromium(t, bctx, resp.Header.Get("Location"))
	if result["patient"] != koppeltaal.DemoPatient || result["domain"] != koppeltaal.DemoDomain {
		t.Fatalf("the game's result: %v", result)
	}
	// What it claimed is the CarePlan serve seeded for the demo patient (issue 14, defect 14: the SSO walk
	// through ended with an empty claim), nothing the test posted.
	if want := client.MessageIDFor(demoCarePlanKey); result["claimed"] != want {
		t.Fatalf("the game claimed message %v, want the seeded demo CarePlan %s", result["claimed"], want)
	}

	// What the game did, seen by the others.
	ctx := context.Background()
	got, err := portal.Claim(ctx, client.ClaimFilter{Patient: koppeltaal.DemoPatient, Event: "UpdateCarePlanActivityStatus"})
	if err != nil || got == nil {
		t.Fatalf("the portal's copy of the game's update: %v %v", got, err)
	}
	box := &dstu1.Entry{}
	for _, e := range got.Entries {
		if e.ResourceType() == "BlackBoxState" {
			box = e
		}
	}
	if u, _ := dstu1.SplitHistory(box.SelfLink()); box == nil || u != result["blackbox"] {
		t.Fatalf("the portal's copy carries no BlackBoxState %v: %s", result["blackbox"], got.JSON())
	}
	state := box.Resource.Extension(game.URL + "/fhir/Koppeltaal/BlackBoxState#State").ExtensionValue().Str()
	if want := base64.StdEncoding.EncodeToString([]byte(`{"level":7,"score":4242}`)); state != want {
		t.Fatalf("the game state the portal got: %q, want %q (passed on unchanged)", state, want)
	}
	mine := &client.Client{BaseURL: base, Username: user, Password: pass}
	b, err := mine.Search(ctx, url.Values{"_summary": {"true"}, "Patient": {koppeltaal.DemoPatient}})
	if err != nil || len(b.Entries) != 1 {
		t.Fatalf("the game's messages: %v %v", b, err)
	}
	if ps, _ := dstu1.AsMessageHeader(b.Entries[0].Resource).ProcessingStatus(); ps.Status != "Success" {
		t.Fatalf("the game's CarePlan message is %q after the browser's PUT, want Success", ps.Status)
	}
}

// runInChromium opens start in the browser and returns the page's JSON result.
func runInChromium(t *testing.T, bctx context.Context, start string) map[string]any {
	t.Helper()
	if err := chromedp.Do(bctx, chromedp.Navigate(start)); err != nil { // first call: no timeout (it owns the browser)
		t.Fatalf("browser: %v", err)
	}
	tctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(`#result[data-done]`)))
	logText, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#log`)))
	if err != nil {
		t.Fatalf("the game did not finish: %v; page log:\n%s", err, logText)
	}
	text, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`#result`)))
	if err != nil {
		t.Fatal(err)
	}
	state, _ := chromedp.Run(tctx, chromedp.AttributeValue(chromedp.CSS(`#result`), "data-done"))
	var got map[string]any
	if err := json.Unmarshal([]byte(text), &got); err != nil || state.Value != "ok" {
		t.Fatalf("the game failed (%s): %s\npage log:\n%s", state.Value, text, logText)
	}
	t.Logf("page log:\n%s", logText)
	return got
}

package oauth_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/koppeltaal/oauth"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestBrowserModuleFromAnotherOrigin runs the demo game page in Debian's
// headless Chromium, served from a second origin: launch → Conformance →
// Authorize → Token (public client, no secret) → claim with the Bearer token,
// every API call a cross-origin fetch (CORS, with a preflight for Authorization).
func TestBrowserModuleFromAnotherOrigin(t *testing.T) {
	bctx := testkit.Browser(t)
	mux := http.NewServeMux()
	mux.Handle("/game/", oauth.DemoGamePage())
	gameSrv := httptest.NewServer(mux)
	defer gameSrv.Close()
	gameURL := gameSrv.URL + "/game/"
	b := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}
	e := newEnvOn(t, b.Open(t), gameURL, func(c *koppeltaal.Config) {
		c.Applications[1].AllowedOrigins = []string{gameSrv.URL}
	}, notify.Options{})
	if r := e.post(portal, "", patientA, dstu1.FormatJSON); r.Status != http.StatusOK {
		t.Fatalf("portal post: %d %s", r.Status, r.Body)
	}

	// The portal starts the launch server-to-server and sends the browser to the redirect.
	// Played twice: the second play finds the state the first kept in the Storage Service and updates it.
	for play := 1; play <= 2; play++ {
		got := playDemoGame(t, bctx, e, gameURL)
		if got["patient"] != patientA || got["domain"] != domain || got["plays"] != float64(play) {
			t.Fatalf("browser module result of play %d: %v", play, got)
		}
		if play == 1 && (got["event"] != "CreateOrUpdateCarePlan" || got["about"] != patientA) {
			t.Fatalf("first play claimed %v about %v, want the CarePlan message about A", got["event"], got["about"])
		}
	}
	var items []store.StorageItem
	if err := e.st.View(ctx, func(tx *store.Tx) error {
		return tx.Select(ctx, &items, "SELECT id, domain_id, instance_id, patient_ref, object_type, object_key, content_type, content, size, version, created_at, updated_at FROM storage_items")
	}); err != nil {
		t.Fatal(err)
	}
	if len(items) != 1 || items[0].PatientRef != patientA || string(items[0].Content) != `{"plays":2}` {
		t.Fatalf("storage after two plays: %+v", items)
	}
}

// playDemoGame launches the demo game for patientA in the browser and returns its result.
func playDemoGame(t *testing.T, bctx context.Context, e *env, gameURL string) map[string]any {
	t.Helper()
	launch := e.launch("Game", patientA)
	start := gameURL + "?iss=" + e.ts.URL + "/FHIR/Koppeltaal&launch=" + launch + "&launch_id=" + launch + "&application_id=Game"
	if err := chromedp.Do(bctx, chromedp.Navigate(start)); err != nil { // first call: no timeout (it owns the browser)
		t.Fatalf("browser: %v", err)
	}
	tctx, cancel := context.WithTimeout(bctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(tctx, chromedp.WaitVisible(chromedp.CSS(`#result[data-done]`))); err != nil {
		logText, _ := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(`#log`)))
		t.Fatalf("browser module did not finish: %v; page log:\n%s", err, logText)
	}
	result, err := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`#result`)))
	if err != nil {
		t.Fatal(err)
	}
	state, err := chromedp.Run(tctx, chromedp.AttributeValue(chromedp.CSS(`#result`), "data-done"))
	if err != nil {
		t.Fatal(err)
	}
	logText, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS(`#log`)))
	t.Logf("page log:\n%s", logText)
	var got map[string]any
	if err := json.Unmarshal([]byte(result), &got); err != nil || state.Value != "ok" {
		t.Fatalf("browser module failed (%s): %s", state.Value, result)
	}
	return got
}

package examples_test

import (
	"context"
	"database/sql"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kphttp "github.com/koppelpoort/koppelpoort/adapters/http"
	"github.com/koppelpoort/koppelpoort/examples/koppeltaal-to-epd/epdreceiver"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

// TestROMToKoppeltaalToEPD chains two examples: a ROM webhook becomes UpdateCarePlanActivityStatus in the
// demo domain; the EPD bridge's mailbox route claims it, writes it to the (demo) EPD REST API and the
// archive, and acknowledges it Success on the Koppeltaal server.
func TestROMToKoppeltaalToEPD(t *testing.T) {
	n := ktServer(t)
	epd := epdreceiver.New("epd-demo-token")
	epdSrv := httptest.NewServer(epd)
	defer epdSrv.Close()
	t.Setenv("ROM_HOOK_LISTEN", "127.0.0.1:0")
	t.Setenv("EPD_URL", epdSrv.URL)

	dir := t.TempDir()
	for _, f := range []string{"rom-to-koppeltaal/rom-webhook.yaml", "koppeltaal-to-epd/activity-status.yaml"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		s := strings.ReplaceAll(string(b), "poll_interval: 5s", "poll_interval: 50ms")
		os.WriteFile(filepath.Join(dir, filepath.Base(f)), []byte(s), 0o644)
	}
	rs := runRoutes(t, dir, n)

	var hook string
	for _, r := range rs {
		if in, ok := r.Input.Adapter.(*kphttp.Inbound); ok {
			hook = "http://" + in.Addr() + "/hooks/rom"
		}
	}
	body, _ := os.ReadFile("rom-to-koppeltaal/testdata/completed.json")
	req, _ := http.NewRequest(http.MethodPost, hook, strings.NewReader(string(body)))
	req.Header.Set("Authorization", "Bearer rom-demo-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("webhook: %s", resp.Status)
	}

	waitUntil(t, "the EPD received the activity status", func() bool { return epd.Activities()["act-5001"] != nil })
	got := epd.Activities()["act-5001"]
	if got["status"] != "Completed" || got["patient"] != "1001" || got["reported_by"] != "ROM bridge" {
		t.Fatalf("EPD got %v", got)
	}
	// The mailbox message is acknowledged Success once the EPD call and the archive line succeeded.
	epdClient := &client.Client{BaseURL: n.base, Username: koppeltaal.DemoEPDUser, Password: koppeltaal.DemoEPDPassword}
	waitUntil(t, "Success acknowledgement", func() bool {
		res, err := epdClient.Search(context.Background(), url.Values{"ProcessingStatus": {"Success"}, "event": {"UpdateCarePlanActivityStatus"}, "_summary": {"true"}})
		return err == nil && len(res.Entries) == 1
	})
	// The EPD table got the row (upsert by activity).
	epdDB, err := sql.Open("sqlite", filepath.Join(dir, "epd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer epdDB.Close()
	var status, patient string
	if err := epdDB.QueryRow(`SELECT status, patient FROM activity_status WHERE activity = 'act-5001'`).Scan(&status, &patient); err != nil || status != "Completed" || patient != "1001" {
		t.Fatalf("EPD table: %q %q %v", status, patient, err)
	}
	archive := waitFile(t, filepath.Join(dir, "archive", "activity-status.ndjson"))
	if !strings.Contains(archive, `"act-5001"`) {
		t.Fatalf("archive: %s", archive)
	}
}

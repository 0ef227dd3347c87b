package api_test

import (
	"bytes"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// A refused POST is logged with who sent it, which message and why (issue 14, defect 10: a 409 showed only
// as "http request status=409"). Resource URLs name patients, so they stay out of the line.
func TestRejectedPostIsLoggedWithSenderMessageAndReason(t *testing.T) {
	var logs testkit.Buffer
	st := storetest.Backend{Name: "sqlite", DSN: t.TempDir() + "/kp.db"}.Open(t)
	var srv *api.Server
	ts := apitest.NewServer(t, func(public string) http.Handler {
		cfg := fastHashes(ericTest())
		cfg.PublicURL = public
		var err error
		if srv, err = api.New(ctx, api.Options{Store: st, Config: cfg, Logger: slog.New(slog.NewJSONHandler(&logs, nil))}); err != nil {
			t.Fatal(err)
		}
		r := chi.NewRouter()
		srv.Mount(r)
		return r
	})
	h := &harness{t: t, st: st, srv: srv, ts: ts}
	body := fixture(t, "examples/bv-step1-createorupdatecareplan-request.xml")
	post := func(b []byte) reply {
		return h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "emhp", pass: "pw-emhp", body: b})
	}
	if r := post(body); r.Status != http.StatusOK {
		t.Fatalf("first post: %d %s", r.Status, r)
	}
	// The same resources under a new message identifier, without versions: an update that names no version.
	again := bytes.ReplaceAll(body, []byte("299b2931-7e7c-46ab-abe1-1bea66c8d3ec"), []byte("0b6f3f4e-5d43-4a53-9f0e-3c1b8f1d2a77"))
	if r := post(again); r.Status != http.StatusConflict {
		t.Fatalf("update without version: %d %s", r.Status, r)
	}
	var found map[string]any
	for _, l := range logs.Lines() {
		if l["msg"] == "koppeltaal: message rejected" {
			found = l
		}
	}
	if found == nil {
		t.Fatalf("no rejection logged:\n%s", logs.String())
	}
	want := map[string]any{"level": "WARN", "sender": "emhp", "message_identifier": "0b6f3f4e-5d43-4a53-9f0e-3c1b8f1d2a77",
		"event": "CreateOrUpdateCarePlan", "refusal": "conflict", "reason": koppeltaal.TextFocalWithoutVersion}
	for k, v := range want {
		if found[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, found[k], v, found)
		}
	}
	if strings.Contains(logs.String(), "/Patient/") && strings.Contains(found["reason"].(string), "/Patient/") {
		t.Errorf("a patient URL in the rejection line: %v", found)
	}
}

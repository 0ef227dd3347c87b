package api_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

func sqliteOnly(t *testing.T) storetest.Backend {
	return storetest.Backend{Name: "sqlite", DSN: t.TempDir() + "/kp.db"}
}

func TestMetadata(t *testing.T) {
	h := newHarness(t, sqliteOnly(t), twoDomains())
	r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/metadata"})
	if r.Status != 200 || !bytes.HasPrefix(r.Body, []byte("<Conformance")) {
		t.Fatalf("XML metadata must start with <Conformance: %d %.80s", r.Status, r.Body)
	}
	for _, accept := range []string{"application/json", "application/json, text/javascript, */*; q=0.01", ""} {
		path := "/FHIR/Koppeltaal/metadata"
		if accept == "" {
			path += "?_format=json"
		}
		r := h.do(req{method: "GET", path: path, accept: accept})
		if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("accept %q: Content-Type %q", accept, r.Header.Get("Content-Type"))
		}
		c := resourceOf(t, r)
		if c.Str("name") != "Koppeltaal" || c.Str("version") == "" || c.Str("fhirVersion") != "0.0.82" {
			t.Fatalf("conformance fields: %s", r)
		}
		sec := c.Get("rest", "security")
		for ext, path := range map[string]string{koppeltaal.ExtConformanceAuthorize: "/OAuth2/Koppeltaal/Authorize",
			koppeltaal.ExtConformanceToken: "/OAuth2/Koppeltaal/Token", koppeltaal.ExtConformanceLaunch: "/OAuth2/Koppeltaal/Launch"} {
			if got := sec.Extension(ext).ExtensionValue().Str(); got != h.ts.URL+path {
				t.Fatalf("%s = %q, want %q", ext, got, h.ts.URL+path)
			}
		}
	}
}

// TestSoapUIAcknowledgement: the SoapUI regression body (XML, application/xml) acknowledges a claimed message.
func TestSoapUIAcknowledgement(t *testing.T) {
	h := newHarness(t, sqliteOnly(t), twoDomains())
	if r := postAs(h, "portal@a", "pa", patientMessage("A", "https://a.example/Patient/1"), dstu1.FormatXML); r.Status != 200 {
		t.Fatal(r)
	}
	msg := bundleOf(t, claim(h, "game@a", "ga", dstu1.FormatXML))
	r := h.do(req{method: "PUT", path: strings.TrimPrefix(msg.Entries[0].ID, h.ts.URL), user: "game@a", pass: "ga",
		accept: "application/xml", ctype: "application/xml", body: fixture(t, "examples/messageheader-put-processingstatus-success-soapui.repaired.xml")})
	if r.Status != 200 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/xml+fhir") {
		t.Fatalf("SoapUI PUT: %d %s", r.Status, r)
	}
	if ps, _ := dstu1.AsMessageHeader(resourceOf(t, r)).ProcessingStatus(); ps.Status != "Success" {
		t.Fatalf("status after SoapUI PUT: %+v", ps)
	}
}

// TestSweeper: an unacknowledged claim returns to New after the claim timeout,
// and after max_retries claims the entry ends MaximumRetriesExceeded.
func TestSweeper(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		cfg := twoDomains()
		cfg.ClaimTimeout, cfg.MaxRetries = time.Minute, 3
		h := newHarness(t, b, cfg)
		svc := h.srv.Service()
		now := time.Now()
		svc.SetClock(func() time.Time { return now })
		if r := postAs(h, "portal@a", "pa", patientMessage("A", "https://a.example/Patient/1"), dstu1.FormatJSON); r.Status != 200 {
			t.Fatal(r)
		}
		var id string
		for cycle := 1; cycle <= 3; cycle++ {
			msg := bundleOf(t, claim(h, "game@a", "ga", dstu1.FormatJSON))
			if len(msg.Entries) == 0 {
				t.Fatalf("cycle %d: nothing to claim", cycle)
			}
			id = msg.Entries[0].ID
			if r, err := svc.Sweep(ctx); err != nil || r.Requeued+r.MaxRetries != 0 {
				t.Fatalf("cycle %d: sweep before the timeout changed %+v (%v)", cycle, r, err)
			}
			now = now.Add(2 * time.Minute)
			r, err := svc.Sweep(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if cycle < 3 && r.Requeued != 1 || cycle == 3 && r.MaxRetries != 1 {
				t.Fatalf("cycle %d: sweep = %+v", cycle, r)
			}
		}
		if msg := bundleOf(t, claim(h, "game@a", "ga", dstu1.FormatJSON)); len(msg.Entries) != 0 {
			t.Fatal("an entry past max retries was handed out again")
		}
		r := h.do(req{method: "GET", path: strings.TrimPrefix(id, h.ts.URL), user: "game@a", pass: "ga", accept: "application/json"})
		if ps, _ := header(t, bundleOf(t, r)).ProcessingStatus(); ps.Status != "MaximumRetriesExceeded" {
			t.Fatalf("final status %q", ps.Status)
		}
		if r := ack(h, "game@a", "ga", id, "Success", "", dstu1.FormatJSON); r.Status != http.StatusConflict {
			t.Fatalf("ack after MaximumRetriesExceeded: %d %s", r.Status, r)
		}
	})
}

// TestPanicIsAnOperationOutcome: even a crashing handler answers a JSON client in JSON.
func TestPanicIsAnOperationOutcome(t *testing.T) {
	st := sqliteOnly(t).Open(t)
	cfg := fastHashes(twoDomains())
	cfg.PublicURL = "http://koppeltaal.test" // no link is looked at
	srv, err := api.New(ctx, api.Options{Store: st, Config: cfg, Extensions: []func(*api.Server, chi.Router){
		func(_ *api.Server, r chi.Router) {
			r.Get("/boom", func(http.ResponseWriter, *http.Request) { panic("boom") })
		},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()
	h := &harness{t: t, st: st, srv: srv, ts: ts}
	r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/boom", accept: "application/json"})
	if r.Status != 500 || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") || len(outcome(t, r)) != 1 {
		t.Fatalf("panic reply: %d %q %s", r.Status, r.Header.Get("Content-Type"), r)
	}
}

// TestSloppyPaths: a trailing slash still reaches the endpoint.
func TestSloppyPaths(t *testing.T) {
	h := newHarness(t, sqliteOnly(t), twoDomains())
	for _, p := range []string{"/FHIR/Koppeltaal/metadata/", "/FHIR/Koppeltaal/metadata"} {
		if r := h.do(req{method: "GET", path: p}); r.Status != 200 || !bytes.HasPrefix(r.Body, []byte("<Conformance")) {
			t.Errorf("GET %s: %d %.60s", p, r.Status, r.Body)
		}
	}
	r := postAs(h, "portal@a", "pa", patientMessage("A", "https://a.example/Patient/1"), dstu1.FormatJSON)
	if r.Status != 200 {
		t.Fatal(r)
	}
	if r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search/?_query=MessageHeader.GetNextNewAndClaim", user: "game@a", pass: "ga"}); r.Status != 200 || len(bundleOf(t, r).Entries) != 2 {
		t.Errorf("claim with trailing slash: %d %s", r.Status, r)
	}
}

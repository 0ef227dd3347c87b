package api_test

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestBodiesInFlightAreBounded (issue 16 item 3): while a request still
// sending its body holds nearly all of koppeltaal.max_body_bytes_in_flight
// (its Content-Length is taken before the body is read), a POST waits a
// second and gets 503 with Retry-After and an OperationOutcome in its own
// format, counted, with nothing stored; once the first request is over, the
// same message is stored. (cmd/koppelpoort TestServeBodiesInFlight measures
// the memory of a real server under 32 parallel 9.5 MB POSTs.)
func TestBodiesInFlightAreBounded(t *testing.T) {
	b := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}
	cfg := twoDomains() // max_body_bytes 64 KiB
	cfg.MaxBodyBytesInFlight = 64 << 10
	reg := prometheus.NewRegistry()
	h := newHarnessRegistering(t, b.Open(t), cfg, reg)

	// A client announcing 65,000 bytes that sends 10 and stalls.
	stalled, send := io.Pipe()
	hr, _ := http.NewRequest("POST", h.ts.URL+"/FHIR/Koppeltaal/Mailbox", stalled)
	hr.ContentLength = 65_000
	hr.SetBasicAuth("portal@a", "pa")
	hr.Header.Set("Content-Type", "application/json+fhir")
	firstDone := make(chan int, 1)
	go func() {
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			firstDone <- 0
			return
		}
		resp.Body.Close()
		firstDone <- resp.StatusCode
	}()
	if _, err := send.Write([]byte(`{"resource`)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for gaugeValue(t, reg, "koppeltaal_request_body_bytes_in_flight") != 65_000 {
		if time.Now().After(deadline) {
			t.Fatalf("bytes in flight %v, want the stalled request's 65000", gaugeValue(t, reg, "koppeltaal_request_body_bytes_in_flight"))
		}
		time.Sleep(10 * time.Millisecond)
	}

	before := h.messageCount()
	msg := carePlanOfSize("A", 10) // over the 536 bytes left
	for _, f := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
		start := time.Now()
		r := postAs(h, "portal@a", "pa", msg, f)
		if r.Status != http.StatusServiceUnavailable || r.Header.Get("Retry-After") != "2" {
			t.Fatalf("%v POST beside a stalled 65,000-byte body: %d Retry-After %q %s", f, r.Status, r.Header.Get("Retry-After"), r)
		}
		if fmtOf(t, r) != f || !strings.Contains(strings.Join(outcome(t, r), " "), "send this one again unchanged") {
			t.Fatalf("%v 503: %s", f, r)
		}
		if waited := time.Since(start); waited < 900*time.Millisecond {
			t.Fatalf("refused after %s, want a wait of a second first", waited)
		}
	}
	if got := h.messageCount(); got != before {
		t.Fatalf("%d messages stored by refused POSTs", got-before)
	}
	if got := counterValue(t, reg, "koppeltaal_request_bodies_refused_total"); got != 2 {
		t.Fatalf("refusals counted: %v, want 2", got)
	}

	_ = send.CloseWithError(io.ErrUnexpectedEOF) // the stalled client gives up
	<-firstDone
	deadline = time.Now().Add(10 * time.Second)
	for gaugeValue(t, reg, "koppeltaal_request_body_bytes_in_flight") != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the stalled request's bytes were not given back")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := postAs(h, "portal@a", "pa", msg, dstu1.FormatJSON); r.Status != http.StatusOK {
		t.Fatalf("the refused message sent again: %d %s", r.Status, r)
	}
	if got := h.messageCount(); got != before+1 {
		t.Fatalf("%d messages stored, want 1", got-before)
	}
}

// gaugeValue reads a registered gauge by name.
func gaugeValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

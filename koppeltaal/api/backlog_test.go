package api_test

import (
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// gauge reads one labelled series of a gathered metric family (-1 when it does not exist).
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if v, ok := labels[l.GetName()]; ok && v != l.GetValue() {
					continue next
				}
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// The mailbox gauges say what waits per instance and for how long, 0 for an empty mailbox from the start
// (issue 14: gauges for the backlog per mailbox and the age of the oldest waiting item).
func TestMailboxBacklogGauges(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		reg := prometheus.NewRegistry()
		h := newHarness(t, b, ericTest())
		reg.MustRegister(koppeltaal.NewBacklogCollector(h.st, slog.New(slog.DiscardHandler)))
		game := map[string]string{"domain": "EricTest", "instance": "game"}
		if w := gauge(t, reg, "koppelpoort_mailbox_waiting", game); w != 0 {
			t.Fatalf("empty mailbox: waiting %v, want a 0 series", w)
		}
		r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "emhp", pass: "pw-emhp",
			body: fixture(t, "examples/bv-step1-createorupdatecareplan-request.xml")})
		if r.Status != http.StatusOK {
			t.Fatalf("post: %d %s", r.Status, r)
		}
		time.Sleep(11 * time.Second / 10) // past a second, so the age is visible; the cache is per collector
		reg2 := prometheus.NewRegistry()
		reg2.MustRegister(koppeltaal.NewBacklogCollector(h.st, slog.New(slog.DiscardHandler)))
		if w := gauge(t, reg2, "koppelpoort_mailbox_waiting", game); w != 1 {
			t.Errorf("after a post: waiting %v, want 1", w)
		}
		if age := gauge(t, reg2, "koppelpoort_mailbox_oldest_waiting_seconds", game); age < 1 || age > 60 {
			t.Errorf("oldest waiting %vs, want about a second", age)
		}
		if w := gauge(t, reg2, "koppelpoort_mailbox_waiting", map[string]string{"domain": "Other", "instance": "spy"}); w != 0 {
			t.Errorf("another domain's mailbox: %v, want 0", w)
		}
		if r := claim(h, "game", "pw-game", dstu1.FormatXML); r.Status != http.StatusOK {
			t.Fatalf("claim: %d", r.Status)
		}
		reg3 := prometheus.NewRegistry()
		reg3.MustRegister(koppeltaal.NewBacklogCollector(h.st, slog.New(slog.DiscardHandler)))
		if w, age := gauge(t, reg3, "koppelpoort_mailbox_waiting", game), gauge(t, reg3, "koppelpoort_mailbox_oldest_waiting_seconds", game); w != 0 || age != 0 {
			t.Errorf("after the claim: waiting %v, oldest %v, want 0 and 0", w, age)
		}
	})
}

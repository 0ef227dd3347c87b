package examples_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
)

// TestEPDExportAgainSendsOnlyWhatChanged is change detection (skip_unchanged, issue 14 defect 27) on the
// EPD example: the same export dropped again sends nothing and parks no second dead letter, each of its
// patients counted as unchanged; once the hashes are forgotten (forget-sent) it sends both again; an export
// where one patient changed sends that one only.
func TestEPDExportAgainSendsOnlyWhatChanged(t *testing.T) {
	n := ktServer(t)
	dir := copyExample(t, "epd-to-koppeltaal")
	reg := prometheus.NewRegistry()
	runRoutesWith(t, dir, n, reg)
	game := &client.Client{BaseURL: n.base, Username: koppeltaal.DemoGameUser, Password: koppeltaal.DemoGamePassword}
	unchanged := func() float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "koppelpoort_route_unchanged_total" {
				continue
			}
			for _, m := range mf.Metric {
				labels := map[string]string{}
				for _, l := range m.Label {
					labels[l.GetName()] = l.GetValue()
				}
				if labels["route"] == "epd-patients" && labels["output"] == "koppeltaal" {
					return m.GetCounter().GetValue()
				}
			}
		}
		t.Fatal("no koppelpoort_route_unchanged_total{route=epd-patients,output=koppeltaal}")
		return 0
	}
	deadLetters := func() int {
		dl, err := runtime.ListDeadLetters(context.Background(), n.store, runtime.Filter{Route: "epd-patients"})
		if err != nil {
			t.Fatal(err)
		}
		return len(dl)
	}
	export := "@epd-to-koppeltaal/testdata/patienten_20261127.csv"

	drop(t, dir, "patienten_20261127.csv", export)
	claimAll(t, game, 2) // 1001 and 1004; 1002 is dropped, 1003 dead-lettered
	waitUntil(t, "the dead letter of 1003", func() bool { return deadLetters() == 1 })

	// The same export the next night: 1001 and 1004 are unchanged.
	drop(t, dir, "patienten_20261128.csv", export)
	waitUntil(t, "two unchanged patients", func() bool { return unchanged() == 2 })
	waitFile(t, filepath.Join(dir, "inbox", "done", "patienten_20261128.csv"))
	if m := claimOne(t, game); m != nil {
		t.Fatalf("an unchanged export sent %s", m.MessageHeader().EventCode())
	}
	if got := deadLetters(); got != 1 {
		t.Fatalf("%d dead letters after the same export again, want the one of 1003", got)
	}

	// An operator forgets what was sent (koppelpoort forget-sent --route epd-patients --yes): the same
	// export again sends both patients, although nothing changed.
	if err := n.store.Update(context.Background(), func(tx *store.Tx) error {
		forgot, err := tx.ForgetSentHashes(context.Background(), "epd-patients", "")
		if err == nil && forgot != 2 {
			t.Errorf("forgot %d hashes, want 2 (1001 and 1004)", forgot)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	drop(t, dir, "patienten_20261128-resend.csv", export)
	claimAll(t, game, 2)
	if got := unchanged(); got != 2 {
		t.Fatalf("unchanged = %v after the hashes were forgotten, want still 2", got)
	}

	// One patient changed (a new e-mail address): only that one is sent.
	drop(t, dir, "patienten_20261129.csv", strings.Replace(mustRead(t, export[1:]), "jan@example.nl", "jan.berg@example.nl", 1))
	got := claimAll(t, game, 1)
	if s := string(got[0].JSON()); !strings.Contains(s, "jan.berg@example.nl") {
		t.Fatalf("the message sent is not the changed patient: %.300s", s)
	}
	waitUntil(t, "1004 unchanged again", func() bool { return unchanged() == 3 })
	if m := claimOne(t, game); m != nil {
		t.Fatalf("an unchanged patient was sent again: %s", m.JSON())
	}
	if got := deadLetters(); got != 1 {
		t.Fatalf("%d dead letters, want 1", got)
	}
}

// claimOne claims as the demo game for a moment and returns the message, or nil when none came.
func claimOne(t *testing.T, c *client.Client) *dstu1.Bundle {
	t.Helper()
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		m, err := c.Claim(context.Background(), client.ClaimFilter{})
		if err != nil {
			t.Fatalf("claim: %v", err)
		}
		if m != nil {
			return m
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

package main

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/regress"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestRegressAgainstServe runs the whole Regression Test in process against `koppelpoort serve` (the demo
// domain, as a newcomer starts it) on SQLite and PostgreSQL, with what the suite needs for its optional
// cases set up: a short claim timeout and a webhook of the demo module pointing at the suite. Any failure
// not listed in .ci/regress-known-failures.txt fails the test.
func TestRegressAgainstServe(t *testing.T) {
	known, err := os.ReadFile("../../.ci/regress-known-failures.txt")
	if err != nil {
		t.Fatal(err)
	}
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		hook := testkit.FreeAddr(t)
		var kt *koppeltaal.Config
		base := serveDemo(t, b.DSN, func(cfg *config.Config) {
			kt = cfg.Koppeltaal
			kt.ClaimTimeout, kt.SweepInterval, kt.MaxRetries = 2*time.Second, 300*time.Millisecond, 2
			for i := range kt.Instances {
				if kt.Instances[i].Username == koppeltaal.DemoModuleUser {
					kt.Instances[i].Webhook = &koppeltaal.WebhookConfig{URL: "http://" + hook + "/koppeltaal/hook"}
				}
			}
		})
		rc := demoRegressConfig(base)
		rc.ClaimTimeout, rc.SweepInterval, rc.MaxRetries = kt.ClaimTimeout, time.Second, kt.MaxRetries
		rc.Webhook = &regress.Webhook{Username: koppeltaal.DemoModuleUser, Listen: hook}
		rep, err := regress.Run(context.Background(), regress.Options{Config: rc, Known: regress.ParseKnown(string(known))})
		if err != nil {
			t.Fatal(err)
		}
		var summary strings.Builder
		rep.WriteSummary(&summary)
		all, _ := rep.Counts()
		if all.Fail > 0 {
			t.Fatalf("regress against serve on %s:\n%s", b.Name, summary.String())
		}
		if all.Total() < 200 || all.Skip > 0 {
			t.Fatalf("regress on %s ran %d cases, %d skipped: with the claim timeout and the webhook set up all run\n%s",
				b.Name, all.Total(), all.Skip, summary.String())
		}
		last := summary.String()
		t.Logf("regress on %s: %s", b.Name, last[strings.LastIndex(last, "\nregress "):])
	})
}

// serveDemo runs serve in process, as without a configuration file (the demo domain) but on dsn and with
// change applied to the configuration, until the test ends; it returns the server's root URL.
func serveDemo(t *testing.T, dsn string, change func(*config.Config)) string {
	t.Helper()
	cfg := config.Default()
	cfg.Server.Addr, cfg.Store.DSN = testkit.FreeAddr(t), dsn
	if change != nil {
		change(cfg)
	}
	base := "http://" + cfg.Server.Addr
	var logs testkit.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, io.Discard, &logs, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return base
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("serve did not answer %s/healthz within 20s; log:\n%s", base, logs.String())
	return ""
}

// TestRegressExampleConfigIsTheDemo keeps the configuration file --help shows equal to the accounts
// koppelpoort regress uses by default (those of the demo domain).
func TestRegressExampleConfigIsTheDemo(t *testing.T) {
	path := filepath.Join(t.TempDir(), "regress.yaml")
	if err := os.WriteFile(path, []byte(regress.ExampleConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := regress.LoadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	want := demoRegressConfig(koppeltaal.DemoRoot)
	want.Target = ""
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("regress.example.yaml:\n%+v\nthe demo domain:\n%+v", got, want)
	}
}

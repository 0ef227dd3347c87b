package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

const healthRoute = `name: hook
input:
  http: {path: /hook, listen: %ADDR%, auth: none}
transforms:
  out:
    fields: {id: record.id}
retry: {max_attempts: 1000, backoff: 100ms, max_backoff: 200ms}
health: {failing_after: 1s}
outputs:
  - name: epd
    http: {url: %EPD%/results, method: POST}
`

const healthConfig = `store: {dsn: ./kp.db}
log: {level: info}
routes: [r.yaml]
koppeltaal:
  domains: [{name: D}]
  applications: [{id: Game, name: Game, roles: [Game]}]
  instances: [{application: Game, domain: D, username: game@d, password: pw}]
`

// With a route's target down, /readyz turns not ready once the output has been failing longer than the
// route's health.failing_after, and the backlog gauges rise; with the target back, ready again and the
// backlog drains. Every labelled series is there at 0 from the start (issue 14, defect 11: readiness and
// metrics that tell the truth).
func TestReadinessAndGaugesFollowAFailingOutput(t *testing.T) {
	var down atomic.Bool
	epd := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			http.Error(w, "restarting", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer epd.Close()
	dir := t.TempDir()
	hook := testkit.FreeAddr(t)
	route := strings.NewReplacer("%ADDR%", hook, "%EPD%", epd.URL).Replace(healthRoute)
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(route), 0o644)
	os.WriteFile(filepath.Join(dir, "kp.yaml"), []byte(healthConfig), 0o600)
	base, _, _, stderr := startBinary(t, dir, nil, "--config", filepath.Join(dir, "kp.yaml"))

	metrics := getBody(t, base+"/metrics")
	for _, want := range []string{`koppelpoort_route_records_in_total{route="hook"} 0`,
		`koppelpoort_route_dead_letters_total{route="hook",stage="transform"} 0`,
		`koppelpoort_route_deliveries_out_total{output="epd",route="hook"} 0`,
		`koppelpoort_route_delivery_retries_total{output="epd",route="hook"} 0`,
		`koppelpoort_route_deliveries_waiting{output="epd",route="hook"} 0`,
		`koppelpoort_route_output_failing_seconds{output="epd",route="hook"} 0`} {
		if !strings.Contains(metrics, want+"\n") {
			t.Errorf("/metrics at start lacks %s", want)
		}
	}
	if code, body := getStatus(t, base+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz at start: %d %s", code, body)
	}

	down.Store(true)
	post := func(id string) {
		t.Helper()
		resp, err := http.Post("http://"+hook+"/hook", "application/json", strings.NewReader(`{"id": "`+id+`"}`))
		if err != nil || resp.StatusCode != http.StatusAccepted {
			t.Fatalf("POST: %v %v", err, resp)
		}
		resp.Body.Close()
	}
	post("a")
	waitHTTP(t, base+"/readyz", http.StatusServiceUnavailable, "route hook: output epd has been failing for", stderr)
	metrics = getBody(t, base+"/metrics")
	if !strings.Contains(metrics, `koppelpoort_route_deliveries_waiting{output="epd",route="hook"} 1`+"\n") {
		t.Errorf("backlog gauge did not rise:\n%s", grepLines(metrics, "koppelpoort_route_"))
	}
	for _, name := range []string{"koppelpoort_route_output_failing_seconds", "koppelpoort_route_oldest_waiting_seconds"} {
		if v := gauge(metrics, name+`{output="epd",route="hook"}`); v < 1 {
			t.Errorf("%s = %v, want at least the 1s failing_after:\n%s", name, v, grepLines(metrics, "koppelpoort_route_"))
		}
	}

	down.Store(false)
	waitHTTP(t, base+"/readyz", http.StatusOK, `"routes":"ok"`, stderr)
	if m := getBody(t, base+"/metrics"); !strings.Contains(m, `koppelpoort_route_deliveries_waiting{output="epd",route="hook"} 0`+"\n") {
		t.Errorf("backlog gauge after recovery:\n%s", grepLines(m, "koppelpoort_route_"))
	}
	checkAlertRules(t, getBody(t, base+"/metrics"))
}

// checkAlertRules: docs/prometheus-alerts.yaml is a Prometheus rules file (YAML, groups of rules with alert
// and expr), and every metric its expressions name is on a running server's /metrics.
func checkAlertRules(t *testing.T, metrics string) {
	t.Helper()
	b, err := os.ReadFile("../../docs/prometheus-alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Groups []struct {
			Name  string `yaml:"name"`
			Rules []struct {
				Alert       string            `yaml:"alert"`
				Expr        string            `yaml:"expr"`
				For         string            `yaml:"for"`
				Labels      map[string]string `yaml:"labels"`
				Annotations map[string]string `yaml:"annotations"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil {
		t.Fatalf("docs/prometheus-alerts.yaml: %v", err)
	}
	names := regexp.MustCompile(`\bkoppelpoort_[a-z_]+\b`)
	n := 0
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" || r.Annotations["summary"] == "" {
				t.Errorf("group %s: rule %q lacks alert, expr or summary", g.Name, r.Alert)
			}
			if r.For != "" {
				if _, err := time.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for %q: %v", r.Alert, r.For, err)
				}
			}
			for _, m := range names.FindAllString(r.Expr, -1) {
				n++
				if !regexp.MustCompile(`(?m)^` + m + `[{ ]`).MatchString(metrics) {
					t.Errorf("alert %s names %s, which /metrics does not have", r.Alert, m)
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no metrics named in docs/prometheus-alerts.yaml")
	}
}

func getStatus(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func getBody(t *testing.T, url string) string {
	t.Helper()
	_, body := getStatus(t, url)
	return body
}

// waitHTTP polls url until it answers code with a body holding want (generous deadline: a busy machine).
func waitHTTP(t *testing.T, url string, code int, want string, log *testkit.Buffer) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got, body := getStatus(t, url)
		if got == code && strings.Contains(body, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d %s, want %d with %q\nlog:\n%s", url, got, body, code, want, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func grepLines(s, prefix string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(l, prefix) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// gauge returns the value of the series (name with labels) in a /metrics text, or -1.
func gauge(metrics, series string) float64 {
	for _, l := range strings.Split(metrics, "\n") {
		if v, ok := strings.CutPrefix(l, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}

package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeMethodsAndHeaders (issue 16 item 10): an unknown or lower-case
// method gets 405 with an Allow header and an error body in the API's format,
// and every reply says no-store and nosniff.
func TestServeMethodsAndHeaders(t *testing.T) {
	base, _, _, _ := startBinary(t, t.TempDir(), nil)
	do := func(method, path string, basic bool, accept string) (*http.Response, []byte) {
		t.Helper()
		r, err := http.NewRequest(method, base+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if basic {
			r.SetBasicAuth("portal@demo", "demo-portal")
		}
		if accept != "" {
			r.Header.Set("Accept", accept)
		}
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}
	for _, method := range []string{"FOO", "PROPFIND", "get", "DELETE", "PATCH"} {
		for _, accept := range []string{"application/json", ""} {
			resp, body := do(method, "/FHIR/Koppeltaal/MessageHeader/1", true, accept)
			ct := resp.Header.Get("Content-Type")
			wantCT := map[string]string{"application/json": "application/json", "": "application/xml+fhir"}[accept]
			if resp.StatusCode != http.StatusMethodNotAllowed || !strings.HasPrefix(ct, wantCT) ||
				!strings.Contains(string(body), "OperationOutcome") || !strings.Contains(resp.Header.Get("Allow"), "GET") ||
				!strings.Contains(resp.Header.Get("Allow"), "PUT") {
				t.Errorf("%s (Accept %q): %d %q Allow %q %s", method, accept, resp.StatusCode, ct, resp.Header.Get("Allow"), body)
			}
		}
		resp, body := do(method, "/OAuth2/Koppeltaal/Token", false, "")
		var e map[string]string
		if resp.StatusCode != http.StatusMethodNotAllowed || json.Unmarshal(body, &e) != nil || e["error"] == "" ||
			!strings.Contains(resp.Header.Get("Allow"), "POST") {
			t.Errorf("%s on Token: %d Allow %q %s", method, resp.StatusCode, resp.Header.Get("Allow"), body)
		}
	}
	// Every reply: nosniff; Koppeltaal and OAuth replies (patient data, tokens, codes): no-store.
	for _, c := range []struct {
		path  string
		basic bool
	}{
		{"/FHIR/Koppeltaal/metadata", false},
		{"/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", true},
		{"/FHIR/Koppeltaal/MessageHeader/999", true},
		{"/FHIR/Koppeltaal/MessageHeader/_search", false},
		{"/OAuth2/Koppeltaal/Launch?client_id=DemoGame&patient=https://portal.example/Patient/1", true},
		{"/OAuth2/Koppeltaal/Token", false},
	} {
		resp, _ := do("GET", c.path, c.basic, "application/json")
		if resp.Header.Get("X-Content-Type-Options") != "nosniff" || resp.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("GET %s: %d Cache-Control %q X-Content-Type-Options %q", c.path, resp.StatusCode,
				resp.Header.Get("Cache-Control"), resp.Header.Get("X-Content-Type-Options"))
		}
	}
	if resp, _ := do("GET", "/healthz", false, ""); resp.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("/healthz without nosniff")
	}
}

// TestServeMetricsProtected (issue 16 item 10): /metrics can require a
// bearer token, or move to a listen address of its own.
func TestServeMetricsProtected(t *testing.T) {
	write := func(t *testing.T, body string) (string, string) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "koppelpoort.yaml")
		if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return dir, cfg
	}
	get := func(t *testing.T, u, token string) int {
		r, _ := http.NewRequest("GET", u, nil)
		if token != "" {
			r.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	t.Run("token", func(t *testing.T) {
		dir, cfg := write(t, "server:\n  metrics:\n    token: ${METRICS_TOKEN}\n")
		base, _, _, _ := startBinary(t, dir, []string{"METRICS_TOKEN=s3cret-metrics"}, "--config", cfg)
		if got := get(t, base+"/metrics", ""); got != http.StatusUnauthorized {
			t.Fatalf("/metrics without the token: %d", got)
		}
		if got := get(t, base+"/metrics", "wrong"); got != http.StatusUnauthorized {
			t.Fatalf("/metrics with a wrong token: %d", got)
		}
		if got := get(t, base+"/metrics", "s3cret-metrics"); got != 200 {
			t.Fatalf("/metrics with the token: %d", got)
		}
	})
	t.Run("own address", func(t *testing.T) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		maddr := ln.Addr().String()
		ln.Close()
		dir, cfg := write(t, "server:\n  metrics:\n    addr: "+maddr+"\n")
		base, _, _, _ := startBinary(t, dir, nil, "--config", cfg)
		if got := get(t, base+"/metrics", ""); got != http.StatusNotFound {
			t.Fatalf("/metrics on the main port: %d", got)
		}
		if got := get(t, "http://"+maddr+"/metrics", ""); got != 200 {
			t.Fatalf("/metrics on its own address: %d", got)
		}
	})
}

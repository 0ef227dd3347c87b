package main

import (
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// hostile sends a request with a forged Host and forwarding headers.
func hostile(t *testing.T, method, u string, basic [2]string) *http.Response {
	t.Helper()
	r, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	r.Host = "evil.example"
	r.Header.Set("X-Forwarded-Proto", "https")
	r.Header.Set("X-Forwarded-Host", "evil.example")
	r.Header.Set("Forwarded", "host=evil.example;proto=https")
	r.Header.Set("Accept", "application/json")
	if basic[0] != "" {
		r.SetBasicAuth(basic[0], basic[1])
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(r)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// TestServeIgnoresTheHostHeader (issue 16 item 9): the links a server writes
// come from its configuration — the demo's listen address, or
// server.public_url — never from the request's Host or X-Forwarded-*
// headers, which anyone can send.
func TestServeIgnoresTheHostHeader(t *testing.T) {
	check := func(t *testing.T, base, public string) {
		resp := hostile(t, "GET", base+"/FHIR/Koppeltaal/metadata", [2]string{})
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || strings.Contains(string(body), "evil.example") ||
			!strings.Contains(string(body), `"valueUri":"`+public+`/OAuth2/Koppeltaal/Authorize"`) {
			t.Fatalf("metadata with a forged Host: %d %s", resp.StatusCode, body)
		}
		q := url.Values{"client_id": {"DemoGame"}, "patient": {"https://portal.example/Patient/1"}, "resource": {"demo-game"}}
		resp = hostile(t, "GET", base+"/OAuth2/Koppeltaal/Launch?"+q.Encode(), [2]string{"portal@demo", "demo-portal"})
		resp.Body.Close()
		loc, err := url.Parse(resp.Header.Get("Location"))
		if resp.StatusCode != http.StatusFound || err != nil || loc.Query().Get("iss") != public+"/FHIR/Koppeltaal" {
			t.Fatalf("Launch with a forged Host: %d Location %q", resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	t.Run("demo: the listen address", func(t *testing.T) {
		base, _, _, _ := startBinary(t, t.TempDir(), nil)
		check(t, base, base)
	})
	t.Run("server.public_url", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "koppelpoort.yaml")
		if err := os.WriteFile(cfg, []byte("server:\n  public_url: https://kt.example.org\nkoppeltaal:\n  domains:\n    - name: D\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		base, _, _, _ := startBinary(t, dir, []string{"KOPPELPOORT_PUBLIC_URL="}, "--config", cfg)
		resp := hostile(t, "GET", base+"/FHIR/Koppeltaal/metadata", [2]string{})
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(body), "evil.example") || !strings.Contains(string(body), "https://kt.example.org/OAuth2/Koppeltaal/Authorize") {
			t.Fatalf("metadata with server.public_url: %d %s", resp.StatusCode, body)
		}
	})
	t.Run("all interfaces without public_url", func(t *testing.T) {
		dir := t.TempDir()
		cfg := filepath.Join(dir, "koppelpoort.yaml")
		if err := os.WriteFile(cfg, []byte("server:\n  addr: 0.0.0.0:18099\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if line := runFailing(t, nil, "serve", "--config", cfg); !strings.Contains(line, "server.public_url is required") {
			t.Fatalf("error line %q", line)
		}
	})
}

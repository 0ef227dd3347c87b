package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestHTTPLogCommand: a running server logs its requests in the database —
// caller, status, request id, the query without secrets — and `koppelpoort
// httplog` reads them back with its filters.
func TestHTTPLogCommand(t *testing.T) {
	dir := t.TempDir()
	base, _, _, _ := startBinary(t, dir, nil)
	get := func(path, user, pass string) (int, string) {
		req, _ := http.NewRequest("GET", base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("X-Request-Id")
	}
	status, okID := get("/FHIR/Koppeltaal/MessageHeader?_count=1", "portal@demo", "demo-portal")
	if status != 200 || okID == "" {
		t.Fatalf("search: %d, request id %q", status, okID)
	}
	if status, _ := get("/FHIR/Koppeltaal/MessageHeader", "portal@demo", "wrong"); status != 401 {
		t.Fatalf("wrong password: %d", status)
	}
	get("/OAuth2/Koppeltaal/Token?grant_type=refresh_token&refresh_token=very-secret-token", "", "")
	dsn := filepath.Join(dir, "koppelpoort-data", "koppelpoort.db")
	run := func(args ...string) string {
		cmd := newHTTPLogCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(append(args, "--dsn", dsn))
		if err := cmd.ExecuteContext(context.Background()); err != nil {
			t.Fatalf("httplog %v: %v", args, err)
		}
		return out.String()
	}
	// The rows are written in batches off the request path: wait for them.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(run("--path", "/OAuth2/"), "Token") {
		if time.Now().After(deadline) {
			t.Fatalf("the requests are not in the log within 30s:\n%s", run())
		}
		time.Sleep(100 * time.Millisecond)
	}
	out := run("--request-id", okID)
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"caller":{"kind":"instance","name":"portal@demo","domain":"Demo"}`) ||
		!strings.Contains(out, `"status":200`) || !strings.Contains(out, `"query":"_count=1"`) {
		t.Errorf("the search by request id:\n%s", out)
	}
	if out := run("--status", "4xx", "--path", "/FHIR/"); strings.Count(out, "\n") != 1 || !strings.Contains(out, `"status":401`) {
		t.Errorf("failed FHIR calls:\n%s", out)
	}
	if out := run("--caller", "portal@demo"); strings.Count(out, "\n") < 1 || strings.Contains(out, `"status":401`) {
		t.Errorf("by caller (the refused call has none):\n%s", out)
	}
	all := run("--all")
	if strings.Contains(all, "very-secret-token") || !strings.Contains(all, "refresh_token=REDACTED") {
		t.Errorf("the log keeps a secret from a query:\n%s", all)
	}
	if strings.Contains(all, "/healthz") {
		t.Errorf("probes are logged:\n%s", all)
	}
}

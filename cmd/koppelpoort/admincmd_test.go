package main

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminCreateUserThenLogin creates the first system administrator with the
// command, starts the server on the same store and logs in with it; the demo
// administrator of the embedded default logs in too.
func TestAdminCreateUserThenLogin(t *testing.T) {
	dir := t.TempDir()
	dsn := filepath.Join(dir, "kp.db")
	cfg := filepath.Join(dir, "koppelpoort.yaml")
	if err := os.WriteFile(cfg, []byte("koppeltaal:\n  domains: [{name: Prod}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	create := exec.Command(binPath, "admin", "create-user", "--config", cfg, "--dsn", dsn, "--username", "root-admin",
		"--name", "Root", "--role", "system", "--password-stdin")
	create.Stdin = strings.NewReader("a long enough password\n")
	out, err := create.CombinedOutput()
	if err != nil || !strings.Contains(string(out), `created system administrator "root-admin"`) {
		t.Fatalf("create-user: %v\n%s", err, out)
	}
	again := exec.Command(binPath, "admin", "create-user", "--dsn", dsn, "--username", "root-admin", "--role", "system")
	if out, err := again.CombinedOutput(); err == nil || !strings.Contains(string(out), "already exists") {
		t.Fatalf("second create-user of the same name: %v\n%s", err, out)
	}
	short := exec.Command(binPath, "admin", "create-user", "--dsn", dsn, "--username", "x", "--password-stdin")
	short.Stdin = strings.NewReader("short\n")
	if out, err := short.CombinedOutput(); err == nil || !strings.Contains(string(out), "at least 10 characters") {
		t.Fatalf("short password: %v\n%s", err, out)
	}
	tok := exec.Command(binPath, "admin", "create-token", "--dsn", dsn, "--username", "root-admin", "--name", "ci")
	tokOut, err := tok.Output()
	if err != nil || !strings.HasPrefix(string(tokOut), "kpat_") {
		t.Fatalf("create-token: %v %q", err, tokOut)
	}

	base, _, _, _ := startBinary(t, dir, nil, "--config", cfg, "--dsn", dsn)
	resp, err := http.Post(base+"/admin/session", "application/json",
		strings.NewReader(`{"username":"root-admin","password":"a long enough password"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("login of the created administrator: %d", resp.StatusCode)
	}
	req, _ := http.NewRequest("GET", base+"/admin/session", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tokOut)))
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("API token of the created administrator: %d", resp.StatusCode)
	}
}

// The Support API examples of docs/admin.md run as written, with curl, against the demo of serve: a token
// from admin create-token, then every command of the block must succeed (a literal run once got curl's
// exit 3 for filter[Domain], a 409 for a second DemoGame instance and a 409 for a configuration file's
// instance).
func TestAdminDocSupportAPIExamples(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	doc := string(must(os.ReadFile("../../docs/admin.md")))
	at := strings.Index(doc, `T="Authorization: Bearer $TOKEN"`)
	if at < 0 {
		t.Fatal("docs/admin.md has no Support API example block")
	}
	block := doc[at:]
	block = block[:strings.Index(block, "```")]
	dir := t.TempDir()
	base, _, _, _ := startBinary(t, dir, nil)
	tok, err := exec.Command(binPath, "admin", "create-token", "--dsn", filepath.Join(dir, "koppelpoort-data", "koppelpoort.db"),
		"--username", "admin", "--name", "doc-test").Output()
	if err != nil {
		t.Fatalf("create-token: %v", err)
	}
	// Each curl must get a 2xx (its body shown on failure); the doc's address is the test server's.
	script := "set -euo pipefail\ncurl() { command curl -sS --fail-with-body \"$@\"; echo; }\n" +
		strings.ReplaceAll(block, "http://127.0.0.1:8080", base)
	cmd := exec.Command("bash", "-c", script)
	cmd.Env = append(os.Environ(), "TOKEN="+strings.TrimSpace(string(tok)))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("docs/admin.md's Support API examples: %v\n%s", err, out)
	} else if !strings.Contains(string(out), `"Username":"quiz@demo"`) || strings.Count(string(out), `"password":`) != 2 {
		t.Errorf("the instance and its new password are not in the replies:\n%s", out)
	}
}

package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// These tests run the real binary as a newcomer would: built with go build,
// started as a child process, stopped with SIGTERM.

var binPath string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "koppelpoort-bin")
	if err != nil {
		panic(err)
	}
	binPath = filepath.Join(dir, "koppelpoort")
	// The binary as it is released (deploy/build.sh: the release flags, version and commit from git), so the
	// tests run what ships and the reproducibility test finds its packages compiled.
	build := exec.Command("bash", "../../deploy/build.sh", binPath)
	// As the development machines set it: no VCS stamp from the toolchain, so the version comes from build.sh.
	build.Env = append(os.Environ(), "GOFLAGS=-buildvcs=false")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		panic("deploy/build.sh: " + err.Error())
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// startBinary runs `koppelpoort serve args...` in dir and waits until /healthz answers.
func startBinary(t *testing.T, dir string, env []string, args ...string) (base string, cmd *exec.Cmd, stdout, stderr *testkit.Buffer) {
	t.Helper()
	return startBinaryWith(t, http.DefaultClient, "http", dir, env, args...)
}

// startBinaryWith is startBinary for a server reached with client on scheme (https: serve terminates TLS).
func startBinaryWith(t *testing.T, client *http.Client, scheme, dir string, env []string, args ...string) (base string, cmd *exec.Cmd, stdout, stderr *testkit.Buffer) {
	t.Helper()
	return startBinaryOf(t, binPath, client, scheme, dir, env, args...)
}

// startBinaryAt is startBinary with the binary bin (another build, to compare).
func startBinaryAt(t *testing.T, bin, dir string, env []string, args ...string) (base string, cmd *exec.Cmd, stdout, stderr *testkit.Buffer) {
	t.Helper()
	return startBinaryOf(t, bin, http.DefaultClient, "http", dir, env, args...)
}

func startBinaryOf(t *testing.T, bin string, client *http.Client, scheme, dir string, env []string, args ...string) (base string, cmd *exec.Cmd, stdout, stderr *testkit.Buffer) {
	t.Helper()
	addr := testkit.FreeAddr(t)
	cmd = exec.Command(bin, append([]string{"serve", "--addr", addr}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	stdout, stderr = &testkit.Buffer{}, &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
	base = scheme + "://" + addr
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := client.Get(base + "/healthz"); err == nil {
			resp.Body.Close()
			return base, cmd, stdout, stderr
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server did not answer /healthz within 20s\nstdout:\n%s\nstderr:\n%s", stdout, stderr)
	return
}

// waitForOutput waits until out holds want: the banner follows the bind, so
// /healthz (what startBinary waits for) can answer before it is written.
func waitForOutput(t *testing.T, out *testkit.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(out.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("output does not contain %q:\n%s", want, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestServeEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	base, cmd, stdout, stderr := startBinary(t, dir, nil)

	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s = %d", path, resp.StatusCode)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "koppelpoort-data", "koppelpoort.db")); err != nil {
		t.Errorf("embedded default did not create its SQLite database: %v", err)
	}
	waitForOutput(t, stdout, "portal@demo:demo-portal") // the demo credentials are printed
	// On another address than the Test Client's default server, the banner's command names it.
	waitForOutput(t, stdout, "A module at work: koppelpoort testclient --server "+base+"   (")
	// The Koppeltaal server is listed as the built-in route, at start and on /metrics.
	if !strings.Contains(stderr.String(), `"msg":"route","route":"koppeltaal"`) {
		t.Errorf("the built-in Koppeltaal route is not listed at start:\n%s", stderr)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`koppelpoort_route_info\{builtin="true",input="koppeltaal\.mailbox[^}]*route="koppeltaal"\} 1`).Match(metrics) {
		t.Errorf("/metrics lacks the built-in route:\n%s", metrics)
	}

	// Graceful shutdown on SIGTERM: exit status 0 and a "stopped" log line.
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, stderr)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20s of SIGTERM")
	}
	// Every log line is one JSON object.
	sc := bufio.NewScanner(bytes.NewReader(stderr.Bytes()))
	for sc.Scan() {
		if line := sc.Text(); !strings.HasPrefix(line, "{") {
			t.Errorf("log line is not JSON: %q", line)
		}
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Errorf("no stopped log line:\n%s", stderr)
	}
}

func TestServeRestartKeepsData(t *testing.T) {
	dir := t.TempDir()
	_, cmd, _, _ := startBinary(t, dir, nil)
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
	// A second start on the same data applies migrations and the demo config again without error.
	base, _, _, stderr := startBinary(t, dir, nil)
	resp, err := http.Get(base + "/readyz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("restart not ready: %v %v\n%s", resp, err, stderr)
	}
	resp.Body.Close()
}

// runFailing runs the binary, expects a quick failure with one clear error and returns its first line.
func runFailing(t *testing.T, env []string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%v did not fail within 30s", args)
	}
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("%v: want exit status 1, got %v", args, err)
	}
	// What a person reads: the error at the end of stderr, prefixed "koppelpoort: " — one line, or for a
	// problem in a YAML file that line followed by the offending source line and a caret under the column.
	lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
	i := len(lines) - 1
	for i > 0 && strings.HasPrefix(lines[i], "    ") && !strings.HasPrefix(lines[i], "koppelpoort: ") {
		i--
	}
	last := lines[i]
	if !strings.HasPrefix(last, "koppelpoort: ") || len(lines)-i > 1 && !strings.HasSuffix(strings.TrimRight(lines[len(lines)-1], " "), "^") {
		t.Fatalf("stderr does not end with the error: %q\nstderr:\n%s", last, stderr.String())
	}
	if strings.Contains(stderr.String(), "goroutine ") || strings.Contains(stderr.String(), "panic") {
		t.Fatalf("stack trace in output:\n%s", stderr.String())
	}
	return last
}

func TestServeMisspelledConfigKey(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "koppelpoort.yaml")
	if err := os.WriteFile(cfg, []byte("server:\n  addr: 127.0.0.1:0\nstroe:\n  dsn: x.db\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	line := runFailing(t, nil, "serve", "--config", cfg)
	for _, want := range []string{"koppelpoort.yaml:3:1: error:", `"stroe"`, `did you mean "store"`} {
		if !strings.Contains(line, want) {
			t.Errorf("error line %q does not contain %q", line, want)
		}
	}
}

func TestServeUnreachablePostgres(t *testing.T) {
	addr := testkit.FreeAddr(t) // nothing listens here
	line := runFailing(t, []string{"KOPPELPOORT_DSN=postgres://kp:secret-pw@" + addr + "/kp?sslmode=disable"}, "serve", "--addr", testkit.FreeAddr(t))
	if !strings.Contains(line, addr) || strings.Contains(line, "secret-pw") {
		t.Errorf("error line %q should name the address and hide the password", line)
	}
}

func TestExampleConfigLoads(t *testing.T) {
	getenv := func(k string) string {
		switch k {
		case "MD_PASSWORD", "GAME_PASSWORD":
			return "x"
		}
		return ""
	}
	if _, err := loadConfig(serveFlags{configPath: "../../docs/koppelpoort.example.yaml"}, getenv); err != nil {
		t.Fatalf("docs/koppelpoort.example.yaml: %v", err)
	}
}

// TestServeReadmeCurlWalkthrough runs the README's curl walk-through against the
// embedded default, with the sample messages of docs/curl: post, claim,
// acknowledge, the same post again (a retry), an empty claim, and a message
// with the ValidateOnly tag (checked, not stored: the portal's first claim is
// the patient of patient-message.json, not the ValidateOnly one's).
func TestServeReadmeCurlWalkthrough(t *testing.T) {
	base, _, _, _ := startBinary(t, t.TempDir(), nil)
	B := base + "/FHIR/Koppeltaal"
	file := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", "curl", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	do := func(method, url, user string, body []byte) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		name, pass, _ := strings.Cut(user, ":")
		req.SetBasicAuth(name, pass)
		req.Header.Set("Accept", "application/json")
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	const epd, portal = "epd@demo:demo-epd", "portal@demo:demo-portal"

	if st, body := do("POST", B+"/Mailbox", epd, file("patient-message-validate-only.json")); st != 200 ||
		!strings.Contains(body, `"OperationOutcome"`) || !strings.Contains(body, "The message is valid.") {
		t.Fatalf("ValidateOnly POST: %d %s", st, body)
	}
	issued := regexp.MustCompile(`Patient/1001/_history/[^"]+`)
	st, posted := do("POST", B+"/Mailbox", epd, file("patient-message.json"))
	version := issued.FindString(posted)
	if st != 200 || version == "" {
		t.Fatalf("POST: %d %s", st, posted)
	}
	st, body := do("GET", B+"/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", portal, nil)
	// The README takes N from the bundle as grep -o 'IID=[0-9]*' | cut -d= -f2 does.
	iid := regexp.MustCompile(`IID=([0-9]*)`).FindStringSubmatch(body)
	if st != 200 || iid == nil || !strings.Contains(body, "Patient/1001") {
		t.Fatalf("claim: %d %s", st, body)
	}
	if st, body := do("PUT", B+"/MessageHeader/"+iid[1], portal, file("ack-success.json")); st != 200 {
		t.Fatalf("acknowledge: %d %s", st, body)
	}
	if st, again := do("POST", B+"/Mailbox", epd, file("patient-message.json")); st != 200 || issued.FindString(again) != version {
		t.Fatalf("the same POST again: %d %s, want the first reply's %s", st, again, version)
	}
	if st, body := do("GET", B+"/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", portal, nil); st != 200 ||
		!strings.Contains(body, `"totalResults":"0"`) {
		t.Fatalf("claim after acknowledging: %d %s", st, body)
	}

	// The Storage Service section: store, search, delete.
	const game = "game@demo:demo-game"
	P := url.QueryEscape("https://epd.example.org/fhir/Koppeltaal/Patient/1001")
	if st, body := do("POST", B+"/Other?code=StorageItem", game, file("storage-item.json")); st != 201 || !strings.Contains(body, "StorageItem") {
		t.Fatalf("store an item: %d %s", st, body)
	}
	if st, body := do("GET", B+"/Other/_search?code=StorageItem&patient="+P+"&objectType=GameState&objectKey=progress", game, nil); st != 200 ||
		!strings.Contains(body, "eyJsZXZlbCI6M30=") || !strings.Contains(body, "Other/StorageItem:1/_history/") {
		t.Fatalf("search the item: %d %s", st, body)
	}
	if st, body := do("GET", B+"/Other/_search?code=StorageItem&patient="+P, portal, nil); st != 200 || !strings.Contains(body, `"totalResults":"0"`) {
		t.Fatalf("another instance searches the game's items: %d %s", st, body)
	}
	if st, body := do("DELETE", B+"/Other/StorageItem:1", game, nil); st != 204 {
		t.Fatalf("delete the item: %d %s", st, body)
	}
	// The Binary variant: the PNG in, the same bytes back from the Location the reply names (…/Binary/2).
	png := file("avatar.png")
	req, err := http.NewRequest("POST", B+"/Binary?objectType=Avatar&patient="+P, bytes.NewReader(png))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("game@demo", "demo-game")
	req.Header.Set("Content-Type", "image/png")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if loc := resp.Header.Get("Location"); resp.StatusCode != 201 || !strings.Contains(loc, "/Binary/2/_history/") {
		t.Fatalf("store the PNG: %d, Location %q (the README reads it back from …/Binary/2)", resp.StatusCode, loc)
	}
	req, _ = http.NewRequest("GET", B+"/Binary/2", nil)
	req.SetBasicAuth("game@demo", "demo-game")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	back, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(back, png) || resp.Header.Get("Content-Type") != "image/png" {
		t.Fatalf("read the PNG back: %d %q, %d bytes (want the %d stored)", resp.StatusCode, resp.Header.Get("Content-Type"), len(back), len(png))
	}
}

// A busy port stops serve before it says it is running and before it creates or migrates a database
// (issue 14, defects 1 and 25).
func TestServeBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binPath, "serve", "--addr", ln.Addr().String())
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err == nil {
		t.Fatal("serve on a busy port exited 0")
	}
	if strings.Contains(stdout.String(), "running") {
		t.Errorf("serve said it was running on a port it could not bind:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "koppelpoort: listen on "+ln.Addr().String()) {
		t.Errorf("no listen error:\n%s", stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "koppelpoort-data")); !os.IsNotExist(err) {
		t.Errorf("serve created its data directory before finding the port busy (stat: %v)", err)
	}
}

// A broken route stops serve with its position before the database is created or migrated (defect 25).
func TestServeBrokenRouteChangesNothing(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "kp.yaml"), []byte("store:\n  dsn: ./data/kp.db\nroutes: [r.yaml]\n"), 0o600)
	os.WriteFile(filepath.Join(dir, "r.yaml"), []byte("name: r\ninput:\n  http: {path: /in, auth: none}\noutputs:\n  - name: out\n    file: {dir: out, formt: json}\n"), 0o600)
	cmd := exec.Command(binPath, "serve", "--config", filepath.Join(dir, "kp.yaml"), "--addr", testkit.FreeAddr(t))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Fatalf("want exit status 1, got %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "koppelpoort: routes are not valid") || !strings.Contains(string(out), `r.yaml:6:22: error: file: unknown setting "formt"`) {
		t.Errorf("output:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "data")); !os.IsNotExist(err) {
		t.Errorf("serve created the database before it found the broken route (stat: %v)", err)
	}
}

// SIGHUP does not end serve (its default action would end the process at once, logging nothing).
func TestServeSIGHUPKeepsRunning(t *testing.T) {
	base, cmd, _, stderr := startBinary(t, t.TempDir(), nil)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), `"signal":"hangup"`) {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP not logged:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("serve ended after SIGHUP: %v\n%s", err, stderr)
	}
	resp.Body.Close()
}

// The banner of the embedded default names the store it really runs on and never its password (defect 18).
func TestServeBannerNamesStoreWithoutPassword(t *testing.T) {
	_, _, stdout, _ := startBinary(t, t.TempDir(), nil)
	waitForOutput(t, stdout, "running on SQLite ./koppelpoort-data/koppelpoort.db")
}

func TestServeBannerPostgresWithoutPassword(t *testing.T) {
	u, err := url.Parse(storetest.NewPostgres(t).DSN)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(u.User.Username(), "secret-pw") // trust auth: any password is accepted
	dsn := u.String()
	_, _, stdout, stderr := startBinary(t, t.TempDir(), []string{"KOPPELPOORT_DSN=" + dsn})
	waitForOutput(t, stdout, "running on ")
	out := stdout.String() + stderr.String()
	if strings.Contains(out, "secret-pw") {
		t.Errorf("the password is on the console:\n%s", out)
	}
	if !strings.Contains(stdout.String(), "running on PostgreSQL 127.0.0.1:") || strings.Contains(stdout.String(), "SQLite") {
		t.Errorf("banner names the wrong store:\n%s", stdout)
	}
}

// /metrics of a running server has the mailbox gauges of every demo instance from the start.
func TestServeMetricsHaveMailboxGauges(t *testing.T) {
	base, _, _, _ := startBinary(t, t.TempDir(), nil)
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`koppelpoort_mailbox_waiting{domain="Demo",instance="game@demo"} `,
		`koppelpoort_mailbox_oldest_waiting_seconds{domain="Demo",instance="portal@demo"} `} {
		if !strings.Contains(string(b), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// The README's curl blocks (post, claim, acknowledge, browse, ValidateOnly; the Storage Service) run as
// written with bash and curl against the demo of serve, from a folder with the repository's docs/: every
// curl must get a 2xx, the claim's IID feeds the acknowledgement, and the Binary read back is the PNG
// posted. TestServeReadmeCurlWalkthrough checks the replies in detail; this one that the text still runs.
func TestReadmeCurlBlocksRunAsWritten(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("no curl")
	}
	readme := string(must(os.ReadFile("../../README.md")))
	block := func(heading string) string {
		s := readme[strings.Index(readme, heading):]
		s = s[strings.Index(s, "```sh\n")+6:]
		return s[:strings.Index(s, "```")]
	}
	dir := t.TempDir()
	base, _, _, _ := startBinary(t, t.TempDir(), nil)
	if err := os.Symlink(mustAbs(t, "../../docs"), filepath.Join(dir, "docs")); err != nil {
		t.Fatal(err)
	}
	script := "set -euo pipefail\ncurl() { command curl -sS --fail-with-body \"$@\"; echo; }\n" +
		strings.ReplaceAll(block("### Post, claim and acknowledge a message with curl")+
			block("### Keep a module's state: the Storage Service"), "http://127.0.0.1:8080", base) +
		`[ -n "$N" ] || { echo "no IID in the claim"; exit 1; }` + "\n"
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the README's curl blocks: %v\n%s", err, out)
	}
	if got := must(os.ReadFile(filepath.Join(dir, "avatar-back.png"))); !bytes.Equal(got, must(os.ReadFile("../../docs/curl/avatar.png"))) {
		t.Errorf("the Binary read back is not the PNG posted (%d bytes)", len(got))
	}
}

// The SSO walk-through of koppeltaal/README.md runs as written (bash, curl, python3) against serve's demo and
// its last step claims the CarePlan serve seeded for the demo patient (issue 14, defect 14: the walk-through
// ended with an empty claim).
func TestSSOWalkthroughRunsAsWritten(t *testing.T) {
	for _, tool := range []string{"curl", "python3"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skip("no " + tool)
		}
	}
	doc := string(must(os.ReadFile("../../koppeltaal/README.md")))
	s := doc[strings.Index(doc, "The whole flow with curl against `koppelpoort serve`"):]
	s = s[strings.Index(s, "```sh\n")+6:]
	block := s[:strings.Index(s, "```")]
	base, _, _, _ := startBinary(t, t.TempDir(), nil)
	script := "set -euo pipefail\n" + strings.ReplaceAll(block, "http://127.0.0.1:8080", base)
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the SSO walk-through: %v\n%s", err, out)
	}
	seeded := `"identifier":"` + client.MessageIDFor(demoCarePlanKey) + `"`
	for _, want := range []string{`"token_type":"Bearer"`, `"code":"CreateOrUpdateCarePlan"`, seeded, koppeltaal.DemoPatient} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the walk-through's output lacks %s:\n%.2000s", want, out)
		}
	}
}

// testclient --launch works on the demo patient's CarePlan once; a second launch finds nothing left and
// prints [] (it printed null), saying so in its log.
func TestTestClientLaunchTwice(t *testing.T) {
	base, _, _, _ := startBinary(t, t.TempDir(), nil)
	launch := func() string {
		req, _ := http.NewRequest(http.MethodGet, base+"/OAuth2/Koppeltaal/Launch?"+url.Values{"client_id": {koppeltaal.DemoModuleClient},
			"patient": {koppeltaal.DemoPatient}}.Encode(), nil)
		req.SetBasicAuth(koppeltaal.DemoPortalUser, koppeltaal.DemoPortalPassword)
		resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil || resp.StatusCode != http.StatusFound {
			t.Fatalf("launch: %v %v", resp, err)
		}
		resp.Body.Close()
		return resp.Header.Get("Location")
	}
	run := func() (stdout, stderr string) {
		cmd := exec.Command(binPath, "testclient", "--server", base, "--launch", launch())
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		if err := cmd.Run(); err != nil {
			t.Fatalf("testclient --launch: %v\n%s%s", err, o.String(), e.String())
		}
		return o.String(), e.String()
	}
	if out, _ := run(); !strings.Contains(out, `"ack": "Success"`) || !strings.Contains(out, "UpdateCarePlanActivityStatus Completed") {
		t.Fatalf("the first launch:\n%s", out)
	}
	out, log := run()
	if strings.TrimSpace(out) != "[]" || !strings.Contains(log, "nothing was waiting in the mailbox") {
		t.Fatalf("the second launch printed %q, log:\n%s", out, log)
	}
}

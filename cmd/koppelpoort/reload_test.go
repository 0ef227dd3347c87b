package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

const reloadRoute = `name: hook
input:
  http: {path: /hook, listen: %ADDR%, auth: none}
transforms:
  out:
    fields: {id: record.id, version: '"%V%"'}
outputs:
  - name: archive
    file: {dir: ./archive, format: ndjson}
`

// A route changed on disk takes effect without a restart; a broken one never replaces the working one, and
// every problem is logged with its position (issue 14: route hot reload; SIGHUP reloads at once).
func TestServeReloadsRoutes(t *testing.T) {
	dir := t.TempDir()
	hook := testkit.FreeAddr(t)
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(strings.ReplaceAll(body, "%ADDR%", hook)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(strings.ReplaceAll(reloadRoute, "%V%", "one"))
	os.WriteFile(filepath.Join(dir, "kp.yaml"), []byte("store: {dsn: ./kp.db}\nlog: {level: info}\nroutes: [r.yaml]\n"), 0o600)
	_, cmd, _, stderr := startBinary(t, dir, nil, "--config", filepath.Join(dir, "kp.yaml"))

	archive := filepath.Join(dir, "archive", "out.ndjson")
	send := func(id, wantVersion string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			resp, err := http.Post("http://"+hook+"/hook", "application/json", strings.NewReader(`{"id": "`+id+`"}`))
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusAccepted {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("POST %s: %v\n%s", id, err, stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
		want := `{"id":"` + id + `","version":"` + wantVersion + `"}`
		for !strings.Contains(readFile(archive), want) {
			if time.Now().After(deadline) {
				t.Fatalf("%s not archived by revision %q:\n%s\nlog:\n%s", id, wantVersion, readFile(archive), stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLog := func(what string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !strings.Contains(stderr.String(), what) {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log:\n%s", what, stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	send("a", "one")
	write(strings.ReplaceAll(reloadRoute, "%V%", "two"))
	waitLog(`"change":"replaced hook"`)
	send("b", "two")

	// A broken file: logged with file, line and column; the running revision keeps working.
	write(strings.ReplaceAll(strings.ReplaceAll(reloadRoute, "%V%", "three"), "format: ndjson", "formt: ndjson"))
	waitLog(`"msg":"route reload refused: a route file has a problem; the running routes are unchanged","file":"` + filepath.Join(dir, "r.yaml") + `","line":9,"column":28,"problem":"file: unknown setting \"formt\" (did you mean \"format\"?)`)
	send("c", "two")

	// SIGHUP reloads at once (no waiting for the watcher): the fixed file runs.
	write(strings.ReplaceAll(reloadRoute, "%V%", "four"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	send("d", "four")
	if strings.Count(stderr.String(), `"msg":"routes reloaded"`) > 3 {
		t.Errorf("reloaded more often than the files changed:\n%s", stderr)
	}
}

func readFile(p string) string {
	b, _ := os.ReadFile(p)
	return string(b)
}

const replayRoute = `name: hook
input:
  http: {path: /hook, listen: %ADDR%, auth: none}
rules:
  - when: record.id == "x" && "%V%" == "one"
    dead_letter: "revision one refuses x"
  - transform: out
transforms:
  out:
    fields: {id: record.id, version: '"%V%"'}
outputs:
  - name: archive
    file: {dir: ./archive, format: ndjson}
`

// `replay` while serve runs goes through the running server, which applies the route files first: a route
// fixed a moment ago (before the watcher has looked) replays on the fixed revision (issue 14, defect 4).
func TestReplayWhileServingRunsTheFixedRoute(t *testing.T) {
	dir := t.TempDir()
	hook := testkit.FreeAddr(t)
	cfgPath := filepath.Join(dir, "kp.yaml")
	write := func(v string) {
		t.Helper()
		body := strings.ReplaceAll(strings.ReplaceAll(replayRoute, "%ADDR%", hook), "%V%", v)
		if err := os.WriteFile(filepath.Join(dir, "r.yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("one")
	os.WriteFile(cfgPath, []byte("store: {dsn: ./kp.db}\nlog: {level: info}\nroutes: [r.yaml]\n"), 0o600)
	_, _, _, stderr := startBinary(t, dir, nil, "--config", cfgPath)
	t.Chdir(dir) // the store's ./kp.db, as replay run next to serve sees it

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Post("http://"+hook+"/hook", "application/json", strings.NewReader(`{"id": "x"}`))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST: %v\n%s", err, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		out, _ := runCmd(t, newReplayCmd(), "--config", cfgPath, "--route", "hook")
		if strings.Contains(out, "revision one refuses x") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dead letter:\n%s\nlog:\n%s", out, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}

	write("two")
	out, err := runCmd(t, newReplayCmd(), "--config", cfgPath, "--route", "hook", "--yes")
	if err != nil || !strings.Contains(out, "replayed 1 dead letters through the running server") {
		t.Fatalf("replay: %v\n%s\nlog:\n%s", err, out, stderr)
	}
	archive := filepath.Join(dir, "archive", "out.ndjson")
	for !strings.Contains(readFile(archive), `{"id":"x","version":"two"}`) {
		if time.Now().After(deadline) {
			out, _ := runCmd(t, newReplayCmd(), "--config", cfgPath, "--all")
			t.Fatalf("x not archived by revision two:\n%s\ndead letters:\n%s\nlog:\n%s", readFile(archive), out, stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out, _ := runCmd(t, newReplayCmd(), "--config", cfgPath, "--all"); !strings.Contains(out, "no dead letters to replay") {
		t.Errorf("the replayed record was dead-lettered again:\n%s", out)
	}
}

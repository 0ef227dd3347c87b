package runtime_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const checkedRoute = `name: hooks
key: record.id
input:
  http: {path: /hooks, listen: ADDR, auth: none, reply: %s}
rules:
  - when: record.patient == "blocked"
    dead_letter: "patient {{ record.patient }} not allowed"
  - when: record.patient == "skip"
    drop: "skipped"
  - transform: out
transforms:
  out:
    fields: {patient: record.patient}
outputs:
  - name: archive
    file: {dir: ./archive, format: ndjson}
`

// startLogged runs routeYAML (whose input listens on a free address written as ADDR) on a SQLite file in dir,
// logging into logs; it returns the route's URL and the database.
func startLogged(t *testing.T, dir, routeYAML string, logs *testkit.Buffer) (string, *store.Store) {
	t.Helper()
	addr := testkit.FreeAddr(t)
	_, db := runRouteLogged(t, dir, strings.ReplaceAll(routeYAML, "ADDR", addr), nil, slog.New(slog.NewJSONHandler(logs, nil)))
	return "http://" + addr + "/hooks", db
}

func postJSON(t *testing.T, url, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	return resp.StatusCode, m
}

// The 202 lists the keys the route gives the records (its key: expression), not batch ids (issue 14,
// defect 27); the route's own listener writes request log lines like the server's.
func TestHTTPInboundRepliesRouteKeysAndLogsRequests(t *testing.T) {
	var logs testkit.Buffer
	url, _ := startLogged(t, t.TempDir(), strings.Replace(checkedRoute, "%s", "accepted", 1), &logs)
	code, reply := postJSON(t, url, `[{"id": "ev-1", "patient": "p1"}, {"id": "ev-2", "patient": "blocked"}]`)
	if code != http.StatusAccepted {
		t.Fatalf("%d %v", code, reply)
	}
	if keys, _ := json.Marshal(reply["keys"]); string(keys) != `["ev-1","ev-2"]` {
		t.Errorf("keys %s, want the route's record keys", keys)
	}
	waitFor(t, "a request log line", func() bool {
		return strings.Contains(logs.String(), `"msg":"http request"`) && strings.Contains(logs.String(), `"path":"/hooks","status":202`)
	})
}

// reply: checked refuses a body with a record the route would dead-letter, with the route's reason, and
// stores nothing (issue 14, defect 22: the sender of an unmappable payload got 202 and never heard).
func TestHTTPInboundCheckedReply(t *testing.T) {
	var logs testkit.Buffer
	dir := t.TempDir()
	url, db := startLogged(t, dir, strings.Replace(checkedRoute, "%s", "checked", 1), &logs)
	code, reply := postJSON(t, url, `[{"id": "ev-1", "patient": "p1"}, {"id": "ev-2", "patient": "blocked"}]`)
	if code != http.StatusUnprocessableEntity {
		t.Fatalf("want 422, got %d %v", code, reply)
	}
	recs, _ := json.Marshal(reply["records"])
	if string(recs) != `[{"key":"ev-2","outcome":"dead_lettered","reason":"patient blocked not allowed"}]` {
		t.Errorf("records %s", recs)
	}
	// A good body (a drop is fine: the route handled it on purpose) is accepted and delivered.
	code, reply = postJSON(t, url, `[{"id": "ev-3", "patient": "p3"}, {"id": "ev-4", "patient": "skip"}]`)
	if code != http.StatusAccepted {
		t.Fatalf("good body: %d %v", code, reply)
	}
	archive := filepath.Join(dir, "archive", "out.ndjson")
	waitFor(t, "ev-3 archived", func() bool {
		b, _ := os.ReadFile(archive)
		return strings.Contains(string(b), "p3")
	})
	time.Sleep(100 * time.Millisecond) // give a wrongly stored ev-1 / ev-2 the time to show up
	b, _ := os.ReadFile(archive)
	if strings.Contains(string(b), "p1") {
		t.Errorf("a record of the refused body was stored and delivered:\n%s", b)
	}
	if dl, _ := runtime.ListDeadLetters(context.Background(), db, runtime.Filter{}); len(dl) != 0 {
		t.Errorf("the refused body left dead letters: %+v", dl)
	}
}

// The route's own listener writes the server's request log in the database (package httplog), as the main
// server's router does (issue 14, defect 27): the row has the path, status and the request id the
// sender saw.
func TestHTTPInboundOwnListenerWritesTheRequestLog(t *testing.T) {
	dir := t.TempDir()
	addr := testkit.FreeAddr(t)
	db := storetest.Backend{Name: "sqlite", DSN: filepath.Join(dir, "kp.db")}.Open(t)
	rec, err := httplog.New(httplog.Options{Store: db, FlushInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	p := filepath.Join(dir, "r.yaml")
	os.WriteFile(p, []byte(strings.ReplaceAll(strings.Replace(checkedRoute, "%s", "accepted", 1), "ADDR", addr)), 0o644)
	r, err := routes.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rt, err := runtime.New(ctx, runtime.Config{Store: db, Routes: []*routes.Route{r}, PollInterval: 20 * time.Millisecond,
		Logger: slog.New(slog.DiscardHandler), RequestLog: rec.Middleware})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	defer func() { cancel(); <-done }()

	resp, err := http.Post("http://"+addr+"/hooks?token=very-secret", "application/json", strings.NewReader(`{"id": "ev-1", "patient": "p1"}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	id := resp.Header.Get("X-Request-Id")
	if resp.StatusCode != http.StatusAccepted || id == "" {
		t.Fatalf("%d, request id %q", resp.StatusCode, id)
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	rows, _, err := httplog.Query(ctx, db, httplog.Filter{RequestID: id})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Path != "/hooks" || rows[0].Status != http.StatusAccepted || strings.Contains(rows[0].Query, "very-secret") {
		t.Fatalf("request log rows for %s: %+v", id, rows)
	}
}

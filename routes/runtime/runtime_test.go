package runtime_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/adapters"
	_ "github.com/koppelpoort/koppelpoort/adapters/file"
	kphttp "github.com/koppelpoort/koppelpoort/adapters/http"
	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// databases returns the real stores the runtime is tested on: a SQLite file always, PostgreSQL when
// KOPPELPOORT_TEST_POSTGRES_DSN is set.
func databases(t *testing.T) map[string]func(t *testing.T) *store.Store {
	dbs := map[string]func(t *testing.T) *store.Store{
		"sqlite": func(t *testing.T) *store.Store {
			return storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}.Open(t)
		},
	}
	if os.Getenv(storetest.EnvPostgresDSN) == "" {
		t.Log("KOPPELPOORT_TEST_POSTGRES_DSN not set: PostgreSQL variant skipped")
		return dbs
	}
	dbs["postgres"] = func(t *testing.T) *store.Store { return storetest.NewPostgres(t).Open(t) }
	return dbs
}

// count runs a COUNT query on st.
func count(t *testing.T, st *store.Store, q string) int {
	t.Helper()
	var n int
	if err := st.View(context.Background(), func(tx *store.Tx) error { return tx.Get(context.Background(), &n, q) }); err != nil {
		t.Logf("%s: %v", q, err)
		return -1
	}
	return n
}

// epd is a receiving REST API that fails the first calls with 503 and rejects patient "reject" with 400.
type epd struct {
	mu       sync.Mutex
	failNext int
	calls    int
	received map[string][]map[string]any // idempotency key → bodies
}

func (e *epd) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	if e.failNext > 0 {
		e.failNext--
		http.Error(w, "busy", http.StatusServiceUnavailable)
		return
	}
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	if body["patient"] == "reject" {
		http.Error(w, "unknown patient", http.StatusBadRequest)
		return
	}
	if body["patient"] == "busy" {
		http.Error(w, "always busy", http.StatusServiceUnavailable)
		return
	}
	e.received[r.Header.Get("Idempotency-Key")] = append(e.received[r.Header.Get("Idempotency-Key")], body)
	w.WriteHeader(http.StatusCreated)
}

func (e *epd) count() (calls, received int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls, len(e.received)
}

const routeTmpl = `name: rom-results
key: record.id
input:
  http:
    path: /hooks/rom
    listen: 127.0.0.1:0
    auth: bearer
    token: s3cret
rules:
  - when: '%s'
    dead_letter: "patient {{ record.patient }} not allowed"
  - transform: result
transforms:
  result:
    fields:
      patient: record.patient
      score: record.score
retry: {max_attempts: 4, backoff: 10ms, max_backoff: 40ms}
outputs:
  - name: epd
    http:
      url: %s/api/results/{patient}
      method: PUT
  - name: archive
    file: {dir: ./archive, format: ndjson}
`

func writeRoute(t *testing.T, dir, cond, epdURL string) *routes.Route {
	t.Helper()
	p := filepath.Join(dir, "route.yaml")
	if err := os.WriteFile(p, []byte(fmt.Sprintf(routeTmpl, cond, epdURL)), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := routes.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func start(t *testing.T, db *store.Store, r *routes.Route) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := runtime.New(ctx, runtime.Config{Store: db, Routes: []*routes.Route{r}, PollInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	addr := r.Input.Adapter.(*kphttp.Inbound).Addr()
	return "http://" + addr + "/hooks/rom", func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		rt.Close()
	}
}

// runRoute writes routeYAML to dir, loads it and runs it on a SQLite file in
// dir until the test ends; before (may be nil) sees the runtime before it runs.
// It returns the runtime and its database.
func runRoute(t *testing.T, dir, routeYAML string, before func(*runtime.Runtime)) (*runtime.Runtime, *store.Store) {
	t.Helper()
	return runRouteLogged(t, dir, routeYAML, before, nil)
}

// runRouteLogged is runRoute with the runtime's logs going to logger (nil: slog's default).
func runRouteLogged(t *testing.T, dir, routeYAML string, before func(*runtime.Runtime), logger *slog.Logger) (*runtime.Runtime, *store.Store) {
	t.Helper()
	p := filepath.Join(dir, "r.yaml")
	if err := os.WriteFile(p, []byte(routeYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := routes.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	db := storetest.Backend{Name: "sqlite", DSN: filepath.Join(dir, "kp.db")}.Open(t)
	ctx, cancel := context.WithCancel(context.Background())
	rt, err := runtime.New(ctx, runtime.Config{Store: db, Routes: []*routes.Route{r}, PollInterval: 20 * time.Millisecond, Logger: logger})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if before != nil {
		before(rt)
	}
	done := make(chan error, 1)
	go func() { done <- rt.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		rt.Close()
	})
	return rt, db
}

func post(t *testing.T, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestRuntimeEndToEnd: HTTP in → rules → REST out with transient failures and retries, a file archive,
// a dead letter for a rule, a dead letter for a 400, and a replay after fixing the route.
func TestRuntimeEndToEnd(t *testing.T) {
	for dialect, open := range databases(t) {
		t.Run(dialect, func(t *testing.T) {
			db := open(t)
			e := &epd{failNext: 2, received: map[string][]map[string]any{}}
			srv := httptest.NewServer(e)
			defer srv.Close()
			dir := t.TempDir()

			r := writeRoute(t, dir, `record.patient == "blocked"`, srv.URL)
			url, stop := start(t, db, r)

			if code, _ := post(t, url, "wrong", `{"id": "x"}`); code != http.StatusUnauthorized {
				t.Fatalf("wrong token: %d", code)
			}
			if code, body := post(t, url, "s3cret", `{"id": "x",`); code != http.StatusBadRequest || !strings.Contains(body, "nothing was accepted") {
				t.Fatalf("bad JSON: %d %s", code, body)
			}
			code, body := post(t, url, "s3cret", `[{"id": "r1", "patient": "p1", "score": 12}, {"id": "r2", "patient": "blocked", "score": 3}, {"id": "r3", "patient": "reject", "score": 1}, {"id": "r4", "patient": "busy", "score": 5}]`)
			if code != http.StatusAccepted {
				t.Fatalf("post: %d %s", code, body)
			}
			// r1 reaches the EPD after two 503s; r3 is rejected with 400 and dead-lettered without retries;
			// r4 stays 503 and is dead-lettered after max_attempts (4).
			waitFor(t, "r1 delivered, r3 and r4 dead-lettered", func() bool {
				_, received := e.count()
				dl, _ := runtime.ListDeadLetters(context.Background(), db, runtime.Filter{})
				return received == 1 && len(dl) == 3
			})
			dl, _ := runtime.ListDeadLetters(context.Background(), db, runtime.Filter{})
			stages := map[string]string{}
			for _, d := range dl {
				stages[d.RecordKey] = d.Stage + ": " + d.Reason
			}
			if !strings.HasPrefix(stages["r2"], "rules: patient blocked not allowed") || !strings.Contains(stages["r3"], "400") ||
				!strings.Contains(stages["r4"], "503") {
				t.Fatalf("dead letters: %v", stages)
			}
			for _, d := range dl {
				if d.RecordKey == "r4" && d.Attempts != 4 {
					t.Fatalf("r4 dead after %d attempts, want 4", d.Attempts)
				}
				// The dead letter keeps the attempt history: when each attempt failed and why (issue 14: retries).
				if d.RecordKey == "r4" {
					if len(d.History) != 4 {
						t.Fatalf("r4 history: %+v, want 4 attempts", d.History)
					}
					for i, a := range d.History {
						if !strings.Contains(a.Error, "503") || a.At.IsZero() || (i > 0 && a.At.Before(d.History[i-1].At)) {
							t.Errorf("r4 attempt %d: %+v", i+1, a)
						}
					}
				}
				if d.RecordKey == "r3" && (len(d.History) != d.Attempts || !strings.Contains(d.History[len(d.History)-1].Error, "400")) {
					t.Errorf("r3 history: %+v, want %d attempts ending in its 400", d.History, d.Attempts)
				}
			}
			// The archive got the routed records exactly once (r1, r3, r4; r2 never routed).
			waitFor(t, "archive", func() bool {
				b, _ := os.ReadFile(filepath.Join(dir, "archive", "out.ndjson"))
				return bytes.Count(b, []byte("\n")) == 3
			})
			stop()

			// Fix the route (allow "blocked"), then replay: dry run first changes nothing.
			plan, err := runtime.Replay(context.Background(), db, runtime.Filter{Route: "rom-results"}, true)
			if err != nil || len(plan) != 3 {
				t.Fatalf("dry run: %v %v", plan, err)
			}
			if again, _ := runtime.ListDeadLetters(context.Background(), db, runtime.Filter{}); len(again) != 3 {
				t.Fatal("dry run changed the dead letters")
			}
			r2 := writeRoute(t, dir, `false`, srv.URL)
			replayed, err := runtime.Replay(context.Background(), db, runtime.Filter{IDs: []string{idOf(dl, "r2")}}, false)
			if err != nil || len(replayed) != 1 {
				t.Fatalf("replay: %v %v", replayed, err)
			}
			_, stop2 := start(t, db, r2)
			defer stop2()
			waitFor(t, "replayed r2 delivered", func() bool {
				_, received := e.count()
				return received == 2
			})
			if left, _ := runtime.ListDeadLetters(context.Background(), db, runtime.Filter{}); len(left) != 2 {
				t.Fatalf("left after replay: %+v", left)
			}
			// Replaying an output dead letter whose cause is still there: the delivery is retried (the EPD
			// sees another call) and the same dead letter comes back, not a second one.
			callsBefore, _ := e.count()
			if _, err := runtime.Replay(context.Background(), db, runtime.Filter{IDs: []string{idOf(dl, "r3")}}, false); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "r3 back in the dead letters", func() bool {
				calls, _ := e.count()
				left, _ := runtime.ListDeadLetters(context.Background(), db, runtime.Filter{})
				return calls > callsBefore && len(left) == 2
			})
			if _, err := runtime.Replay(context.Background(), db, runtime.Filter{IDs: []string{"nope"}}, true); err == nil {
				t.Fatal("replaying an unknown id must fail")
			}
			e.mu.Lock()
			for k, bodies := range e.received {
				if len(bodies) != 1 {
					t.Errorf("idempotency key %s delivered %d times", k, len(bodies))
				}
			}
			e.mu.Unlock()
		})
	}
}

func idOf(dl []runtime.DeadLetter, key string) string {
	for _, d := range dl {
		if d.RecordKey == key {
			return d.ID
		}
	}
	return ""
}

// TestMountOnServerRouter: an http inbound without listen is mounted on the server's router.
func TestMountOnServerRouter(t *testing.T) {
	dir := t.TempDir()
	router := chi.NewRouter()
	runRoute(t, dir, `name: mounted
input:
  http: {path: /hooks/x, auth: none}
outputs:
  - name: out
    file: {dir: ./out}
`, func(rt *runtime.Runtime) { rt.Mount(router) })
	srv := httptest.NewServer(router)
	defer srv.Close()
	waitFor(t, "accepted", func() bool {
		code, _ := post(t, srv.URL+"/hooks/x", "", `{"a": 1}`)
		return code == http.StatusAccepted
	})
	waitFor(t, "written", func() bool {
		files, _ := filepath.Glob(filepath.Join(dir, "out", "mounted-*.json"))
		return len(files) == 1
	})
}

// TestRedeliveredRecordIsParkedOnce: the same record accepted twice (a source re-read after a crash) gives
// one delivery and one dead letter, not two.
func TestRedeliveredRecordIsParkedOnce(t *testing.T) {
	dir := t.TempDir()
	rt, db := runRoute(t, dir, `name: twice
key: record.id
input:
  http: {path: /x, auth: none, listen: "127.0.0.1:0"}
rules:
  - when: record.bad == true
    dead_letter: bad record
  - transform: t
transforms:
  t:
    fields: {id: record.id}
outputs:
  - name: out
    file: {dir: ./out, format: ndjson}
`, nil)
	recs := []adapters.Record{
		{Key: "a", Fields: map[string]any{"id": "a"}, Meta: map[string]string{"source_id": "export-1"}},
		{Key: "b", Fields: map[string]any{"id": "b", "bad": true}, Meta: map[string]string{"source_id": "export-1"}},
	}
	for i := 0; i < 2; i++ {
		if err := rt.Sink("twice").Accept(context.Background(), recs); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both copies processed", func() bool {
		return count(t, db, `SELECT COALESCE(MAX(offset_acked), 0) FROM "kp_wm_offsets_route_twice"`) == 4
	})
	waitFor(t, "delivery", func() bool {
		b, _ := os.ReadFile(filepath.Join(dir, "out", "out.ndjson"))
		return bytes.Count(b, []byte("\n")) == 1
	})
	dl, _ := runtime.ListDeadLetters(context.Background(), db, runtime.Filter{})
	if len(dl) != 1 {
		t.Fatalf("%d dead letters, want 1", len(dl))
	}
	if deliveries := count(t, db, `SELECT COUNT(*) FROM route_deliveries`); deliveries != 1 {
		t.Fatalf("%d deliveries, want 1", deliveries)
	}
}

// A dead letter says where it failed (stage transform for a transform error, not rules) and is logged at
// WARN with its reason, route, stage, revision and record key (issue 14, defects 5 and 6).
func TestDeadLetterStageAndWarning(t *testing.T) {
	dir := t.TempDir()
	var logs testkit.Buffer
	logger := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	rt, db := runRouteLogged(t, dir, `name: stages
input:
  http: {path: /in, listen: 127.0.0.1:0, auth: none}
key: record.id
rules:
  - when: record.id == "ruled"
    dead_letter: "refused {{ record.id }}"
  - transform: out
transforms:
  out:
    fields: {n: 'int(record.n)'}
outputs:
  - name: archive
    file: {dir: ./archive, format: ndjson}
`, nil, logger)
	recs := []adapters.Record{{Key: "ruled", Fields: map[string]any{"id": "ruled", "n": "1"}},
		{Key: "broken", Fields: map[string]any{"id": "broken", "n": "not a number"}}}
	if err := rt.Sink("stages").Accept(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	var dl []runtime.DeadLetter
	waitFor(t, "two dead letters", func() bool {
		dl, _ = runtime.ListDeadLetters(context.Background(), db, runtime.Filter{})
		return len(dl) == 2
	})
	stages := map[string]string{}
	for _, d := range dl {
		stages[d.RecordKey] = d.Stage
	}
	if stages["ruled"] != "rules" || stages["broken"] != "transform" {
		t.Errorf("stages: %v, want ruled=rules broken=transform", stages)
	}
	for _, d := range dl {
		var line map[string]any
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, `"dead_letter":"`+d.ID+`"`) {
				json.Unmarshal([]byte(l), &line)
			}
		}
		if line == nil {
			t.Fatalf("no log line for dead letter %s:\n%s", d.ID, logs.String())
		}
		want := map[string]any{"level": "WARN", "route": "stages", "stage": d.Stage, "revision": d.Revision, "record": d.RecordKey, "reason": d.Reason}
		for k, v := range want {
			if line[k] != v || v == "" {
				t.Errorf("dead letter %s logged with %s=%v, want %v: %v", d.ID, k, line[k], v, line)
			}
		}
	}
}

package notify_test

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const domain = "Push"

var (
	portal = [2]string{"portal@push", "p"}
	game   = [2]string{"game@push", "g"}
)

// receiver is a real webhook endpoint that fails its first `failFirst` calls.
type receiver struct {
	mu        sync.Mutex
	failFirst int
	calls     []*http.Request
	bodies    []string
	ts        *httptest.Server
}

func newReceiver(t testing.TB, failFirst int) *receiver {
	rc := &receiver{failFirst: failFirst}
	rc.ts = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		rc.calls = append(rc.calls, r)
		rc.bodies = append(rc.bodies, string(b))
		fail := len(rc.calls) <= rc.failFirst
		rc.mu.Unlock()
		if fail {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(rc.ts.Close)
	return rc
}

func (rc *receiver) count() int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return len(rc.calls)
}

func config(hookURL string) koppeltaal.Config {
	var hook *koppeltaal.WebhookConfig
	if hookURL != "" {
		hook = &koppeltaal.WebhookConfig{URL: hookURL, Headers: map[string]string{"X-Koppeltaal-Secret": "s3cret"}}
	}
	return koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: domain}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}, {ID: "Game"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: domain, Username: portal[0], Password: portal[1]},
			{Application: "Game", Domain: domain, Username: game[0], Password: game[1],
				Subscriptions: []string{"CreateOrUpdateCarePlan"},
				Webhook:       hook},
		},
	}
}

type env struct {
	t  testing.TB
	st *store.Store
	nt *notify.Notifier
	rt *runtime.Runtime
	ts *httptest.Server
}

// route is how the built-in Koppeltaal route runs in a test: its retry backoff (the policy's other
// settings are the server's) and the registry of its metrics (nil: a private one).
type route struct {
	backoff time.Duration
	reg     prometheus.Registerer
	log     *slog.Logger
}

func newEnv(t testing.TB, st *store.Store, hookURL string, o notify.Options, rr route) *env {
	t.Helper()
	o.Store = st
	if o.PollInterval == 0 {
		o.PollInterval = 20 * time.Millisecond
	}
	nt, err := notify.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ts := apitest.Serve(t, api.Options{Store: st, Config: config(hookURL),
		Extensions: []func(*api.Server, chi.Router){nt.Extension}})
	if rr.backoff == 0 {
		rr.backoff = notify.Backoff
	}
	if rr.log == nil {
		rr.log = slog.New(slog.DiscardHandler)
	}
	rt, err := runtime.NewKoppeltaal(context.Background(), runtime.Config{Store: st, Logger: rr.log, Registerer: rr.reg,
		PollInterval: 20 * time.Millisecond}, nt.Input(), nt.Webhook(),
		routes.RetryPolicy{MaxAttempts: notify.MaxAttempts, Backoff: rr.backoff, MaxBackoff: notify.MaxBackoff})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rt.Close() })
	return &env{t: t, st: st, nt: nt, rt: rt, ts: ts}
}

// run runs the notifier and the built-in route (scan, webhook calls) like serve, until stop.
func (e *env) run() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = e.nt.Run(ctx) }()
	go func() { defer wg.Done(); _ = e.rt.Run(ctx) }()
	return func() { cancel(); wg.Wait() }
}

// post sends a CreateOrUpdateCarePlan from the portal and returns its MessageHeader.identifier.
func (e *env) post() string {
	e.t.Helper()
	b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), domain)
	focal := "https://portal.example/CarePlan/" + uuid.NewString()
	id := uuid.NewString()
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{Identifier: id, Timestamp: time.Now().UTC().Format(time.RFC3339),
		Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: "CreateOrUpdateCarePlan"},
		Source: dstu1.Source{Endpoint: "https://portal.example"}, Data: []string{focal}, Patient: "https://portal.example/Patient/1"})
	b.AddEntry(mh.Resource, "", "")
	b.AddEntry(dstu1.NewResource("CarePlan"), focal, focal)
	hr, _ := http.NewRequest("POST", e.ts.URL+"/FHIR/Koppeltaal/Mailbox", strings.NewReader(string(b.JSON())))
	hr.SetBasicAuth(portal[0], portal[1])
	hr.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("post: %d", resp.StatusCode)
	}
	return id
}

type delivery struct {
	Status   string `db:"status"`
	Attempts int    `db:"attempts"`
	LastErr  string `db:"last_error"`
}

// deliveries are the built-in route's deliveries (its webhook output's), oldest first.
func (e *env) deliveries() []delivery {
	var ds []delivery
	if err := e.st.View(context.Background(), func(tx *store.Tx) error {
		return tx.Select(context.Background(), &ds, "SELECT status, attempts, last_error FROM route_deliveries WHERE route = ? ORDER BY created_at, id",
			store.KoppeltaalRoute)
	}); err != nil {
		e.t.Fatal(err)
	}
	return ds
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestWebhookReceiverDownThenUp: the receiver answers 503 three times, then
// accepts; the notification arrives on the fourth attempt with the SPEC.md §13 headers.
func TestWebhookReceiverDownThenUp(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		rc := newReceiver(t, 3)
		reg := prometheus.NewRegistry()
		e := newEnv(t, b.Open(t), rc.ts.URL+"/hook", notify.Options{}, route{backoff: 20 * time.Millisecond, reg: reg})
		defer e.run()()
		ident := e.post()
		waitFor(t, "delivery", func() bool { ds := e.deliveries(); return len(ds) == 1 && ds[0].Status == store.DeliveryDone })
		if ds := e.deliveries(); ds[0].Attempts != 4 || rc.count() != 4 {
			t.Fatalf("attempts %d, calls %d; want 4", ds[0].Attempts, rc.count())
		}
		r := rc.calls[3]
		want := map[string]string{"Content-Type": "application/json", "Accept": "application/json",
			"Koppeltaalmessageidentifier": ident, "X-Koppeltaal-Secret": "s3cret", "Category": notify.Category(domain)}
		for k, v := range want {
			if got := r.Header.Get(k); got != v {
				t.Errorf("header %s = %q, want %q", k, got, v)
			}
		}
		if r.Method != "POST" || rc.bodies[3] != "" || r.ContentLength != 0 || r.URL.Path != "/hook" {
			t.Errorf("call: %s %s len %d body %q", r.Method, r.URL.Path, r.ContentLength, rc.bodies[3])
		}
		time.Sleep(100 * time.Millisecond)
		if rc.count() != 4 {
			t.Fatalf("delivered notification was sent again: %d calls", rc.count())
		}
		// A webhook is counted like any route output's delivery.
		wantMetrics := "# HELP koppelpoort_route_deliveries_out_total Deliveries made successfully by an output.\n" +
			"# TYPE koppelpoort_route_deliveries_out_total counter\n" +
			"koppelpoort_route_deliveries_out_total{output=\"webhook\",route=\"koppeltaal\"} 1\n" +
			"# HELP koppelpoort_route_delivery_retries_total Delivery attempts that failed transiently and will be retried.\n" +
			"# TYPE koppelpoort_route_delivery_retries_total counter\n" +
			"koppelpoort_route_delivery_retries_total{output=\"webhook\",route=\"koppeltaal\"} 3\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(wantMetrics), "koppelpoort_route_deliveries_out_total",
			"koppelpoort_route_delivery_retries_total"); err != nil {
			t.Fatalf("metrics: %v", err)
		}
	})
}

// TestWebhookGivesUpAfterFiveAttempts: SPEC.md §13.1 "signalled at most 5 times". The notification that
// gave up is a dead letter of the built-in route, like any route output's, and a replay delivers it.
func TestWebhookGivesUpAfterFiveAttempts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		rc := newReceiver(t, 5)
		e := newEnv(t, b.Open(t), rc.ts.URL, notify.Options{}, route{backoff: 5 * time.Millisecond})
		defer e.run()()
		ident := e.post()
		waitFor(t, "give up", func() bool { ds := e.deliveries(); return len(ds) == 1 && ds[0].Status == store.DeliveryDead })
		time.Sleep(100 * time.Millisecond)
		if ds := e.deliveries(); ds[0].Attempts != 5 || rc.count() != 5 || !strings.Contains(ds[0].LastErr, "503") {
			t.Fatalf("after giving up: %+v, %d calls", ds[0], rc.count())
		}
		ctx := context.Background()
		dead, err := runtime.ListDeadLetters(ctx, e.st, runtime.Filter{Route: store.KoppeltaalRoute})
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) != 1 || dead[0].Output != store.WebhookOutput || dead[0].Stage != "output" || dead[0].Attempts != 5 ||
			len(dead[0].History) != 5 || !strings.Contains(dead[0].Reason, "503") || !strings.Contains(dead[0].Reason, game[0]) {
			t.Fatalf("dead letters: %+v", dead)
		}
		// The receiver is up again (it fails only its first 5 calls): the replayed notification arrives.
		if _, err := runtime.Replay(ctx, e.st, runtime.Filter{IDs: []string{dead[0].ID}}, false); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the replayed notification", func() bool { return rc.count() == 6 })
		rc.mu.Lock()
		got := rc.calls[5].Header.Get("KoppeltaalMessageIdentifier")
		rc.mu.Unlock()
		if got != ident {
			t.Fatalf("replayed call for %q, want %q", got, ident)
		}
	})
}

// TestRestartWithPendingNotifications: one notification fails while the
// receiver is down and the process stops; another is queued while no
// dispatcher runs at all. A new process on the same database delivers both.
func TestRestartWithPendingNotifications(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		rc := newReceiver(t, 1)
		st1, err := store.Open(context.Background(), store.Config{DSN: b.DSN}, nil) // closed below, like a process that ends
		if err != nil {
			t.Fatal(err)
		}
		e1 := newEnv(t, st1, rc.ts.URL, notify.Options{}, route{backoff: 300 * time.Millisecond,
			log: slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		stop := e1.run()
		first := e1.post()
		waitFor(t, "first attempt", func() bool { return rc.count() == 1 })
		stop() // the "process" ends with the retry still pending
		second := e1.post()
		if ds := e1.deliveries(); len(ds) != 1 || ds[0].Status != store.DeliveryPending {
			t.Fatalf("before restart: %+v", ds)
		}
		e1.ts.Close()
		st1.Close()

		st2 := b.Open(t)
		e2 := newEnv(t, st2, rc.ts.URL, notify.Options{}, route{backoff: 300 * time.Millisecond})
		defer e2.run()()
		waitFor(t, "both delivered", func() bool {
			ds := e2.deliveries()
			ok := len(ds) == 2 && ds[0].Status == store.DeliveryDone && ds[1].Status == store.DeliveryDone
			if !ok && testing.Verbose() {
				t.Logf("deliveries %+v, %d calls", ds, rc.count())
			}
			return ok
		})
		got := map[string]bool{}
		rc.mu.Lock()
		for _, r := range rc.calls[1:] {
			got[r.Header.Get("KoppeltaalMessageIdentifier")] = true
		}
		rc.mu.Unlock()
		if !got[first] || !got[second] || rc.count() != 3 {
			t.Fatalf("calls after restart: %v (%d calls)", got, rc.count())
		}
	})
}

// TestStream: the live stream announces a message queued for the caller.
func TestStream(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), "", notify.Options{}, route{})
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hr, _ := http.NewRequestWithContext(ctx, "GET", e.ts.URL+"/FHIR/Koppeltaal/_stream", nil)
		hr.SetBasicAuth(game[0], game[1])
		resp, err := http.DefaultClient.Do(hr)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
			t.Fatalf("stream: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		sc := bufio.NewScanner(resp.Body)
		next := func(prefix string) string {
			for sc.Scan() {
				if strings.HasPrefix(sc.Text(), prefix) {
					return sc.Text()
				}
			}
			t.Fatalf("stream ended before %q: %v", prefix, sc.Err())
			return ""
		}
		next("event: ready")
		ident := e.post()
		next("event: NewMessage")
		if data := next("data: "); !strings.Contains(data, ident) || !strings.Contains(data, "CreateOrUpdateCarePlan") {
			t.Fatalf("announcement %s lacks %s", data, ident)
		}
		// The portal is not subscribed: its stream stays quiet; wrong credentials are refused.
		hr2, _ := http.NewRequest("GET", e.ts.URL+"/FHIR/Koppeltaal/_stream", nil)
		hr2.SetBasicAuth(game[0], "wrong")
		if r2, err := http.DefaultClient.Do(hr2); err != nil || r2.StatusCode != 401 {
			t.Fatalf("stream with a wrong password: %v %v", err, r2.StatusCode)
		}
	})
}

// TestStreamEndsAtShutdown: open streams close when the notifier stops, so a
// graceful HTTP shutdown does not wait for them.
func TestStreamEndsAtShutdown(t *testing.T) {
	b := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}
	e := newEnv(t, b.Open(t), "", notify.Options{}, route{})
	stop := e.run()
	hr, _ := http.NewRequest("GET", e.ts.URL+"/FHIR/Koppeltaal/_stream", nil)
	hr.SetBasicAuth(game[0], game[1])
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	ended := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, resp.Body); close(ended) }()
	stop()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("stream still open after the notifier stopped")
	}
}

// TestTwoDispatchersShareTheWork: two processes (two stores, two notifiers)
// on one database deliver every notification exactly once between them.
func TestTwoDispatchersShareTheWork(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		rc := newReceiver(t, 0)
		e1 := newEnv(t, b.Open(t), rc.ts.URL, notify.Options{}, route{})
		e2 := newEnv(t, b.Open(t), rc.ts.URL, notify.Options{}, route{})
		defer e1.run()()
		defer e2.run()()
		const n = 20
		for i := 0; i < n; i++ {
			if i%2 == 0 {
				e1.post()
			} else {
				e2.post()
			}
		}
		waitFor(t, "all delivered", func() bool {
			ds := e1.deliveries()
			done := 0
			for _, d := range ds {
				if d.Status == store.DeliveryDone {
					done++
				}
			}
			return done == n
		})
		time.Sleep(200 * time.Millisecond)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		seen := map[string]int{}
		for _, r := range rc.calls {
			seen[r.Header.Get("KoppeltaalMessageIdentifier")]++
		}
		if len(seen) != n || len(rc.calls) != n {
			t.Fatalf("%d calls for %d messages, want exactly one each", len(rc.calls), len(seen))
		}
	})
}

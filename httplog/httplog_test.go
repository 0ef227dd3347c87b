package httplog_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var ctx = context.Background()

// server is a router behind the request log, as internal/server mounts it:
// handlers name the caller (httplog.Identify) and answer with the status the
// path asks for.
func server(t *testing.T, st *store.Store, cfg httplog.Config) (*httptest.Server, *httplog.Recorder) {
	t.Helper()
	rec, err := httplog.New(httplog.Options{Store: st, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rec.Close() })
	r := chi.NewRouter()
	r.Use(middleware.RequestID, rec.Middleware)
	r.HandleFunc("/*", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if who := r.Header.Get("X-Test-Caller"); who != "" {
			httplog.Identify(r.Context(), httplog.Caller{Kind: httplog.KindInstance, Name: who, Domain: "D"})
		}
		status := http.StatusOK
		if s := r.URL.Query().Get("status"); s != "" {
			_, _ = fmt.Sscan(s, &status)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "reply to "+r.URL.Path)
	})
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return ts, rec
}

func call(t *testing.T, ts *httptest.Server, method, path, caller, body string) string {
	t.Helper()
	req, _ := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if caller != "" {
		req.Header.Set("X-Test-Caller", caller)
	}
	req.Header.Set("Authorization", "Basic c2VjcmV0OnNlY3JldA==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.Header.Get("X-Request-Id")
}

// TestRequestLog: every request but the probes is logged with its method,
// path, redacted query, caller, status, duration, request id and source; no
// bodies unless configured; the filters of Query and its cursor (SQLite and
// PostgreSQL).
func TestRequestLog(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ts, rec := server(t, st, httplog.Config{})
		call(t, ts, "GET", "/healthz", "", "")
		call(t, ts, "GET", "/OAuth2/Koppeltaal/Token?grant_type=refresh_token&refresh_token=rt-secret&client_secret=cs&code=c0de&scope=launch%3Aabc", "", "")
		call(t, ts, "POST", "/FHIR/Koppeltaal/Mailbox", "portal@a", "<feed>patient data</feed>")
		for i := range 5 {
			call(t, ts, "GET", fmt.Sprintf("/FHIR/Koppeltaal/MessageHeader/%d?status=404", i), "game@a", "")
		}
		call(t, ts, "GET", "/admin/session?status=500", "", "")
		if err := rec.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		all, next, err := httplog.Query(ctx, st, httplog.Filter{})
		if err != nil || next != "" {
			t.Fatalf("query: %v (next %q)", err, next)
		}
		if len(all) != 8 {
			t.Fatalf("%d entries, want 8 (no /healthz): %+v", len(all), all)
		}
		if all[0].Path != "/admin/session" || all[len(all)-1].Path != "/OAuth2/Koppeltaal/Token" {
			t.Errorf("not newest first: %s ... %s", all[0].Path, all[len(all)-1].Path)
		}
		tok := all[len(all)-1]
		for _, secret := range []string{"rt-secret", "cs", "c0de", "abc"} {
			if strings.Contains(tok.Query, secret) {
				t.Errorf("query keeps the secret %q: %s", secret, tok.Query)
			}
		}
		if !strings.Contains(tok.Query, "grant_type=refresh_token") || !strings.Contains(tok.Query, "refresh_token=REDACTED") {
			t.Errorf("query %q: want grant_type kept and refresh_token REDACTED", tok.Query)
		}
		post := all[len(all)-2]
		if post.Method != "POST" || post.Caller != (httplog.Caller{Kind: "instance", Name: "portal@a", Domain: "D"}) ||
			post.Status != 200 || post.SourceIP != "127.0.0.1" || post.RequestID == "" || post.Duration <= 0 {
			t.Errorf("POST entry: %+v", post)
		}
		withBodies, _, _ := httplog.Query(ctx, st, httplog.Filter{Bodies: true})
		for _, e := range withBodies {
			if e.RequestBody != "" || e.ResponseBody != "" {
				t.Errorf("bodies kept although http_log.bodies is off: %+v", e)
			}
		}

		for _, c := range []struct {
			name string
			f    httplog.Filter
			want int
		}{
			{"caller", httplog.Filter{Caller: "game@a"}, 5},
			{"4xx", httplog.Filter{StatusClass: 4}, 5},
			{"5xx", httplog.Filter{StatusClass: 5}, 1},
			{"failed", httplog.Filter{Failed: true}, 6},
			{"2xx", httplog.Filter{StatusClass: 2}, 2},
			{"path", httplog.Filter{PathPrefix: "/FHIR/Koppeltaal/MessageHeader/"}, 5},
			{"request id", httplog.Filter{RequestID: post.RequestID}, 1},
			{"from", httplog.Filter{From: post.At}, 7},
			{"to", httplog.Filter{To: post.At}, 1},
		} {
			got, _, err := httplog.Query(ctx, st, c.f)
			if err != nil || len(got) != c.want {
				t.Errorf("%s: %d entries (%v), want %d", c.name, len(got), err, c.want)
			}
		}
		// Pages of 3: every entry once, in the same order.
		var paged []int64
		f := httplog.Filter{Limit: 3}
		for {
			page, next, err := httplog.Query(ctx, st, f)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				paged = append(paged, e.ID)
			}
			if next == "" {
				break
			}
			f.Cursor = next
		}
		if len(paged) != len(all) {
			t.Fatalf("paged %d entries, want %d", len(paged), len(all))
		}
		for i := range all {
			if paged[i] != all[i].ID {
				t.Fatalf("page order %v differs from %v", paged, all)
			}
		}
		if _, _, err := httplog.Query(ctx, st, httplog.Filter{Cursor: "nonsense"}); err == nil {
			t.Error("a made-up cursor is accepted")
		}
	})
}

// TestRequestLogBodies: with http_log.bodies the FHIR API's bodies are kept
// (cut at max_body_bytes); OAuth and administration bodies never are.
func TestRequestLogBodies(t *testing.T) {
	st := storetest.Backend{Name: "sqlite", DSN: t.TempDir() + "/b.db"}.Open(t)
	ts, rec := server(t, st, httplog.Config{Bodies: true, MaxBodyBytes: 10})
	call(t, ts, "POST", "/FHIR/Koppeltaal/Mailbox", "", "<feed>0123456789</feed>")
	call(t, ts, "POST", "/OAuth2/Koppeltaal/Token", "", "client_secret=s3cret")
	call(t, ts, "POST", "/admin/session", "", `{"password":"pw"}`)
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	all, _, err := httplog.Query(ctx, st, httplog.Filter{Bodies: true})
	if err != nil || len(all) != 3 {
		t.Fatalf("%d entries, %v", len(all), err)
	}
	for _, e := range all {
		switch e.Path {
		case "/FHIR/Koppeltaal/Mailbox":
			if e.RequestBody != "<feed>0123" || e.ResponseBody != "reply to /" {
				t.Errorf("FHIR bodies: %q / %q", e.RequestBody, e.ResponseBody)
			}
		default:
			if e.RequestBody != "" || e.ResponseBody != "" {
				t.Errorf("%s: bodies kept: %q / %q", e.Path, e.RequestBody, e.ResponseBody)
			}
		}
	}
}

// TestRemoveExpired: successful calls go after success_days, failed ones
// after failure_days, in batches (SQLite and PostgreSQL).
func TestRemoveExpired(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
		rec, err := httplog.New(httplog.Options{Store: st, Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		defer rec.Close()
		day := 24 * time.Hour
		var rows []store.HTTPLogRow
		add := func(age time.Duration, status, n int) {
			for range n {
				rows = append(rows, store.HTTPLogRow{At: now.Add(-age).UnixMicro(), Method: "GET", Path: fmt.Sprintf("/%d/%d", status, age/day), Status: status})
			}
		}
		add(6*day, 200, 3)  // kept
		add(8*day, 200, 4)  // removed
		add(8*day, 404, 2)  // kept: failed calls stay 14 days
		add(13*day, 500, 1) // kept
		add(15*day, 409, 3) // removed
		add(30*day, 302, 2) // removed
		if err := st.InsertHTTPLog(ctx, rows); err != nil {
			t.Fatal(err)
		}
		n, err := rec.RemoveExpired(ctx, 2)
		if err != nil || n != 9 {
			t.Fatalf("removed %d (%v), want 9", n, err)
		}
		left, _, err := httplog.Query(ctx, st, httplog.Filter{})
		if err != nil {
			t.Fatal(err)
		}
		paths := map[string]int{}
		for _, e := range left {
			paths[e.Path]++
		}
		if len(left) != 6 || paths["/200/6"] != 3 || paths["/404/8"] != 2 || paths["/500/13"] != 1 {
			t.Fatalf("left: %v", paths)
		}
		if n, err := rec.RemoveExpired(ctx, 2); err != nil || n != 0 {
			t.Fatalf("second run removed %d (%v)", n, err)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  httplog.Config
		want string
	}{
		{httplog.Config{SuccessDays: -1}, "http_log.success_days"},
		{httplog.Config{FailureDays: 99999}, "http_log.failure_days"},
		{httplog.Config{MaxBodyBytes: 1 << 30}, "http_log.max_body_bytes"},
	} {
		if err := c.cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", c.cfg, err, c.want)
		}
	}
	var ok httplog.Config
	ok.SetDefaults()
	if err := ok.Validate(); err != nil || ok.SuccessDays != 7 || ok.FailureDays != 14 {
		t.Errorf("defaults %+v: %v", ok, err)
	}
}

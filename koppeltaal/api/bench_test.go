package api_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Benchmarks of the hot path over real HTTP on SQLite (synchronous=FULL).
// With KOPPELPOORT_BENCH_POSTGRES=1 and KOPPELPOORT_TEST_POSTGRES_DSN set they also run on PostgreSQL.

func benchBackends() []string {
	if getenv("KOPPELPOORT_BENCH_POSTGRES") != "" {
		return []string{"sqlite", "postgres"}
	}
	return []string{"sqlite"}
}

// benchStore opens a fresh empty database of the backend (every mode and every b.N its own).
func benchStore(b *testing.B, backend string) *store.Store {
	if backend == "postgres" {
		return storetest.NewPostgres(b).Open(b)
	}
	return storetest.Backend{Name: backend, DSN: filepath.Join(b.TempDir(), "bench.db")}.Open(b)
}

// benchMode is one A/B variant of each benchmark.
type benchMode struct {
	name                    string
	trail, httpLog, tracing bool
}

// benchModes are the variants of each benchmark, in one run: the audit trail
// off, on (as served), on with the HTTP request log, and on with tracing
// (every request sampled and exported to an in-process OTLP collector).
var benchModes = []benchMode{{"trail=off", false, false, false}, {"trail=on", true, false, false},
	{"trail+httplog", true, true, false}, {"trail+tracing", true, false, true}}

// benchRun runs bench for every backend and mode on a fresh harness each.
func benchRun(b *testing.B, bench func(b *testing.B, h *harness)) {
	for _, be := range benchBackends() {
		for _, m := range benchModes {
			b.Run(be+"/"+m.name, func(b *testing.B) {
				bench(b, newBenchHarness(b, benchStore(b, be), m))
			})
		}
	}
}

// benchTracing exports every span of the benchmark to a collector on
// 127.0.0.1 that reads and drops each export, until the benchmark ends.
func benchTracing(b *testing.B) {
	collector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	one := 1.0
	stop, err := tracing.Setup(tracing.Config{OTLPEndpoint: collector.URL, SampleRatio: &one}, "bench",
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = stop(context.Background()); collector.Close() })
}

// newBenchHarness is newHarness behind the request-id middleware, with the
// audit trail, the HTTP request log and tracing switched as asked.
func newBenchHarness(b *testing.B, st *store.Store, m benchMode) *harness {
	trail, httpLog := m.trail, m.httpLog
	if m.tracing {
		benchTracing(b)
	}
	var srv *api.Server
	ts := apitest.NewServer(b, func(public string) http.Handler {
		cfg := twoDomains()
		cfg.PublicURL = public
		var err error
		if srv, err = api.New(ctx, api.Options{Store: st, Config: fastHashes(cfg)}); err != nil {
			b.Fatalf("api.New: %v", err)
		}
		if !trail {
			srv.Service().SetAuditor(nil, nil)
		}
		r := chi.NewRouter()
		r.Use(middleware.RequestID)
		if m.tracing {
			r.Use(tracing.Middleware)
		}
		if httpLog {
			rec, err := httplog.New(httplog.Options{Store: st})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { _ = rec.Close() })
			r.Use(rec.Middleware)
		}
		srv.Mount(r)
		return r
	})
	return &harness{t: b, st: st, srv: srv, ts: ts}
}

func BenchmarkPostMailbox(b *testing.B) {
	benchRun(b, func(b *testing.B, h *harness) {
		{
			bodies := make([][]byte, b.N)
			for i := range bodies {
				bodies[i] = koppeltaal.EncodeBundle(patientMessage("A", "https://a.example/Patient/"+uuid.NewString()), dstu1.FormatJSON)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "portal@a", pass: "pa",
					accept: "application/json", ctype: "application/json", body: bodies[i]})
				if r.Status != 200 {
					b.Fatalf("%d %s", r.Status, r)
				}
			}
		}
	})
}

func BenchmarkPostMailboxParallel(b *testing.B) {
	benchRun(b, func(b *testing.B, h *harness) {
		{
			b.SetParallelism(16)
			var seq atomicCounter
			runID := uuid.NewString()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					body := koppeltaal.EncodeBundle(patientMessage("A", fmt.Sprintf("https://a.example/Patient/%s-%d", runID, seq.next())), dstu1.FormatJSON)
					r := h.do(req{method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: "portal@a", pass: "pa",
						accept: "application/json", ctype: "application/json", body: body})
					if r.Status != 200 {
						b.Errorf("%d %s", r.Status, r)
						return
					}
				}
			})
		}
	})
}

// BenchmarkClaimAndAcknowledge claims one message and acknowledges it (two requests per op).
func BenchmarkClaimAndAcknowledge(b *testing.B) {
	benchRun(b, func(b *testing.B, h *harness) {
		{
			for i := 0; i < b.N; i++ {
				if r := postAs(h, "portal@a", "pa", patientMessage("A", "https://a.example/Patient/"+uuid.NewString()), dstu1.FormatJSON); r.Status != 200 {
					b.Fatal(r)
				}
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				msg := bundleOf(b, claim(h, "game@a", "ga", dstu1.FormatJSON))
				if len(msg.Entries) == 0 {
					b.Fatal("queue empty")
				}
				if r := ack(h, "game@a", "ga", msg.Entries[0].SelfLink(), "Success", "", dstu1.FormatJSON); r.Status != 200 {
					b.Fatal(r)
				}
			}
		}
	})
}

// BenchmarkSearchMessageHeaders renders a search page of 20 MessageHeaders, on SQLite with the audit trail
// on (as served). The messages are posted through a second server on the database, so the searching one
// answers from the MessageHeaders it keeps (the search head cache), not from its message cache.
func BenchmarkSearchMessageHeaders(b *testing.B) {
	st := benchStore(b, "sqlite")
	h, other := newBenchHarness(b, st, benchModes[1]), newBenchHarness(b, st, benchModes[1])
	for i := 0; i < 20; i++ {
		if r := postAs(other, "portal@a", "pa", patientMessage("A", "https://a.example/Patient/"+uuid.NewString()), dstu1.FormatJSON); r.Status != 200 {
			b.Fatal(r)
		}
	}
	search := req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_count=20", user: "game@a", pass: "ga", accept: "application/json"}
	if n := len(bundleOf(b, h.do(search)).Entries); n != 20 {
		b.Fatalf("search found %d entries, want 20", n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if r := h.do(search); r.Status != 200 {
			b.Fatal(r)
		}
	}
}

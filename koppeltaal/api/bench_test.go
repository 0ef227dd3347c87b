package api_test

import (
	"fmt"
	"path/filepath"
	"testing"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Benchmarks of the hot path over real HTTP on SQLite (synchronous=FULL).
// With KOPPELPOORT_BENCH_POSTGRES=1 and KOPPELPOORT_TEST_POSTGRES_DSN set they also run on PostgreSQL.

func benchBackends(b *testing.B) []storetest.Backend {
	bs := []storetest.Backend{{Name: "sqlite", DSN: filepath.Join(b.TempDir(), "bench.db")}}
	if getenv("KOPPELPOORT_BENCH_POSTGRES") != "" {
		bs = append(bs, storetest.NewPostgres(b))
	}
	return bs
}

func BenchmarkPostMailbox(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.Name, func(b *testing.B) {
			h := newHarness(b, be, twoDomains())
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
		})
	}
}

func BenchmarkPostMailboxParallel(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.Name, func(b *testing.B) {
			h := newHarness(b, be, twoDomains())
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
		})
	}
}

// BenchmarkClaimAndAcknowledge claims one message and acknowledges it (two requests per op).
func BenchmarkClaimAndAcknowledge(b *testing.B) {
	for _, be := range benchBackends(b) {
		b.Run(be.Name, func(b *testing.B) {
			h := newHarness(b, be, twoDomains())
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
		})
	}
}

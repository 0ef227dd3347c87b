package runtime_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
)

// TestThroughput measures records/s from Accept to written output on SQLite. It runs only with
// KOPPELPOORT_THROUGHPUT=<records> (e.g. 5000) so `go test ./...` stays fast.
func TestThroughput(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("KOPPELPOORT_THROUGHPUT"))
	if n == 0 {
		t.Skip("set KOPPELPOORT_THROUGHPUT=<records> to measure gateway throughput")
	}
	dir := t.TempDir()
	rt, db := runRoute(t, dir, `name: tp
key: record.id
input:
  http: {path: /x, auth: none, listen: "127.0.0.1:0"}
rules:
  - when: '!bsn_valid(record.bsn)'
    dead_letter: bad
  - transform: t
transforms:
  t:
    fields: {id: record.id, name: 'human_name(record.given, record.family)', born: fhir_date(record.born)}
outputs:
  - name: out
    file: {dir: ./out, format: ndjson}
`, nil)
	recs := make([]adapters.Record, n)
	for i := range recs {
		recs[i] = adapters.Record{Key: fmt.Sprint(i), Fields: map[string]any{"id": fmt.Sprint(i), "bsn": "111222333", "given": "Jan", "family": "Berg", "born": "03-02-1980"}}
	}
	start := time.Now()
	if err := rt.Sink("tp").Accept(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	accepted := time.Since(start)
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		c := count(t, db, `SELECT COUNT(*) FROM route_deliveries WHERE status = 'done'`)
		if c == n {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	total := time.Since(start)
	t.Logf("%d records: accepted (durable) in %v, delivered in %v = %.0f records/s", n, accepted.Round(time.Millisecond), total.Round(time.Millisecond), float64(n)/total.Seconds())
}

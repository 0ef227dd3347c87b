package loadtest

import (
	"strings"
	"testing"
	"time"
)

// TestRemovalRunsFromLog reads the removal job's log line among others and
// places the run on the load's clock with the POSTs of the seconds it overlapped.
func TestRemovalRunsFromLog(t *testing.T) {
	log := `{"time":"2026-12-03T08:00:01Z","level":"INFO","msg":"listening","addr":"127.0.0.1:1"}
not json
{"time":"2026-12-03T08:00:13.5Z","level":"INFO","msg":"koppeltaal: retention run","bodies_removed":500000,"bytes_freed":1048576,"storage_items_removed":0,"other_rows_removed":0,"batches":5000,"pages_freed":256,"oldest_body_age_s":1,"duration_ms":2500,"result":"ok"}
`
	runs, err := parseRemovalRuns(strings.NewReader(log))
	if err != nil || len(runs) != 1 {
		t.Fatalf("runs %+v, err %v", runs, err)
	}
	start := time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)
	rep := &Report{Started: start, LoadSeconds: 20, Scenario: &Scenario{}}
	for i := range 22 { // second i+1: i+1 POSTs of (i+1) ms; the last two are the drain's
		h := &Histogram{}
		for range i + 1 {
			h.Record(time.Duration(i+1) * time.Millisecond)
		}
		phase := "load"
		if i >= 20 {
			phase = "drain"
		}
		rep.Timeline = append(rep.Timeline, TimePoint{T: float64(i + 1), Phase: phase})
		rep.postBySecond = append(rep.postBySecond, h)
	}
	rep.AddRemovalRuns(runs)
	r := rep.RemovalRuns[0]
	// 11.0 s to 13.5 s overlaps the seconds ending at 12, 13 and 14: 12+13+14 POSTs.
	if r.StartS != 11 || r.EndS != 13.5 || r.BodiesRemoved != 500000 || r.Batches != 5000 || r.PostsDuring != 39 || r.PostP99Ms < 13.5 {
		t.Fatalf("run %+v", r)
	}
	// The other 17 seconds of the load (1..11, 15..20; not the drain's 21 and 22): 210-39 POSTs, the slowest 20 ms.
	if r.PostsOutside != 171 || r.PostP99MsOutside < 19 || r.PostP99MsOutside > 21 {
		t.Fatalf("outside the run: %d POSTs, p99 %.1f ms; want 171, about 20 ms", r.PostsOutside, r.PostP99MsOutside)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "+11.0s to +13.5s (2.5s): 500000 bodies removed (1.0 MiB) in 5000 batches") {
		t.Fatalf("report:\n%s", text.String())
	}
}

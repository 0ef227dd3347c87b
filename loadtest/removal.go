package loadtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"
)

// A removal run during the load (issue 11: a removal run's effect on POST
// p99). --prefill-due writes a share of the prefilled messages old enough to
// be due; the prefill holds the removal job's lease (store.TakeLease) so that
// the server's first run starts --removal-at into the load phase, not at its
// start. Each run the server logged ("koppeltaal: retention run", level
// info) is reported with its window in the load and the POSTs inside it.

// RemovalRun is one run of the server's removal job, read from its log.
type RemovalRun struct {
	Start         time.Time `json:"start"`
	End           time.Time `json:"end"`
	BodiesRemoved int64     `json:"bodies_removed"`
	BytesFreed    int64     `json:"bytes_freed"`
	Batches       int64     `json:"batches"`
	PagesFreed    int64     `json:"pages_freed"`
	Result        string    `json:"result"`
	// StartS and EndS are seconds from the start of the load phase.
	StartS float64 `json:"start_s"`
	EndS   float64 `json:"end_s"`
	// PostsDuring counts the POSTs answered in the whole seconds of the load
	// timeline the run overlapped; PostP50Ms and PostP99Ms are their latency.
	PostsDuring uint64  `json:"posts_during"`
	PostP50Ms   float64 `json:"post_p50_ms_during"`
	PostP99Ms   float64 `json:"post_p99_ms_during"`
	// PostsOutside counts the POSTs of the other seconds of the load phase
	// (not the drain), PostP50MsOutside and PostP99MsOutside their latency:
	// the same run without the removal, when there are enough of them.
	PostsOutside     uint64  `json:"posts_outside"`
	PostP50MsOutside float64 `json:"post_p50_ms_outside"`
	PostP99MsOutside float64 `json:"post_p99_ms_outside"`
}

// removalRunMsg is the message of the removal job's log line (koppeltaal.Service.RemoveExpired).
const removalRunMsg = "koppeltaal: retention run"

// ReadRemovalRuns returns the removal runs logged in a JSON server log.
func ReadRemovalRuns(path string) ([]RemovalRun, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read removal runs: %w", err)
	}
	defer f.Close()
	return parseRemovalRuns(f)
}

func parseRemovalRuns(r io.Reader) ([]RemovalRun, error) {
	var out []RemovalRun
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		var l struct {
			Time       time.Time `json:"time"`
			Msg        string    `json:"msg"`
			Bodies     int64     `json:"bodies_removed"`
			Bytes      int64     `json:"bytes_freed"`
			Batches    int64     `json:"batches"`
			PagesFreed int64     `json:"pages_freed"`
			DurationMs int64     `json:"duration_ms"`
			Result     string    `json:"result"`
		}
		if json.Unmarshal(sc.Bytes(), &l) != nil || l.Msg != removalRunMsg {
			continue
		}
		out = append(out, RemovalRun{Start: l.Time.Add(-time.Duration(l.DurationMs) * time.Millisecond), End: l.Time,
			BodiesRemoved: l.Bodies, BytesFreed: l.Bytes, Batches: l.Batches, PagesFreed: l.PagesFreed, Result: l.Result})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read removal runs: %w", err)
	}
	return out, nil
}

// AddRemovalRuns places the runs on the load's clock and measures the POSTs
// of the timeline seconds each overlapped (kept per second by the runner).
func (rep *Report) AddRemovalRuns(runs []RemovalRun) {
	for _, run := range runs {
		run.StartS, run.EndS = run.Start.Sub(rep.Started).Seconds(), run.End.Sub(rep.Started).Seconds()
		var in, out Histogram
		for i, tp := range rep.Timeline {
			// Timeline point i covers the second (T-1, T].
			switch {
			case i >= len(rep.postBySecond):
			case tp.T > run.StartS && tp.T-1 < run.EndS:
				in.Merge(rep.postBySecond[i])
			case tp.Phase == "load":
				out.Merge(rep.postBySecond[i])
			}
		}
		run.PostsDuring, run.PostP50Ms, run.PostP99Ms = in.Count(), ms(in.Quantile(0.5)), ms(in.Quantile(0.99))
		run.PostsOutside, run.PostP50MsOutside, run.PostP99MsOutside = out.Count(), ms(out.Quantile(0.5)), ms(out.Quantile(0.99))
		rep.RemovalRuns = append(rep.RemovalRuns, run)
	}
}

// writeRemovalRuns is the report's section on removal runs.
func (rep *Report) writeRemovalRuns(w io.Writer) {
	if len(rep.RemovalRuns) == 0 {
		return
	}
	fmt.Fprintf(w, "\nremoval runs of the server (its log; load phase 0–%.0fs):\n", rep.LoadSeconds)
	for _, r := range rep.RemovalRuns {
		fmt.Fprintf(w, "  %+.1fs to %+.1fs (%.1fs): %d bodies removed (%.1f MiB) in %d batches, %d pages freed, %s; %d POSTs in those seconds: p50 %.1f ms, p99 %.1f ms; %d in the other seconds of the load: p50 %.1f ms, p99 %.1f ms\n",
			r.StartS, r.EndS, r.EndS-r.StartS, r.BodiesRemoved, float64(r.BytesFreed)/(1<<20), r.Batches, r.PagesFreed, r.Result,
			r.PostsDuring, r.PostP50Ms, r.PostP99Ms, r.PostsOutside, r.PostP50MsOutside, r.PostP99MsOutside)
	}
}

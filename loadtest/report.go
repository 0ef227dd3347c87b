package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// Report is the result of a run; WriteText renders it for people, and it
// marshals to JSON for machines (--json).
type Report struct {
	Tool     string    `json:"tool"`
	Started  time.Time `json:"started"`
	Target   string    `json:"target"`
	Store    string    `json:"store,omitempty"`
	Scenario *Scenario `json:"scenario"`
	Domains  int       `json:"domains"`
	// CarePlanSubscribers is the number of instances of the first domain that
	// must receive a CreateOrUpdateCarePlan (the sender excluded).
	CarePlanSubscribers int `json:"careplan_subscribers"`
	// FreshServer is true when the server started empty (--self).
	FreshServer  bool    `json:"fresh_server"`
	Instances    int     `json:"instances"`
	LoadSeconds  float64 `json:"load_seconds"`
	DrainSeconds float64 `json:"drain_seconds"`
	Drained      bool    `json:"drained"`

	// Posted counts accepted Mailbox POSTs (all senders) during the load phase.
	Posted             int64   `json:"posted"`
	PostedPerSecond    float64 `json:"posted_per_s"`
	Delivered          int64   `json:"delivered"`
	DeliveredPerSecond float64 `json:"delivered_per_s"`
	Acked              int64   `json:"acked"`
	// MissedTicks counts open-loop sends skipped because every worker was busy.
	MissedTicks       int64 `json:"missed_ticks"`
	IntendedConflicts int64 `json:"intended_conflicts"`

	Ops []OpStats `json:"operations"`
	// ClaimByDepth is the claim latency by the claiming instance's estimated
	// queue depth (accepted messages addressed to it minus its claims).
	ClaimByDepth []OpStats `json:"claim_by_depth"`
	// BacklogPosted is the number of messages posted before the load (--backlog).
	BacklogPosted int64 `json:"backlog_posted,omitempty"`
	// Prefilled is the number of messages written into the database before
	// the server started (--prefill), PrefillSeconds how long that took.
	Prefilled      int64   `json:"prefilled,omitempty"`
	PrefillSeconds float64 `json:"prefill_seconds,omitempty"`
	// PrefillSnapshot is the snapshot the prefilled database was copied from
	// (--prefill-snapshot; PrefillSeconds is then the copy); "" when written.
	PrefillSnapshot string `json:"prefill_snapshot,omitempty"`
	// DrainEndedByPrefill: the drain ended with instances still holding more
	// prefilled messages than they could claim in the drain timeout (see
	// waitDrained); their remaining entries are counted as waiting, not lost.
	DrainEndedByPrefill bool `json:"drain_ended_by_prefill,omitempty"`
	// PrefillDue is how many of the prefilled messages were written old
	// enough for the removal job (--prefill-due), delivered long ago.
	PrefillDue int64 `json:"prefill_due,omitempty"`
	// RemovalRuns are the server's removal runs (--self, from its log; AddRemovalRuns).
	RemovalRuns []RemovalRun `json:"removal_runs,omitempty"`
	// postBySecond holds the POST latencies of each timeline point (same index).
	postBySecond []*Histogram
	Errors       []ErrorCount `json:"errors"`
	Consistency  Consistency  `json:"consistency"`
	// Audit is the check of the server's audit trail (Options.AuditDSN).
	Audit      *AuditCheck `json:"audit,omitempty"`
	CommitRate *CommitRate `json:"commit_rate,omitempty"`
	// CommitRatio is PostedPerSecond divided by the raw commit rate.
	CommitRatio float64 `json:"commit_ratio,omitempty"`
	// WritesPerSecond counts every request that changes server state (accepted
	// POSTs, claims that returned a message, acknowledgements) over the time
	// from the start to the last of them; WriteRatio divides it by the raw
	// commit rate: above 1 means the server commits several requests per fsync.
	WritesPerSecond float64     `json:"writes_per_s"`
	WriteRatio      float64     `json:"write_ratio,omitempty"`
	Server          *ProcStats  `json:"server,omitempty"`
	LoadTool        ProcStats   `json:"load_tool"`
	Timeline        []TimePoint `json:"timeline"`
	// Machine describes the machine the run shared: CPUs and load averages
	// at the start and the end (other processes skew the numbers).
	Machine Machine `json:"machine"`
	// CPU is where the machine's CPU went during the load and the drain.
	CPU  *CPUUse `json:"cpu,omitempty"`
	Pass bool    `json:"pass"`
}

// tick samples the counters once a second for the timeline and the progress line.
func (r *runner) tick(ctx context.Context, timeline *[]TimePoint, mu *sync.Mutex, srv *serverSampler) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	lastPosted, lastDelivered, lastAcked, lastFailed := r.st.posted.Load(), r.st.delivered.Load(), r.st.acked.Load(), r.st.failed.Load()
	last := time.Now()
	lastPrint := time.Time{}
	for {
		select {
		case <-ctx.Done():
			if r.opts.Progress != nil && r.opts.TTY {
				fmt.Fprintln(r.opts.Progress)
			}
			return
		case now := <-t.C:
			dt := now.Sub(last).Seconds()
			last = now
			p, d, a, f := r.st.posted.Load(), r.st.delivered.Load(), r.st.acked.Load(), r.st.failed.Load()
			ph, ch := r.st.postIv.SnapshotAndReset(), r.st.claimIv.SnapshotAndReset()
			phase := "load"
			if !r.loadRunning() {
				phase = "drain"
			}
			tp := TimePoint{T: now.Sub(r.start).Seconds(), Phase: phase,
				Posted: float64(p-lastPosted) / dt, Delivered: float64(d-lastDelivered) / dt, Acked: float64(a-lastAcked) / dt,
				Errors: float64(f-lastFailed) / dt, PostP50: ms(ph.Quantile(0.5)), PostP99: ms(ph.Quantile(0.99)), ClaimP99: ms(ch.Quantile(0.99)),
				ServerRSSM: srv.sample()}
			lastPosted, lastDelivered, lastAcked, lastFailed = p, d, a, f
			mu.Lock()
			*timeline = append(*timeline, tp)
			if p := r.opts.Prefill; p != nil && p.DuePerDomain > 0 { // a removal run to measure (17 KiB a second)
				r.postBySecond = append(r.postBySecond, ph)
			}
			mu.Unlock()
			if r.opts.Progress == nil {
				continue
			}
			line := fmt.Sprintf("%5.0fs %-5s posted %6.0f/s  delivered %6.0f/s  acked %6.0f/s  errors %d  p99 post %6.1fms claim %6.1fms",
				tp.T, phase, tp.Posted, tp.Delivered, tp.Acked, f, tp.PostP99, tp.ClaimP99)
			if tp.ServerRSSM > 0 {
				line += fmt.Sprintf("  server %4.0fMiB", tp.ServerRSSM)
			}
			if r.opts.TTY {
				fmt.Fprintf(r.opts.Progress, "\r\033[K%s", line)
			} else if now.Sub(lastPrint) >= 5*time.Second {
				fmt.Fprintln(r.opts.Progress, line)
				lastPrint = now
			}
		}
	}
}

func (r *runner) report(loadSeconds, drainSeconds float64, drained bool, cons Consistency, timeline []TimePoint, srv *serverSampler) *Report {
	rep := &Report{
		Tool: "koppelpoort load", Started: r.start, Target: r.opts.Target, Store: r.opts.StoreLabel, Scenario: r.sc,
		Domains: len(r.domains), Instances: len(r.insts), FreshServer: r.opts.FreshServer, LoadSeconds: loadSeconds, DrainSeconds: drainSeconds, Drained: drained,
		Delivered: r.st.delivered.Load(), Acked: r.st.acked.Load(), MissedTicks: r.missed.Load(), IntendedConflicts: r.st.conflicts.Load(),
		Errors: r.st.errorCounts(), Consistency: cons, CommitRate: r.opts.CommitRate, Server: srv.stats(), LoadTool: selfStats(),
		Timeline: timeline, postBySecond: r.postBySecond,
	}
	if len(r.domains) > 0 {
		d := r.domains[0]
		rep.CarePlanSubscribers = len(d.subscribersFor(EventCarePlan, d.senders[0].idx))
	}
	// Posted per second counts the load phase only: sum the timeline's load seconds.
	for _, tp := range timeline {
		if tp.Phase == "load" {
			rep.Posted += int64(tp.Posted + 0.5)
		}
	}
	if rep.Posted == 0 {
		rep.Posted = r.st.posted.Load()
	}
	rep.PostedPerSecond = float64(rep.Posted) / loadSeconds
	if ld := r.lastDelivery.Load(); ld > 0 {
		rep.DeliveredPerSecond = float64(rep.Delivered) / time.Unix(0, ld).Sub(r.start).Seconds()
	}
	rep.Ops = r.st.opStats(loadSeconds + drainSeconds)
	rep.ClaimByDepth = r.st.depthStats()
	rep.BacklogPosted = r.backlogPosted
	if p := r.opts.Prefill; p != nil {
		rep.Prefilled, rep.PrefillSeconds, rep.PrefillSnapshot = p.Messages(), p.Seconds, p.Snapshot
		rep.PrefillDue = int64(p.DuePerDomain) * int64(len(p.Domains))
	}
	if lw := r.lastWriteDone.Load(); lw > 0 {
		writes := r.st.posted.Load() + rep.Delivered + rep.Acked
		rep.WritesPerSecond = float64(writes) / time.Unix(0, lw).Sub(r.start).Seconds()
	}
	if r.opts.CommitRate != nil && r.opts.CommitRate.PerSecond > 0 {
		rep.CommitRatio = rep.PostedPerSecond / r.opts.CommitRate.PerSecond
		rep.WriteRatio = rep.WritesPerSecond / r.opts.CommitRate.PerSecond
	}
	rep.Pass = cons.Pass && drained
	rep.Machine = Machine{CPUs: runtime.NumCPU(), LoadStart: r.loadAvgStart, LoadEnd: loadAvg()}
	return rep
}

// WriteText renders the report for a terminal.
func (rep *Report) WriteText(w io.Writer) {
	sc := rep.Scenario
	fmt.Fprintf(w, "\nkoppelpoort load — %s", rep.Target)
	if rep.Store != "" {
		fmt.Fprintf(w, " (%s)", rep.Store)
	}
	mode := fmt.Sprintf("closed loop, %d workers", sc.Concurrency)
	if sc.Rate > 0 {
		mode = fmt.Sprintf("open loop %.0f msg/s, ≤%d in flight", sc.Rate, sc.Concurrency)
	}
	fmt.Fprintf(w, "\n%d domains, %d instances, %d CarePlan subscribers per domain, %d patients/domain, format %s, %s\n",
		rep.Domains, rep.Instances, rep.CarePlanSubscribers, sc.PatientsPerDomain, sc.Format, mode)
	fmt.Fprintf(w, "load %.1fs, drain %.1fs (drained: %v)\n", rep.LoadSeconds, rep.DrainSeconds, rep.Drained)
	switch {
	case rep.Prefilled > 0 && rep.PrefillSnapshot != "":
		fmt.Fprintf(w, "prefilled: %d messages in the database before the server started, copied from the snapshot %s in %.1fs\n",
			rep.Prefilled, rep.PrefillSnapshot, rep.PrefillSeconds)
	case rep.Prefilled > 0:
		fmt.Fprintf(w, "prefilled: %d messages written into the database before the server started, in %.1fs (%.0f/s)\n",
			rep.Prefilled, rep.PrefillSeconds, float64(rep.Prefilled)/max(rep.PrefillSeconds, 1e-9))
	}
	if rep.Prefilled > 0 {
		if rep.PrefillDue > 0 {
			fmt.Fprintf(w, "  of them %d due for removal (older than the maximum age, delivered long ago)\n", rep.PrefillDue)
		}
	}
	if rep.DrainEndedByPrefill {
		fmt.Fprintf(w, "drain ended with %d prefilled deliveries still waiting: more than the consumers could claim in the drain timeout\n", rep.Consistency.PrefillWaiting)
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "throughput: posted %.0f msg/s (%d accepted), delivered %.0f/s (%d), acked %d\n", rep.PostedPerSecond, rep.Posted, rep.DeliveredPerSecond, rep.Delivered, rep.Acked)
	if rep.MissedTicks > 0 {
		fmt.Fprintf(w, "open loop fell behind: %d sends skipped (all workers busy)\n", rep.MissedTicks)
	}
	if rep.CommitRate != nil {
		fmt.Fprintf(w, "raw commit rate: %.0f commits/s (%s); posted msg/s = %.2f× of it; state-changing requests %.0f/s = %.2f× of it\n",
			rep.CommitRate.PerSecond, rep.CommitRate.Store, rep.CommitRatio, rep.WritesPerSecond, rep.WriteRatio)
	}
	if rep.Server != nil {
		fmt.Fprintf(w, "server pid %d: RSS peak %.0f MiB during load and drain (sampled each second), %.0f MiB after the read-back (HWM %.0f MiB); CPU %.1fs since it started\n",
			rep.Server.PID, rep.Server.MaxRSSMiB, rep.Server.RSSMiB, rep.Server.HWMMiB, rep.Server.CPUSeconds)
	}
	fmt.Fprintf(w, "load tool: max RSS %.0f MiB\n", rep.LoadTool.MaxRSSMiB)
	if u := rep.CPU; u != nil {
		fmt.Fprintf(w, "CPU during load and drain (%.1fs × %d CPUs = %.1fs): server %.1fs, load tool %.1fs, rest of the machine %.1fs (the database's own processes, others' work), idle %.1fs\n",
			u.Seconds, u.CPUs, u.Seconds*float64(u.CPUs), u.ServerSeconds, u.ToolSeconds, u.RestSeconds, u.IdleSeconds)
		fmt.Fprintf(w, "  per accepted message: server %.2f ms, load tool %.2f ms, rest %.2f ms\n", u.ServerMsPerMessage, u.ToolMsPerMessage, u.RestMsPerMessage)
	}
	fmt.Fprintf(w, "machine: %d CPUs, load average %.1f at the start, %.1f at the end\n\n", rep.Machine.CPUs, rep.Machine.LoadStart, rep.Machine.LoadEnd)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "operation\tcount\terrors\t/s (load+drain)\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
	for _, o := range rep.Ops {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t\n", o.Name, o.Count, o.Errors, o.Rate, o.P50, o.P90, o.P99, o.Max)
	}
	tw.Flush()
	if len(rep.ClaimByDepth) > 1 || rep.BacklogPosted > 0 || rep.Prefilled > 0 {
		fmt.Fprintf(w, "\nclaim latency by queue depth (estimated: sent to the instance minus claimed by it; backlog posted before the load: %d, prefilled: %d)\n", rep.BacklogPosted, rep.Prefilled)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
		fmt.Fprintln(tw, "queue depth at claim\tclaims\tp50 ms\tp90 ms\tp99 ms\tmax ms\t")
		for _, o := range rep.ClaimByDepth {
			fmt.Fprintf(tw, "%s\t%d\t%.1f\t%.1f\t%.1f\t%.1f\t\n", o.Name, o.Count, o.P50, o.P90, o.P99, o.Max)
		}
		tw.Flush()
	}
	rep.writeRemovalRuns(w)
	if len(rep.Errors) > 0 {
		fmt.Fprintln(w, "\nerrors by kind:")
		for _, e := range rep.Errors {
			fmt.Fprintf(w, "  %6d  %s\n          e.g. %s\n", e.Count, e.Kind, oneLineCut(e.Sample, 200))
		}
	}
	c := rep.Consistency
	fmt.Fprintf(w, "\nconsistency: %d messages posted, %d accepted, %d rejected (%d of them intended 409s), %d with unknown outcome\n",
		c.Posted, c.Accepted, c.Rejected, rep.IntendedConflicts, c.Unknown)
	fmt.Fprintf(w, "  deliveries %d of %d expected; missing %d, duplicates %d, superseded by a newer version %d (+%d after delivery)\n",
		c.Deliveries, c.ExpectedDeliveries, c.Missing, c.Duplicates, c.Superseded, c.SupersededAfterAck)
	fmt.Fprintf(w, "  rejected-but-delivered %d, wrong recipient %d, strays %d, unknown-outcome delivered %d, senders' own messages delivered back to them %d\n",
		c.RejectedButDelivered, c.WrongRecipient, c.Strays, c.UnknownDelivered, c.SelfDeliveries)
	if c.Prefilled > 0 {
		fmt.Fprintf(w, "  prefilled %d messages (of the %d accepted): %d deliveries made, %d still waiting (prefilled, not yet claimed); %d deliveries of load-phase messages queued behind them\n",
			c.Prefilled, c.Accepted, c.PrefillDelivered, c.PrefillWaiting, c.BehindPrefill)
	}
	if c.ReadbackDone {
		fmt.Fprintf(w, "  acknowledgements verified by search: %d, not stuck %d, still queued %d\n", c.AcksChecked, c.AcksNotStuck, c.StillQueued)
	} else {
		fmt.Fprintln(w, "  acknowledgements NOT verified: the read-back search failed (see errors)")
	}
	for _, e := range c.Examples {
		fmt.Fprintf(w, "  ! %s\n", e)
	}
	if a := rep.Audit; a != nil {
		if a.UncheckedReason != "" {
			fmt.Fprintf(w, "audit trail NOT checked: %s\n", a.UncheckedReason)
		} else {
			fmt.Fprintf(w, "audit trail: %d claims, %d of them without a record naming the instance, %d naming another patient; %d messages read by search, %d without a record, %d under another patient; %d not checked (patient unknown to the tool); %d records read in %.1fs\n",
				a.Claims, a.ClaimsMissing, a.ClaimsWrong, a.Reads, a.ReadsMissing, a.ReadsWrong, a.Unknown, a.RecordsRead, a.Seconds)
		}
		for _, e := range a.Examples {
			fmt.Fprintf(w, "  ! %s\n", e)
		}
	}
	verdict := "PASS"
	if !rep.Pass {
		verdict = "FAIL (" + strings.Join(rep.failReasons(), "; ") + ")"
	}
	fmt.Fprintf(w, "consistency check: %s\n", verdict)
}

// failReasons says in words why a run did not pass.
func (rep *Report) failReasons() []string {
	c := rep.Consistency
	var out []string
	add := func(n int64, what string) {
		if n > 0 {
			out = append(out, fmt.Sprintf("%d %s", n, what))
		}
	}
	if !rep.Drained {
		out = append(out, "queues not empty at the drain timeout (the server did not keep up)")
	}
	add(c.Missing, "deliveries lost")
	add(c.Duplicates, "duplicate deliveries")
	add(c.StillQueued, "deliveries still queued")
	add(c.AcksNotStuck, "acknowledgements not stuck")
	add(c.RejectedButDelivered, "rejected messages delivered")
	add(c.WrongRecipient, "deliveries to unsubscribed instances")
	if !rep.FreshServer {
		c.Strays = 0 // messages from before the run on a server that was not empty
	}
	add(c.Strays, "deliveries of unknown messages")
	if !c.ReadbackDone {
		out = append(out, "acknowledgements could not be read back")
	}
	if c.Accepted == 0 {
		out = append(out, "no message was accepted")
	}
	if a := rep.Audit; a != nil && !a.Pass {
		add(a.ClaimsMissing+a.ReadsMissing, "claims and reads without an audit record")
		add(a.ClaimsWrong+a.ReadsWrong, "audit records naming another patient")
		if a.UncheckedReason != "" {
			out = append(out, "audit trail not checked")
		} else if a.Claims == 0 {
			out = append(out, "no claim to check in the audit trail")
		}
	}
	return out
}

// Machine is the context of a run.
type Machine struct {
	CPUs      int     `json:"cpus"`
	LoadStart float64 `json:"loadavg1_start"`
	LoadEnd   float64 `json:"loadavg1_end"`
}

// loadAvg is the 1-minute load average (0 where /proc/loadavg is missing).
func loadAvg() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return 0
	}
	var v float64
	_, _ = fmt.Sscanf(string(b), "%f", &v)
	return v
}

func oneLineCut(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// WriteJSON writes the report as indented JSON to path.
func (rep *Report) WriteJSON(path string) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

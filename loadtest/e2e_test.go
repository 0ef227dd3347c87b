package loadtest

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// buildKoppelpoort builds the koppelpoort binary for --self tests, or skips
// when the server core is not part of the tree.
func buildKoppelpoort(t *testing.T) string {
	t.Helper()
	if _, err := os.Stat(filepath.Join("..", "koppeltaal", "api")); err != nil {
		t.Skip("the Koppeltaal server core (koppeltaal/api) is not in this tree yet; end-to-end load test skipped")
	}
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command to build the server binary with")
	}
	bin := filepath.Join(t.TempDir(), "koppelpoort")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/koppelpoort")
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build koppelpoort: %v\n%s", err, out)
	}
	return bin
}

// startSelfForTest builds koppelpoort, reads scenario and starts a --self
// server for it, stopped (its data directory removed) when the test ends. The
// context ends with the test (at most 3 minutes).
func startSelfForTest(t *testing.T, scenario string) (context.Context, *Scenario, *SelfServer) {
	t.Helper()
	return startSelfWith(t, scenario, SelfOptions{})
}

// startSelfWith is startSelfForTest with options (Command is filled in).
func startSelfWith(t *testing.T, scenario string, o SelfOptions) (context.Context, *Scenario, *SelfServer) {
	t.Helper()
	bin := buildKoppelpoort(t)
	sc, err := parseScenario("scenario", []byte(scenario))
	if err != nil {
		t.Fatal(err)
	}
	sc.Defaults()
	if err := sc.Validate(true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	o.Command = []string{bin, "load", "serve-self"}
	srv, err := StartSelf(ctx, sc, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Stop(); err != nil {
			t.Error(err)
		}
		if _, err := os.Stat(srv.Dir); !os.IsNotExist(err) {
			t.Errorf("data directory %s left behind", srv.Dir)
		}
	})
	return ctx, sc, srv
}

// runPassing runs the load with o against srv and fails the test, with the
// server's log, unless the consistency check passes.
func runPassing(t *testing.T, ctx context.Context, srv *SelfServer, o Options) *Report {
	t.Helper()
	o.FreshServer, o.Target, o.Instances, o.ServerPID, o.StoreLabel, o.AuditDSN = true, srv.URL, srv.Instances, srv.PID, srv.StoreLabel, srv.DSN
	rep, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log(text.String())
	if !rep.Pass {
		t.Fatalf("consistency check failed; server log:\n%s", tail(srv.LogPath, 30))
	}
	return rep
}

// TestSelfLoadSQLite runs a short real load against a Koppelpoort child
// process on SQLite (synchronous=FULL) and requires the consistency check to pass.
func TestSelfLoadSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end load test skipped in -short mode")
	}
	ctx, sc, srv := startSelfForTest(t, "duration: 3s\ndomains: 1\npatients_per_domain: 100\nconcurrency: 4\nformat: mixed\ndrain_timeout: 60s\n")
	cr, err := srv.MeasureCommitRate(ctx, 300*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if cr.Commits == 0 || !strings.Contains(cr.Store, "synchronous=FULL") {
		t.Fatalf("commit probe: %+v", cr)
	}
	rep := runPassing(t, ctx, srv, Options{Scenario: sc, CommitRate: cr})
	c := rep.Consistency
	if rep.Posted == 0 || c.Deliveries == 0 || c.AcksChecked == 0 || rep.Acked == 0 {
		t.Fatalf("too little happened: posted %d, deliveries %d, acks checked %d", rep.Posted, c.Deliveries, c.AcksChecked)
	}
	// The audit trail names the instance and the patient of every claim and read (issue 11).
	if a := rep.Audit; a == nil || a.Claims == 0 || a.Reads == 0 || !a.Pass {
		t.Fatalf("audit trail not checked over the run: %+v", a)
	}
	if rep.Server == nil || rep.Server.MaxRSSMiB <= 0 {
		t.Fatalf("server memory not sampled: %+v", rep.Server)
	}
	ops := map[string]bool{}
	for _, o := range rep.Ops {
		ops[o.Name] = o.Count > 0 && o.P99 > 0
	}
	for _, want := range []string{OpPostAll, OpClaim, OpAck, OpReadback} {
		if !ops[want] {
			t.Errorf("no latency for %q", want)
		}
	}
	dir := t.TempDir()
	if err := rep.WriteJSON(filepath.Join(dir, "r.json")); err != nil {
		t.Fatal(err)
	}
	var back Report
	raw, _ := os.ReadFile(filepath.Join(dir, "r.json"))
	if err := json.Unmarshal(raw, &back); err != nil || back.Consistency.Accepted != c.Accepted {
		t.Fatalf("JSON report does not round-trip: %v", err)
	}
	if err := rep.WriteHTML(filepath.Join(dir, "r.html")); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(filepath.Join(dir, "r.html"))
	if !strings.Contains(string(html), "<svg") || strings.Contains(string(html), "<script") {
		t.Fatal("HTML report has no inline SVG chart or uses scripts")
	}
}

// TestSelfLoadPrefillSQLite writes 300 messages per domain straight into the
// database before the server starts (--prefill): the consumers must claim
// them all, and they must pass the consistency check with the load's own.
func TestSelfLoadPrefillSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end load test skipped in -short mode")
	}
	ctx, sc, srv := startSelfForTest(t, "duration: 3s\ndomains: 1\npatients_per_domain: 100\nconcurrency: 4\nformat: mixed\ndrain_timeout: 60s\nprefill: 300\n")
	p := srv.Prefill
	if p == nil || p.Messages() != 300 || len(p.Domains) != 1 || len(p.Domains[0].Subscribers) != sc.SubscribersPerEvent {
		t.Fatalf("prefill %+v, want 300 messages for %d subscribers", p, sc.SubscribersPerEvent)
	}
	rep := runPassing(t, ctx, srv, Options{Scenario: sc, Prefill: p})
	c := rep.Consistency
	want := int64(300 * sc.SubscribersPerEvent)
	if c.Prefilled != 300 || rep.Prefilled != 300 || c.PrefillDelivered < want || c.PrefillWaiting != 0 || c.BehindPrefill != 0 || rep.DrainEndedByPrefill {
		t.Fatalf("prefilled %d (report %d), delivered %d (want ≥ %d), still waiting %d, behind %d, drain ended by prefill %v",
			c.Prefilled, rep.Prefilled, c.PrefillDelivered, want, c.PrefillWaiting, c.BehindPrefill, rep.DrainEndedByPrefill)
	}
	if rep.Posted == 0 || c.Accepted <= 300 {
		t.Fatalf("the load itself posted nothing: posted %d, accepted %d", rep.Posted, c.Accepted)
	}
	// The deepest claims saw the prefill: at least 300 waiting per instance.
	deep := int64(0)
	for _, o := range rep.ClaimByDepth {
		if o.Name != depthBandNames[0] {
			deep += o.Count
		}
	}
	if deep == 0 {
		t.Fatalf("no claim at a queue depth of 100 or more: %+v", rep.ClaimByDepth)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "prefilled: 300 messages") || !strings.Contains(text.String(), "still waiting (prefilled, not yet claimed)") {
		t.Fatalf("report does not mention the prefill:\n%s", text.String())
	}
}

// TestSelfLoadPrefillDueSQLite: with prefill_due most of the prefill is
// written due for removal, and the prefill holds the removal job until the
// load runs. The server's first removal run must fall inside the load phase
// and remove exactly the due bodies, no due message may be delivered, and
// the read-back must skip the due Success entries and still pass.
func TestSelfLoadPrefillDueSQLite(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end load test skipped in -short mode")
	}
	ctx, sc, srv := startSelfWith(t, "duration: 8s\ndomains: 1\npatients_per_domain: 100\nconcurrency: 4\ndrain_timeout: 60s\nprefill: 2400\nprefill_due: 0.9\n",
		SelfOptions{HoldRemoval: 4 * time.Second, LogLevel: "info"})
	p := srv.Prefill
	if p == nil || p.DuePerDomain != 2160 || p.PerDomain != 240 || p.Messages() != 2400 {
		t.Fatalf("prefill %+v, want 240 waiting and 2160 due", p)
	}
	rep := runPassing(t, ctx, srv, Options{Scenario: sc, Prefill: p})
	runs, err := srv.RemovalRuns()
	if err != nil {
		t.Fatal(err)
	}
	rep.AddRemovalRuns(runs)
	var text strings.Builder
	rep.WriteText(&text)
	if len(rep.RemovalRuns) != 1 {
		t.Fatalf("want one removal run in the server log, got %+v; log:\n%s", rep.RemovalRuns, tail(srv.LogPath, 30))
	}
	r := rep.RemovalRuns[0]
	if r.BodiesRemoved != 2160 || r.Result != "ok" || r.StartS < 0 || r.EndS > rep.LoadSeconds || r.PostsDuring == 0 {
		t.Fatalf("removal run %+v: want 2160 bodies removed inside the load phase (0–%.1fs) with POSTs in it", r, rep.LoadSeconds)
	}
	if c := rep.Consistency; c.Prefilled != 240 || c.Strays != 0 || rep.PrefillDue != 2160 {
		t.Fatalf("consistency counted %d prefilled (want the 240 waiting), %d strays; report due %d", c.Prefilled, c.Strays, rep.PrefillDue)
	}
	if !strings.Contains(text.String(), "2160 due for removal") || !strings.Contains(text.String(), "2160 bodies removed") {
		t.Fatalf("report does not show the due prefill and the removal run:\n%s", text.String())
	}
}

// TestSelfLoadPrefillSnapshotSQLite: the first server with a prefill
// snapshot writes the prefill and saves it; the second copies it instead
// (same tag, no prefill of its own) and its load still claims every
// prefilled message with its own random passwords; a scenario that would
// prefill differently is refused.
func TestSelfLoadPrefillSnapshotSQLite(t *testing.T) { testPrefillSnapshot(t, "") }

// TestSelfLoadPrefillSnapshotPostgres is the same on PostgreSQL
// (KOPPELPOORT_TEST_POSTGRES_DSN): the snapshot is a database of its own.
func TestSelfLoadPrefillSnapshotPostgres(t *testing.T) {
	dsn := os.Getenv("KOPPELPOORT_TEST_POSTGRES_DSN")
	if dsn == "" {
		t.Skip("KOPPELPOORT_TEST_POSTGRES_DSN not set")
	}
	testPrefillSnapshot(t, dsn)
}

func testPrefillSnapshot(t *testing.T, pgDSN string) {
	if testing.Short() {
		t.Skip("end-to-end load test skipped in -short mode")
	}
	snap := filepath.Join(t.TempDir(), "prefill.db")
	const scenario = "duration: 2s\ndomains: 1\npatients_per_domain: 50\nconcurrency: 4\ndrain_timeout: 60s\nprefill: 200\n"
	sc, err := parseScenario("scenario", []byte(scenario))
	if err != nil {
		t.Fatal(err)
	}
	sc.Defaults()
	first, err := StartSelf(context.Background(), sc, SelfOptions{Command: []string{buildKoppelpoort(t), "load", "serve-self"}, DSN: pgDSN, PrefillSnapshot: snap})
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Stop(); err != nil {
		t.Fatal(err)
	}
	if p := first.Prefill; p == nil || p.Snapshot != "" || p.Messages() != 200 {
		t.Fatalf("first prefill %+v: want 200 written by the run", p)
	}
	raw, err := os.ReadFile(snap + ".json")
	if err != nil {
		t.Fatalf("snapshot not described: %v", err)
	}
	var meta snapshotMeta
	if err := json.Unmarshal(raw, &meta); err != nil {
		t.Fatal(err)
	}
	if pgDSN != "" {
		if meta.PostgresDatabase == "" {
			t.Fatalf("no snapshot database in %s", raw)
		}
		t.Cleanup(func() {
			s := &SelfServer{pgAdmin: pgDSN}
			if err := s.pgExec(context.Background(), "DROP DATABASE "+meta.PostgresDatabase); err != nil {
				t.Error(err)
			}
		})
	} else if _, err := os.Stat(snap); err != nil {
		t.Fatalf("snapshot not saved: %v", err)
	}

	ctx, sc, second := startSelfWith(t, scenario, SelfOptions{DSN: pgDSN, PrefillSnapshot: snap})
	p := second.Prefill
	if p == nil || p.Snapshot != snap || p.Tag != first.Prefill.Tag || p.Messages() != 200 {
		t.Fatalf("second prefill %+v: want the first one's (tag %s) copied from %s", p, first.Prefill.Tag, snap)
	}
	rep := runPassing(t, ctx, second, Options{Scenario: sc, Prefill: p})
	if c := rep.Consistency; c.Prefilled != 200 || c.PrefillDelivered < 200*int64(sc.SubscribersPerEvent) || c.PrefillWaiting != 0 {
		t.Fatalf("prefilled %d, delivered %d, waiting %d: want all 200 claimed by each of %d subscribers",
			c.Prefilled, c.PrefillDelivered, c.PrefillWaiting, sc.SubscribersPerEvent)
	}
	var text strings.Builder
	rep.WriteText(&text)
	if !strings.Contains(text.String(), "copied from the snapshot "+snap) {
		t.Fatalf("report does not say where the prefill came from:\n%s", text.String())
	}

	other, err := parseScenario("scenario", []byte(strings.Replace(scenario, "prefill: 200", "prefill: 300", 1)))
	if err != nil {
		t.Fatal(err)
	}
	other.Defaults()
	_, err = StartSelf(ctx, other, SelfOptions{Command: []string{"/bin/false"}, DSN: pgDSN, PrefillSnapshot: snap})
	if err == nil || !strings.Contains(err.Error(), "was written for") {
		t.Fatalf("a snapshot of another prefill was used: %v", err)
	}
}

package loadtest

import (
	"context"
	"database/sql"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // driver "pgx"

	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// EnvFailover turns TestFailover on: the number of failovers ("3"). With
// EnvFailoverMode=async the standby is asynchronous, to measure what that loses.
const (
	EnvFailover     = "KOPPELPOORT_TEST_FAILOVER"
	EnvFailoverMode = "KOPPELPOORT_TEST_FAILOVER_MODE"
)

// standbyName is the standby's application_name, listed in synchronous_standby_names on both sides.
const standbyName = "kp_standby"

// TestFailover runs the load against a Koppelpoort on a primary with a
// streaming standby (docs/operations.md, the two-site recipe) and, every
// period, SIGKILLs the primary, promotes the standby and rebuilds the old
// primary as the new standby. Koppelpoort is not restarted: its multi-host DSN
// (target_session_attrs=read-write) finds the new primary by itself. The load
// tool's consistency check must pass: every accepted message delivered, every
// acknowledgement stuck, nothing twice. Minutes long, so opt-in:
//
//	KOPPELPOORT_TEST_FAILOVER=3 go test -run TestFailover -v -timeout 20m ./loadtest/
//	KOPPELPOORT_TEST_FAILOVER=3 KOPPELPOORT_TEST_FAILOVER_MODE=async go test -run TestFailover -v ./loadtest/
func TestFailover(t *testing.T) {
	cycles, _ := strconv.Atoi(os.Getenv(EnvFailover))
	if cycles <= 0 {
		t.Skipf("failover test skipped: set %s to the number of failovers (e.g. 3); it takes minutes", EnvFailover)
	}
	async := os.Getenv(EnvFailoverMode) == "async"
	conf := []string{"wal_level = replica", "max_wal_senders = 10", "wal_keep_size = '256MB'", "hot_standby = on",
		"synchronous_commit = on"}
	if !async {
		conf = append(conf, "synchronous_standby_names = '"+standbyName+"'")
	}
	primary := storetest.NewCluster(t, conf...)
	standby := storetest.NewStandby(t, primary, standbyName)
	waitStreaming(t, primary, !async)
	dsn := fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/postgres?sslmode=disable&target_session_attrs=read-write&connect_timeout=2",
		primary.Port, standby.Port)

	const period = 25 * time.Second
	bin := buildKoppelpoort(t)
	sc, err := parseScenario("scenario", []byte(fmt.Sprintf(`
duration: %s
rate: 100
domains: 2
patients_per_domain: 500
consumers_per_instance: 2
drain_timeout: 120s
request_timeout: 20s
`, time.Duration(cycles+1)*period)))
	if err != nil {
		t.Fatal(err)
	}
	sc.Defaults()
	if err := sc.Validate(true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(cycles+1)*period+10*time.Minute)
	defer cancel()
	srv, err := StartSelf(ctx, sc, SelfOptions{Command: []string{bin, "load", "serve-self"}, DSN: dsn, ClaimTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := srv.Stop(); err != nil {
			t.Log(err)
		}
	}()

	outages := make(chan time.Duration, cycles) // kill → Koppelpoort ready again

	go func() {
		defer close(outages)
		for i := 0; i < cycles; i++ {
			select {
			case <-ctx.Done():
				return
			case <-time.After(period):
			}
			start := time.Now()
			primary.Kill()
			standby.Promote()
			promoted := time.Since(start)
			primary.Rebuild(standby, standbyName) // the old primary's site comes back as the standby
			primary, standby = standby, primary
			waitStreaming(t, primary, !async)
			waitReady(ctx, srv.URL)
			outages <- time.Since(start)
			t.Logf("failover %d: primary killed, standby promoted after %s, old primary rebuilt as standby; Koppelpoort ready %s after the kill",
				i+1, promoted.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
		}
	}()
	rep, err := Run(ctx, Options{Scenario: sc, Target: srv.URL, Instances: srv.Instances, ServerPID: srv.PID,
		StoreLabel: srv.StoreLabel, FreshServer: true})
	if err != nil {
		t.Fatal(err)
	}
	n, downtimes := 0, []string{}
	for d := range outages {
		n++
		downtimes = append(downtimes, d.Round(100*time.Millisecond).String())
	}
	var text strings.Builder
	rep.WriteText(&text)
	t.Log(text.String())
	c := rep.Consistency
	mode := "synchronous"
	if async {
		mode = "asynchronous"
	}
	t.Logf("FAILOVER (%s standby): cycles %d (kill to ready: %s), accepted %d, lost %d, acknowledgements lost %d (of %d checked), duplicates %d, unknown outcome %d",
		mode, n, strings.Join(downtimes, ", "), c.Accepted, c.Missing, c.AcksNotStuck, c.AcksChecked, c.Duplicates, c.Unknown)
	if n != cycles {
		t.Errorf("%d of %d failovers done", n, cycles)
	}
	if async {
		return // measured, not asserted: an asynchronous standby may lose what it had not received
	}
	if !rep.Pass || c.Missing != 0 || c.AcksNotStuck != 0 {
		t.Fatalf("a synchronous standby must lose nothing accepted; server log:\n%s", tail(srv.LogPath, 40))
	}
}

// waitStreaming waits until primary has a streaming standby (a synchronous one when sync).
func waitStreaming(t *testing.T, primary *storetest.Cluster, sync bool) {
	t.Helper()
	db, err := sql.Open("pgx", primary.DSN(""))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	want := "async"
	if sync {
		want = "sync"
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		var n int
		err := db.QueryRow("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state = $1", want).Scan(&n)
		if err == nil && n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s standby streaming from port %d within 60s (%v)", want, primary.Port, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitReady polls the server's /readyz until it answers 200.
func waitReady(ctx context.Context, base string) {
	hc := &http.Client{Timeout: 2 * time.Second}
	for ctx.Err() == nil {
		if resp, err := hc.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

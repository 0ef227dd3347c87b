package main

import (
	"database/sql"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const twoProcessConfig = `store: {dsn: "%DSN%"}
log: {level: info}
koppeltaal:
  claim_timeout: 1s
  sweep_interval: 200ms
  domains: [{name: Demo}]
  applications:
    - {id: EPD, name: EPD}
    - {id: Portal, name: Portal, roles: [PatientPortal]}
  instances:
    - {application: EPD, domain: Demo, username: epd@demo, password: demo-epd}
    - application: Portal
      domain: Demo
      username: portal@demo
      password: demo-portal
      subscriptions: [CreateOrUpdatePatient]
      webhook: {url: "%HOOK%"}
`

// leaseHolders reads which process (pid) holds each unexpired lease.
func leaseHolders(t *testing.T, db *sql.DB) map[string]int {
	t.Helper()
	rows, err := db.Query(`SELECT name, holder FROM runner_leases
		WHERE expires_at > CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	held := map[string]int{}
	for rows.Next() {
		var name, holder string
		if err := rows.Scan(&name, &holder); err != nil {
			t.Fatal(err)
		}
		parts := strings.Split(holder, ":") // host:pid:random
		if len(parts) < 3 {
			t.Fatalf("lease %s: holder %q", name, holder)
		}
		held[name], _ = strconv.Atoi(parts[len(parts)-2])
	}
	return held
}

// Two `koppelpoort serve` processes on one PostgreSQL database: the claim
// sweeper and the removal job each run in one of them (a lease), every
// webhook is called once, a timed-out claim is swept back whichever process
// took it, and when the sweeping process is killed the other one takes over.
func TestServeTwoProcessesShareTheBackgroundJobs(t *testing.T) {
	b := storetest.NewPostgres(t)
	var mu sync.Mutex
	calls := map[string]int{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.Header.Get("KoppeltaalMessageIdentifier")]++
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	dir := t.TempDir()
	cfg := strings.NewReplacer("%DSN%", b.DSN, "%HOOK%", hook.URL).Replace(twoProcessConfig)
	if err := os.WriteFile(filepath.Join(dir, "kp.yaml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var ks []*kpClient
	pids := map[int]int{} // pid → index
	procs := []*os.Process{}
	for i := range 2 {
		base, cmd, _, _ := startBinary(t, dir, nil, "--config", filepath.Join(dir, "kp.yaml"))
		ks = append(ks, newKPClient(t, base))
		pids[cmd.Process.Pid] = i
		procs = append(procs, cmd.Process)
	}
	db, err := sql.Open("pgx", b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var held map[string]int
	eventuallyTrue(t, "sweeper and removal job leased", 20*time.Second, func() bool {
		held = leaseHolders(t, db)
		_, s := held[koppeltaal.SweeperJob]
		_, r := held[koppeltaal.RetentionJob]
		return s && r
	})
	for _, job := range []string{koppeltaal.SweeperJob, koppeltaal.RetentionJob} {
		if _, ours := pids[held[job]]; !ours {
			t.Fatalf("%s held by pid %d, not one of the two servers %v", job, held[job], pids)
		}
	}

	// Messages posted through both: one webhook call each.
	const n = 20
	for i := range n {
		if r := ks[i%2].do(call{name: "post", method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: demoEPD, body: newPatientMessage(t)}, dstu1.FormatJSON); r.status != 200 {
			t.Fatalf("post %d: %s", i, r)
		}
	}
	eventuallyTrue(t, "a webhook call for every message", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls) == n
	})
	time.Sleep(1500 * time.Millisecond) // room for a second call, should one come
	mu.Lock()
	for id, c := range calls {
		if c != 1 || id == "" {
			t.Errorf("webhook for message %q called %d times, want once", id, c)
		}
	}
	mu.Unlock()

	// A claim left unacknowledged is swept back by the sweeping process, whichever took it.
	sweptBack := func(k *kpClient, what string) {
		t.Helper()
		claim := call{name: "claim", method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", user: demoPortal}
		r := k.do(claim, dstu1.FormatJSON)
		iid := iidRE.FindStringSubmatch(string(r.body))
		if r.status != 200 || iid == nil {
			t.Fatalf("%s: claim: %s", what, r)
		}
		eventuallyTrue(t, what+": the timed-out claim of "+iid[1]+" swept back", 15*time.Second, func() bool {
			r := k.do(call{name: "read", method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/" + iid[1], user: demoPortal}, dstu1.FormatJSON)
			return r.status == 200 && strings.Contains(string(r.body), `"valueCode":"New"`)
		})
	}
	sweeper := pids[held[koppeltaal.SweeperJob]]
	sweptBack(ks[1-sweeper], "claimed through the process that does not sweep")

	// SIGKILL of the sweeping process: no release; the other takes the lease once it expired.
	killed := held[koppeltaal.SweeperJob]
	if err := procs[sweeper].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = procs[sweeper].Wait()
	start := time.Now()
	eventuallyTrue(t, "the other process takes the sweeper over", 20*time.Second, func() bool {
		h := leaseHolders(t, db)
		pid, ok := h[koppeltaal.SweeperJob]
		return ok && pid != killed
	})
	t.Logf("sweeper taken over %s after the SIGKILL of pid %d", time.Since(start).Round(time.Millisecond), killed)
	sweptBack(ks[1-sweeper], "after the takeover")
}

package api_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// While the database cannot commit — PostgreSQL stopped or read-only, a full
// disk under SQLite — Koppeltaal calls get 503 with an OperationOutcome and
// Retry-After (not 500), /readyz is not ready, reads that can be served are,
// nothing half-written stays, and everything resumes by itself.

// readyz answers /readyz of the real front door on st.
func readyz(t *testing.T, st *store.Store) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	server.New(server.Options{Ready: st.Ready}).Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
	return rec.Code, rec.Body.String()
}

// wantUnavailable checks a 503 reply: Retry-After and an OperationOutcome in the client's format.
func wantUnavailable(t *testing.T, what string, r reply) {
	t.Helper()
	if r.Status != http.StatusServiceUnavailable {
		t.Fatalf("%s while the database is unavailable: %d %s, want 503", what, r.Status, r)
	}
	if r.Header.Get("Retry-After") != fmt.Sprint(api.RetryAfterUnavailable) {
		t.Errorf("%s: Retry-After %q", what, r.Header.Get("Retry-After"))
	}
	if msgs := outcome(t, r); len(msgs) != 1 || !strings.Contains(msgs[0], "unavailable") {
		t.Errorf("%s: OperationOutcome %v", what, msgs)
	}
}

// eventually retries do until it returns true or d passes.
func eventually(t *testing.T, what string, d time.Duration, do func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !do() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// entriesOf counts the game's queue entries (any status): what was stored.
func entriesOf(t *testing.T, h *harness) string {
	t.Helper()
	r := h.do(req{method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&_count=1", user: "game@a", pass: "ga", accept: "application/json"})
	if r.Status != 200 {
		t.Fatalf("search: %d %s", r.Status, r)
	}
	return bundleOf(t, r).TotalResults
}

func TestPostgresStoppedOrReadOnlyIs503AndResumes(t *testing.T) {
	c := storetest.NewCluster(t)
	c.Exec("CREATE DATABASE kp")
	st, err := store.Open(ctx, store.Config{DSN: c.DSN("kp"), ConnectTimeout: 2 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := newHarnessOn(t, st, twoDomains())
	n, accepted := 0, 0
	post := func() reply {
		n++
		r := postAs(h, "portal@a", "pa", patientMessage("A", fmt.Sprintf("https://a.example/Patient/u%d", n)), dstu1.FormatJSON)
		if r.Status == 200 {
			accepted++
		}
		return r
	}
	for range 3 {
		if r := post(); r.Status != 200 {
			t.Fatalf("post: %d %s", r.Status, r)
		}
	}

	// A crash of the database server: every call that needs it is 503, not 500.
	c.Stop("immediate")
	wantUnavailable(t, "POST", post())
	wantUnavailable(t, "claim", claim(h, "game@a", "ga", dstu1.FormatJSON))
	if code, body := readyz(t, st); code != 503 {
		t.Fatalf("/readyz with the database stopped: %d %s", code, body)
	}
	c.Start()
	eventually(t, "POST after the database is back", 20*time.Second, func() bool { return post().Status == 200 })
	eventually(t, "/readyz after the database is back", 10*time.Second, func() bool { code, _ := readyz(t, st); return code == 200 })

	// Read-only (a standby promoted the wrong way round, or default_transaction_read_only): reads still work.
	c.Exec("ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
	eventually(t, "POST refused by a read-only database", 10*time.Second, func() bool { return post().Status == 503 })
	wantUnavailable(t, "POST", post())
	if got := entriesOf(t, h); got != fmt.Sprint(accepted) {
		t.Fatalf("search while read-only: %s entries, want the %d accepted (refused POSTs leave nothing)", got, accepted)
	}
	if code, body := readyz(t, st); code != 503 || !strings.Contains(body, "read-only") {
		t.Fatalf("/readyz with a read-only database: %d %s", code, body)
	}
	c.Exec("ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
	eventually(t, "POST after read-only ends", 10*time.Second, func() bool { return post().Status == 200 })
	if code, body := readyz(t, st); code != 200 {
		t.Fatalf("/readyz after read-only ends: %d %s", code, body)
	}
	if got := entriesOf(t, h); got != fmt.Sprint(accepted) {
		t.Fatalf("%s entries, want the %d accepted", got, accepted)
	}

	// A server started on a read-only database (migrations applied) comes up not ready.
	c.Exec("ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
	ro, err := store.Open(ctx, store.Config{DSN: c.DSN("kp")}, nil)
	if err != nil {
		t.Fatalf("open on a read-only database: %v", err)
	}
	defer ro.Close()
	if code, body := readyz(t, ro); code != 503 || !strings.Contains(body, "read-only") {
		t.Fatalf("/readyz of a server started on a read-only database: %d %s", code, body)
	}
}

// mountTmpfs mounts a tmpfs of size (e.g. "24m") for the test, or skips it
// (mounting needs root and the privilege to mount).
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("needs a small file system of its own: mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

func TestSQLiteFullDiskIs503AndResumes(t *testing.T) {
	dir := mountTmpfs(t, "24m")
	st, err := store.Open(ctx, store.Config{DSN: filepath.Join(dir, "kp.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	h := newHarnessOn(t, st, twoDomains())
	n, accepted := 0, 0
	post := func() reply {
		n++
		r := postAs(h, "portal@a", "pa", patientMessage("A", fmt.Sprintf("https://a.example/Patient/f%d", n)), dstu1.FormatJSON)
		if r.Status == 200 {
			accepted++
		}
		return r
	}
	for range 5 {
		if r := post(); r.Status != 200 {
			t.Fatalf("post: %d %s", r.Status, r)
		}
	}
	// Fill the file system.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 256<<10)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	f.Close()
	// Not ready as soon as the disk is full, before any commit failed: a small
	// commit (the probe) may still fit in the WAL's reused frames.
	if code, body := readyz(t, st); code != 503 {
		t.Fatalf("/readyz once the disk is full: %d %s", code, body)
	}
	// The WAL may still have room for a few commits; then every POST is refused.
	var refused reply
	eventually(t, "a POST refused on the full disk", 20*time.Second, func() bool {
		refused = post()
		return refused.Status != 200
	})
	wantUnavailable(t, "POST", refused)
	if got := entriesOf(t, h); got != fmt.Sprint(accepted) {
		t.Fatalf("search on the full disk: %s entries, want the %d accepted", got, accepted)
	}
	if code, body := readyz(t, st); code != 503 {
		t.Fatalf("/readyz on the full disk: %d %s", code, body)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	eventually(t, "POST after space is freed", 20*time.Second, func() bool { return post().Status == 200 })
	eventually(t, "/readyz after space is freed", 10*time.Second, func() bool { code, _ := readyz(t, st); return code == 200 })
	if got := entriesOf(t, h); got != fmt.Sprint(accepted) {
		t.Fatalf("%s entries, want the %d accepted", got, accepted)
	}
}

// A server started on a read-only store says so instead of coming up ready:
// SQLite in WAL mode cannot even read a database whose directory is read-only
// (it must create the -shm file), so Open refuses, naming the reason.
func TestSQLiteReadOnlyStoreRefusesToStart(t *testing.T) {
	dir := mountTmpfs(t, "24m")
	dsn := filepath.Join(dir, "kp.db")
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessOn(t, st, twoDomains())
	if r := postAs(h, "portal@a", "pa", patientMessage("A", "https://a.example/Patient/ro"), dstu1.FormatJSON); r.Status != 200 {
		t.Fatalf("post: %d %s", r.Status, r)
	}
	h.ts.Close()
	st.Close()
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v %s", err, out)
	}
	st, err = store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err == nil {
		st.Close()
		t.Fatal("a store on a read-only file system opened; want a refusal that says why")
	}
	if !strings.Contains(err.Error(), "read-only file system") {
		t.Fatalf("open on a read-only file system: %v; want it to say so", err)
	}
}

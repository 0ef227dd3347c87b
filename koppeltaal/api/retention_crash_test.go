package api_test

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const (
	retentionChildEnv = "KOPPELPOORT_KT_RETENTION_CHILD_DSN"
	retentionNowEnv   = "KOPPELPOORT_KT_RETENTION_NOW"
)

// runRetentionChild is the process the removal-run crash test kills: one
// removal run on dsn at the clock the parent gives, in batches of five.
func runRetentionChild(dsn string) {
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	cfg := retentionConfig(nil)
	cfg.Retention.BatchSize = 5
	svc, err := koppeltaal.NewService(st, cfg, nil, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	us, _ := strconv.ParseInt(os.Getenv(retentionNowEnv), 10, 64)
	svc.SetClock(func() time.Time { return time.UnixMicro(us) })
	fmt.Println("removing")
	res, err := svc.RemoveExpired(ctx)
	fmt.Fprintln(os.Stderr, "child: run ended before the kill:", res, err)
	os.Exit(0)
}

// TestRetentionCrashMidRun SIGKILLs a process in the middle of a removal run.
// Every message is then either wholly expired (no body, row and every queue
// entry marked, the resource store holding the content) or wholly untouched;
// the messages that were not due — one of them acknowledged by one recipient
// only — keep their bodies; and the next run finishes the work.
func TestRetentionCrashMidRun(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		h := newHarnessOn(t, st, retentionConfig(nil))
		start := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
		var mu sync.Mutex
		now := start
		h.srv.Service().SetClock(func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
		e := &retEnv{harness: h}
		const due = 600
		postMany(t, h, due, "due")
		mu.Lock()
		now = start.Add(50 * 24 * time.Hour)
		mu.Unlock()
		postMany(t, h, 10, "young")
		young := e.claim("game@r", "gr", "")
		e.ack("game@r", "gr", young) // acknowledged by one of its two recipients: must survive

		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), retentionChildEnv+"="+b.DSN,
			retentionNowEnv+"="+strconv.FormatInt(start.Add(57*24*time.Hour).UnixMicro(), 10))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			_, expired, _ := e.state()
			if expired >= 40 {
				break
			}
			if time.Now().After(deadline) || cmd.ProcessState != nil {
				_ = cmd.Process.Kill()
				t.Fatalf("the child removed only %d messages in time", expired)
			}
			time.Sleep(2 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if st := cmd.ProcessState; st.Exited() && st.ExitCode() == 0 {
			t.Fatalf("the child finished its run before the kill: make the run longer")
		}
		_, expired, _ := e.state()
		if expired >= due {
			t.Fatalf("all %d due messages were removed before the kill", expired)
		}
		checkWholeOrUntouched(t, st)
		t.Logf("%s: killed after %d of %d due messages", b.Name, expired, due)

		mu.Lock()
		now = start.Add(57 * 24 * time.Hour)
		mu.Unlock()
		if _, err := h.srv.Service().RemoveExpired(ctx); err != nil {
			t.Fatal(err)
		}
		checkWholeOrUntouched(t, st)
		e.expectState("after the next run", 10, due, 2*due)
		var status string
		if err := st.View(ctx, func(tx *store.Tx) error {
			return tx.Get(ctx, &status, "SELECT status FROM queue WHERE id = ?", entryID(t, young))
		}); err != nil || status != "Success" {
			t.Fatalf("the acknowledged young message: %q %v", status, err)
		}
	})
}

func entryID(t *testing.T, msg *dstu1.Bundle) int64 {
	t.Helper()
	id, _, err := koppeltaal.ParseEntryRef(msg.Entries[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// postMany posts n CarePlan messages from the portal, eight at a time.
func postMany(t *testing.T, h *harness, n int, prefix string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 8)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			plan := fmt.Sprintf("https://portal.example/fhir/Koppeltaal/CarePlan/%s-%d", prefix, i)
			st, body, err := postRaw(h, "portal@r", "pr", carePlanMessage(retDomain, plan, "", retPatient, "note "+prefix).JSON(), 30*time.Second)
			if err == nil && st != 200 {
				err = fmt.Errorf("post %s: %d %s", plan, st, body)
			}
			if err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// checkWholeOrUntouched: no message is half-removed.
func checkWholeOrUntouched(t *testing.T, st *store.Store) {
	t.Helper()
	var bad []struct {
		ID int64 `db:"id"`
	}
	err := st.View(ctx, func(tx *store.Tx) error {
		// Expired: no body row, no body id, every entry marked, the focal CarePlan's content kept.
		// Not expired: a body, no entry marked.
		return tx.Select(ctx, &bad, `SELECT m.id FROM messages m LEFT JOIN message_bodies b ON b.id = m.body_id
			LEFT JOIN resources r ON r.domain_id = m.domain_id AND r.url = m.focal_ref
			WHERE (m.is_expired AND (m.body_id IS NOT NULL OR r.content IS NULL
			       OR EXISTS (SELECT 1 FROM queue q WHERE q.message_id = m.id AND NOT q.is_expired)))
			   OR (NOT m.is_expired AND (b.id IS NULL
			       OR EXISTS (SELECT 1 FROM queue q WHERE q.message_id = m.id AND q.is_expired)))`)
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(bad) > 0 {
		t.Fatalf("%d messages half-removed (first: %d)", len(bad), bad[0].ID)
	}
	var orphans int
	if err := st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &orphans, "SELECT COUNT(*) FROM message_bodies b WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.body_id = b.id)")
	}); err != nil || orphans != 0 {
		t.Fatalf("%d bodies without a message (%v)", orphans, err)
	}
}

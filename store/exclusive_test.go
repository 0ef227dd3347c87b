package store_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// The helper process of TestExclusiveJobRunsInOneProcess: it runs an exclusive
// job that writes a heartbeat row (its pid, the database clock) every 25 ms.
const envExclusiveHelper = "KOPPELPOORT_TEST_EXCLUSIVE_HELPER_DSN"

const exclusiveTTL = 900 * time.Millisecond

func TestExclusiveHelperProcess(t *testing.T) {
	dsn := os.Getenv(envExclusiveHelper)
	if dsn == "" {
		t.Skip("helper process of TestExclusiveJobRunsInOneProcess")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pid := os.Getpid()
	err = st.RunExclusive(ctx, "test-job", store.ExclusiveOptions{TTL: exclusiveTTL, Poll: 100 * time.Millisecond},
		func(ctx context.Context) error {
			for ctx.Err() == nil {
				if err := st.Update(ctx, func(tx *store.Tx) error {
					_, err := tx.Exec(ctx, "INSERT INTO exclusive_beats (pid, at) VALUES (?, "+nowSQL(st)+")", pid)
					return err
				}); err != nil && ctx.Err() == nil {
					return err
				}
				select {
				case <-ctx.Done():
				case <-time.After(25 * time.Millisecond):
				}
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
}

func nowSQL(st *store.Store) string {
	if st.Dialect() == store.Postgres {
		return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
	}
	return "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"
}

type beat struct {
	PID int   `db:"pid"`
	At  int64 `db:"at"`
}

// TestExclusiveJobRunsInOneProcess starts two processes running the same
// exclusive job on one database: only one runs it; when that one is killed
// (SIGKILL: no release) the other takes over after the lease expires, never
// overlapping; a graceful stop releases the lease at once.
func TestExclusiveJobRunsInOneProcess(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx := context.Background()
		if err := st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "CREATE TABLE exclusive_beats (pid BIGINT NOT NULL, at BIGINT NOT NULL)")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		start := func() *exec.Cmd {
			cmd := exec.Command(os.Args[0], "-test.run=^TestExclusiveHelperProcess$", "-test.count=1")
			cmd.Env = append(os.Environ(), envExclusiveHelper+"="+b.DSN)
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
			return cmd
		}
		beats := func() []beat {
			var bs []beat
			if err := st.View(ctx, func(tx *store.Tx) error {
				return tx.Select(ctx, &bs, "SELECT pid, at FROM exclusive_beats ORDER BY at, pid")
			}); err != nil {
				t.Fatal(err)
			}
			return bs
		}
		waitFor := func(what string, d time.Duration, cond func([]beat) bool) []beat {
			deadline := time.Now().Add(d)
			for {
				bs := beats()
				if cond(bs) {
					return bs
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s: not within %s (%d beats)", what, d, len(bs))
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		a, b2 := start(), start()
		procs := map[int]*exec.Cmd{a.Process.Pid: a, b2.Process.Pid: b2}
		bs := waitFor("first holder runs", 20*time.Second, func(bs []beat) bool { return len(bs) >= 40 })
		first := bs[0].PID
		for _, x := range bs {
			if x.PID != first {
				t.Fatalf("two processes ran the job at once: beats of %d and %d", first, x.PID)
			}
		}
		// SIGKILL: the lease is not released; the other process must wait for it to expire.
		killedAt := time.Now()
		if err := procs[first].Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = procs[first].Wait()
		lastOfFirst := beats()[len(beats())-1].At
		var second int
		for pid := range procs {
			if pid != first {
				second = pid
			}
		}
		bs = waitFor("the other process takes over", 10*time.Second, func(bs []beat) bool { return bs[len(bs)-1].PID == second })
		took := time.Since(killedAt)
		firstOfSecond := int64(0)
		for _, x := range bs {
			if x.PID == second && firstOfSecond == 0 {
				firstOfSecond = x.At
			}
			if firstOfSecond != 0 && x.PID == first {
				t.Fatalf("beats of the killed process after the other's first beat")
			}
		}
		gap := time.Duration(firstOfSecond-lastOfFirst) * time.Microsecond
		if gap < exclusiveTTL/3 {
			t.Fatalf("takeover %s after the killed holder's last beat: before its lease (%s) could have expired", gap, exclusiveTTL)
		}
		t.Logf("%s: holder %d killed; %d took over %s later (gap between beats %s)", b.Name, first, second, took.Round(time.Millisecond), gap.Round(time.Millisecond))

		// A graceful stop releases the lease: a new process takes over without waiting for expiry.
		c := start()
		if err := procs[second].Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		_ = procs[second].Wait()
		holder, _, held, err := st.LeaseHolder(ctx, "test-job")
		if err != nil {
			t.Fatal(err)
		}
		if held && holder != "" && !strings.Contains(holder, ":"+strconv.Itoa(c.Process.Pid)+":") {
			t.Fatalf("lease still held by %s after its process stopped gracefully", holder)
		}
		waitFor("a third process takes over", 10*time.Second, func(bs []beat) bool { return bs[len(bs)-1].PID == c.Process.Pid })
	})
}

// TestExclusiveJobStopsWhenItsLeaseIsTaken: a job whose lease another holder
// took (here: written over, as after a long pause of this process) is
// cancelled with ErrLeaseLost, before it could run alongside the new holder.
func TestExclusiveJobStopsWhenItsLeaseIsTaken(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		started := make(chan struct{}, 4)
		causes := make(chan error, 4)
		done := make(chan error, 1)
		go func() {
			done <- st.RunExclusive(ctx, "stolen", store.ExclusiveOptions{TTL: 600 * time.Millisecond, Poll: time.Hour},
				func(jctx context.Context) error {
					started <- struct{}{}
					<-jctx.Done()
					causes <- context.Cause(jctx)
					return nil
				})
		}()
		<-started
		if err := st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "UPDATE runner_leases SET holder = 'someone-else' WHERE name = 'stolen'")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		select {
		case cause := <-causes:
			if !errors.Is(cause, store.ErrLeaseLost) {
				t.Fatalf("job cancelled with %v, want ErrLeaseLost", cause)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("job still running after its lease was taken")
		}
		holder, _, held, err := st.LeaseHolder(ctx, "stolen")
		if err != nil || !held || holder != "someone-else" {
			t.Fatalf("lease after losing it: %q held=%v err=%v; the loser must not delete the new holder's lease", holder, held, err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

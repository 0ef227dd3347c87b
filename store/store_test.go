package store_test

import (
	"bufio"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var ctx = context.Background()

// fixture provisions a domain with one application instance and returns their ids.
func fixture(t testing.TB, s *store.Store, domain, user string) (domainID, instanceID int64) {
	t.Helper()
	err := s.Update(ctx, func(tx *store.Tx) error {
		var err error
		domainID, _, err = tx.EnsureDomain(ctx, domain)
		if err != nil {
			return err
		}
		appID, _, err := tx.PutApplication(ctx, store.Application{Ident: "app-" + user, Name: user})
		if err != nil {
			return err
		}
		instanceID, _, err = tx.PutInstance(ctx, store.Instance{DomainID: domainID, ApplicationID: appID,
			Username: user, PasswordHash: "x", APIVersion: "1.3.5"}, nil)
		return err
	})
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return domainID, instanceID
}

// queueMessages stores n messages each queued for instanceID, returning the entry ids. The queue rows are
// written with the columns of migration 0001 (no MessageIdentifier: an entry as queued before migration
// 0027), so that upgrade tests can queue on an old schema.
func queueMessages(t testing.TB, s *store.Store, domainID, instanceID int64, n int) []int64 {
	t.Helper()
	var ids []int64
	err := s.Update(ctx, func(tx *store.Tx) error {
		for i := 0; i < n; i++ {
			mid, err := tx.InsertMessage(ctx, store.Message{DomainID: domainID, SenderInstanceID: instanceID,
				Event: "CreateOrUpdatePatient", MessageIdentifier: fmt.Sprint("m", i), FocalRef: fmt.Sprint("http://x/Patient/", i)})
			if err != nil {
				return err
			}
			id, err := tx.InsertID(ctx, `INSERT INTO queue (domain_id, instance_id, message_id, event, focal_ref, status,
				status_changed_at, version, created_at) VALUES (?, ?, ?, 'CreateOrUpdatePatient', ?, ?, 1, 'v', 1)`,
				domainID, instanceID, mid, fmt.Sprint("http://x/Patient/", i), store.StatusNew)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("queue messages: %v", err)
	}
	return ids
}

func countDomains(t testing.TB, s *store.Store) int {
	t.Helper()
	n := 0
	err := s.View(ctx, func(tx *store.Tx) error {
		for i := 0; ; i++ {
			if _, err := tx.DomainByName(ctx, fmt.Sprint("d", i)); errors.Is(err, store.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			n++
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMigrationsIdempotentAndReady(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		for i := 0; i < 3; i++ {
			s, err := store.Open(ctx, store.Config{DSN: b.DSN}, nil)
			if err != nil {
				t.Fatalf("open #%d: %v", i, err)
			}
			if err := s.Ready(ctx); err != nil {
				t.Fatalf("ready #%d: %v", i, err)
			}
			if got := string(s.Dialect()); got != b.Name {
				t.Fatalf("dialect %q, want %q", got, b.Name)
			}
			s.Close()
		}
	})
}

func TestConcurrentOpenersMigrateOnce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		const n = 4
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, err := store.Open(ctx, store.Config{DSN: b.DSN}, nil)
				if err != nil {
					errs <- err
					return
				}
				errs <- s.Ready(ctx)
				s.Close()
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("concurrent open: %v", err)
			}
		}
		s := b.Open(t)
		if err := s.Ready(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

// TestOpenWaitsForAnotherCreatorOfTheFile: while another connection holds the
// write lock of a new, empty file, Open's switch to WAL fails at once with
// SQLITE_BUSY (SQLite skips the busy timeout when a read lock must be
// upgraded); Open must wait for the lock instead, as processes started
// together on a new file do.
func TestOpenWaitsForAnotherCreatorOfTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kp.db")
	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	opened := make(chan error, 1)
	go func() {
		s, err := store.Open(ctx, store.Config{DSN: path}, nil)
		if err == nil {
			err = s.Ready(ctx)
			s.Close()
		}
		opened <- err
	}()
	select {
	case err := <-opened:
		t.Fatalf("Open returned while another connection held the write lock: %v", err)
	case <-time.After(300 * time.Millisecond): // Open's first attempt fails within milliseconds without the wait
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	if err := <-opened; err != nil {
		t.Fatalf("Open after the lock was released: %v", err)
	}
}

func TestWritesSurviveReopen(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s, err := store.Open(ctx, store.Config{DSN: b.DSN}, nil)
		if err != nil {
			t.Fatal(err)
		}
		dID, iID := fixture(t, s, "Durable", "u1")
		ids := queueMessages(t, s, dID, iID, 3)
		s.Close()

		s2 := b.Open(t)
		err = s2.View(ctx, func(tx *store.Tx) error {
			in, err := tx.InstanceByUsername(ctx, "u1")
			if err != nil {
				return err
			}
			if in.DomainName != "Durable" || in.ID != iID {
				return fmt.Errorf("instance after reopen: %+v", in)
			}
			for _, id := range ids {
				if _, err := tx.EntryForInstance(ctx, iID, id); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("after reopen: %v", err)
		}
	})
}

func TestFailedTransactionLeavesNothing(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		boom := errors.New("boom")
		cases := []struct {
			name string
			fn   func(tx *store.Tx) error
		}{
			{"callback error", func(tx *store.Tx) error {
				if _, _, err := tx.EnsureDomain(ctx, "d0"); err != nil {
					return err
				}
				return boom
			}},
			{"constraint violation after a write", func(tx *store.Tx) error {
				if _, _, err := tx.EnsureDomain(ctx, "d0"); err != nil {
					return err
				}
				// instance referencing a missing domain: foreign key violation
				_, _, err := tx.PutInstance(ctx, store.Instance{DomainID: 999999, ApplicationID: 999999, Username: "x"}, nil)
				return err
			}},
		}
		for _, c := range cases {
			err := s.Update(ctx, c.fn)
			if err == nil {
				t.Fatalf("%s: Update returned nil", c.name)
			}
			if n := countDomains(t, s); n != 0 {
				t.Fatalf("%s: %d domains left behind", c.name, n)
			}
		}
		func() {
			defer func() { _ = recover() }()
			_ = s.Update(ctx, func(tx *store.Tx) error {
				_, _, _ = tx.EnsureDomain(ctx, "d0")
				panic("in transaction")
			})
		}()
		if n := countDomains(t, s); n != 0 {
			t.Fatalf("panic: %d domains left behind", n)
		}
		// The store still works after the failures.
		if err := s.Update(ctx, func(tx *store.Tx) error { _, _, err := tx.EnsureDomain(ctx, "d0"); return err }); err != nil {
			t.Fatal(err)
		}
		if n := countDomains(t, s); n != 1 {
			t.Fatalf("want 1 domain, got %d", n)
		}
	})
}

func TestConcurrentWriters(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		dID, iID := fixture(t, s, "Busy", "u1")
		const writers, each = 8, 25
		var wg sync.WaitGroup
		errs := make(chan error, writers)
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; i < each; i++ {
					err := s.Update(ctx, func(tx *store.Tx) error {
						// read-modify-write on the shared domain row plus an insert
						v, err := tx.LockDomainVersion(ctx, dID)
						if err != nil {
							return err
						}
						n, _ := strconv.Atoi(v)
						if err := tx.SetDomainVersion(ctx, dID, strconv.Itoa(n+1)); err != nil {
							return err
						}
						_, err = tx.InsertMessage(ctx, store.Message{DomainID: dID, SenderInstanceID: iID, Event: "E"})
						return err
					})
					if err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		err := s.View(ctx, func(tx *store.Tx) error {
			n, err := tx.CountMessages(ctx)
			if err != nil {
				return err
			}
			v, err := tx.DomainByName(ctx, "Busy")
			if err != nil {
				return err
			}
			if n != writers*each || v.LastVersion != strconv.Itoa(writers*each) {
				return fmt.Errorf("messages %d, counter %s; want %d both", n, v.LastVersion, writers*each)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestConcurrentClaimsNeverShareAnEntry runs concurrent claimers; on
// PostgreSQL on two independent stores (two connection pools, as two processes
// would have) on one database.
func TestConcurrentClaimsNeverShareAnEntry(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s1 := b.Open(t)
		// Two pools on one database is the multi-process PostgreSQL deployment. SQLite
		// runs in one process with one writer; a second writer on the same file would
		// only test SQLite's (unfair) file-lock retry under load.
		s2 := s1
		if b.Name == "postgres" {
			s2 = b.Open(t)
		}
		dID, iID := fixture(t, s1, "Claims", "u1")
		const n = 120
		queueMessages(t, s1, dID, iID, n)
		var mu sync.Mutex
		seen := map[int64]int{}
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for w := 0; w < 8; w++ {
			s := s1
			if w%2 == 1 {
				s = s2
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					var e store.Entry
					err := s.Update(ctx, func(tx *store.Tx) error {
						var err error
						e, err = tx.ClaimNext(ctx, iID, store.Filter{}, store.Claim{Now: 1, Deadline: 2, Version: "c"})
						return err
					})
					if errors.Is(err, store.ErrNotFound) {
						return
					}
					if err != nil {
						errs <- err
						return
					}
					mu.Lock()
					seen[e.ID]++
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if len(seen) != n {
			t.Fatalf("claimed %d distinct entries, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Fatalf("entry %d claimed %d times", id, c)
			}
		}
	})
}

func TestSweepRequeuesAndGivesUp(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		dID, iID := fixture(t, s, "Sweep", "u1")
		ids := queueMessages(t, s, dID, iID, 1)
		claim := func(now int64) (store.Entry, error) {
			var e store.Entry
			err := s.Update(ctx, func(tx *store.Tx) error {
				var err error
				e, err = tx.ClaimNext(ctx, iID, store.Filter{}, store.Claim{Now: now, Deadline: now + 10, Version: "c"})
				return err
			})
			return e, err
		}
		sweep := func(now int64) store.SweepResult {
			var r store.SweepResult
			if err := s.Update(ctx, func(tx *store.Tx) (err error) { r, err = tx.Sweep(ctx, now, 3, "s"); return }); err != nil {
				t.Fatal(err)
			}
			return r
		}
		now := int64(100)
		for cycle := 1; cycle <= 3; cycle++ {
			e, err := claim(now)
			if err != nil || e.ID != ids[0] || e.RetryCount != cycle {
				t.Fatalf("cycle %d: claim = %+v, %v", cycle, e, err)
			}
			if r := sweep(now + 5); r != (store.SweepResult{}) {
				t.Fatalf("cycle %d: sweep before deadline changed %+v", cycle, r)
			}
			now += 20
			r := sweep(now)
			want := store.SweepResult{Requeued: 1}
			if cycle == 3 {
				want = store.SweepResult{MaxRetries: 1}
			}
			if r != want {
				t.Fatalf("cycle %d: sweep = %+v, want %+v", cycle, r, want)
			}
		}
		if _, err := claim(now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("claim after max retries: %v", err)
		}
	})
}

func TestUnreachablePostgresIsOneClearLine(t *testing.T) {
	start := time.Now()
	_, err := store.Open(ctx, store.Config{DSN: "postgres://kp:s3cret@127.0.0.1:1/kp?sslmode=disable", ConnectTimeout: time.Second}, nil)
	if err == nil {
		t.Fatal("open of unreachable PostgreSQL succeeded")
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || strings.Contains(msg, "s3cret") || !strings.Contains(msg, "cannot reach postgres 127.0.0.1:1/kp") {
		t.Fatalf("error is not one clear, secret-free line: %q", msg)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("took %v", d)
	}
}

func TestCloseTwiceAndWriteAfterClose(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s, err := store.Open(ctx, store.Config{DSN: b.DSN}, nil)
		if err != nil {
			t.Fatal(err)
		}
		s.Close()
		s.Close()
		if err := s.Update(ctx, func(tx *store.Tx) error { _, _, err := tx.EnsureDomain(ctx, "late"); return err }); err == nil {
			t.Fatal("write after Close succeeded")
		}
	})
}

func TestBadConfig(t *testing.T) {
	for _, c := range []store.Config{{DSN: ""}, {DSN: "x.db", SQLiteSynchronous: "OFF"}, {DSN: ":memory:"}} {
		if _, err := store.Open(ctx, c, nil); err == nil {
			t.Errorf("Open(%+v) succeeded", c)
		}
	}
}

func TestSQLiteClaimUsesIndex(t *testing.T) {
	// The claim's inner query must be an index search, so its latency does not grow with the queue.
	plan := store.ExplainClaimSQLite(t, filepath.Join(t.TempDir(), "kp.db"))
	if !strings.Contains(plan, "queue_claim_live") || strings.Contains(plan, "SCAN queue") {
		t.Fatalf("claim plan does not use queue_claim_live:\n%s", plan)
	}
}

func TestSQLiteReplaceOlderUsesOpenIndex(t *testing.T) {
	// Only the open entries of one focal resource are visited, not its whole history.
	plan := store.ExplainReplaceOlderSQLite(t, filepath.Join(t.TempDir(), "kp.db"))
	if !strings.Contains(plan, "queue_replace_open") {
		t.Fatalf("ReplaceOlder plan does not use queue_replace_open:\n%s", plan)
	}
}

const childEnv = "KOPPELPOORT_STORE_CRASH_CHILD"

// TestSQLiteSurvivesSIGKILL runs a child process that commits messages and
// reports each committed id; after SIGKILL every reported id must be there.
func TestSQLiteSurvivesSIGKILL(t *testing.T) {
	if dsn := os.Getenv(childEnv); dsn != "" {
		crashChild(dsn)
		return
	}
	dsn := filepath.Join(t.TempDir(), "kp.db")
	s, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	fixture(t, s, "Crash", "u1")
	s.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^TestSQLiteSurvivesSIGKILL$")
	cmd.Env = append(os.Environ(), childEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []int64
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		id, err := strconv.ParseInt(strings.TrimPrefix(sc.Text(), "committed "), 10, 64)
		if err != nil {
			continue
		}
		acked = append(acked, id)
		if len(acked) == 150 {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			break
		}
	}
	_ = cmd.Wait()
	if len(acked) < 150 {
		t.Fatalf("child reported only %d commits", len(acked))
	}
	s2, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatalf("reopen after SIGKILL: %v", err)
	}
	defer s2.Close()
	err = s2.View(ctx, func(tx *store.Tx) error {
		for _, id := range acked {
			if _, err := tx.MessageByID(ctx, id); err != nil {
				return fmt.Errorf("acknowledged message %d lost: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func crashChild(dsn string) {
	s, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var dID, iID int64
	_ = s.View(ctx, func(tx *store.Tx) error {
		in, err := tx.InstanceByUsername(ctx, "u1")
		dID, iID = in.DomainID, in.ID
		return err
	})
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		var id int64
		err := s.Update(ctx, func(tx *store.Tx) (err error) {
			id, err = tx.InsertMessage(ctx, store.Message{DomainID: dID, SenderInstanceID: iID, Event: "E", MessageIdentifier: strconv.Itoa(i)})
			return err
		})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
		fmt.Fprintf(w, "committed %d\n", id)
		w.Flush()
	}
}

// TestFailingWriterDoesNotFailOthers: with concurrent writers (group-committed
// on SQLite) a request that fails after writing leaves nothing, and the
// requests batched with it still commit.
func TestFailingWriterDoesNotFailOthers(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		dID, iID := fixture(t, s, "Batch", "u1")
		const n = 64
		var wg sync.WaitGroup
		errs := make([]error, n)
		ids := make([]int64, n)
		for i := 0; i < n; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				errs[i] = s.Update(ctx, func(tx *store.Tx) error {
					id, err := tx.InsertMessage(ctx, store.Message{DomainID: dID, SenderInstanceID: iID, Event: "E", MessageIdentifier: strconv.Itoa(i)})
					if err != nil {
						return err
					}
					ids[i] = id
					if i%2 == 1 {
						return fmt.Errorf("request %d fails after writing", i)
					}
					return nil
				})
			}(i)
		}
		wg.Wait()
		err := s.View(ctx, func(tx *store.Tx) error {
			for i := 0; i < n; i++ {
				m, err := tx.MessageByID(ctx, ids[i])
				if err == nil && m.MessageIdentifier != strconv.Itoa(i) {
					err = store.ErrNotFound // the id was reused by another request after the rollback
				}
				switch {
				case i%2 == 0 && errs[i] != nil:
					return fmt.Errorf("request %d failed: %w", i, errs[i])
				case i%2 == 0 && err != nil:
					return fmt.Errorf("committed request %d lost: %w", i, err)
				case i%2 == 1 && errs[i] == nil:
					return fmt.Errorf("failing request %d reported success", i)
				case i%2 == 1 && !errors.Is(err, store.ErrNotFound):
					return fmt.Errorf("failed request %d left message %d behind (%v)", i, ids[i], err)
				}
			}
			n, err := tx.CountMessages(ctx)
			if err == nil && n != 32 {
				return fmt.Errorf("%d messages, want 32", n)
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// Instance caches rely on InstancesGeneration moving after committed instance
// changes, and only then.
func TestInstancesGeneration(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		g0 := s.InstancesGeneration()
		domainID, instanceID := fixture(t, s, "D", "u1")
		g1 := s.InstancesGeneration()
		if g1 == g0 {
			t.Fatal("creating an instance did not change the generation")
		}
		upsert := func(hash string) error {
			return s.Update(ctx, func(tx *store.Tx) error {
				in, err := tx.InstanceByID(ctx, instanceID)
				if err != nil {
					return err
				}
				_, _, err = tx.PutInstance(ctx, store.Instance{DomainID: domainID, ApplicationID: in.ApplicationID,
					Username: "u1", PasswordHash: hash, APIVersion: "1.3.5"}, nil)
				return err
			})
		}
		tests := []struct {
			name    string
			write   func() error
			changes bool
		}{
			{"unchanged upsert", func() error { return upsert("x") }, false},
			{"new password", func() error { return upsert("y") }, true},
			{"rolled back change", func() error {
				err := s.Update(ctx, func(tx *store.Tx) error {
					if _, err := tx.DisableInstance(ctx, instanceID); err != nil {
						return err
					}
					return errors.New("changed my mind")
				})
				if err == nil {
					return errors.New("rollback expected")
				}
				return nil
			}, false},
			{"disable", func() error {
				return s.Update(ctx, func(tx *store.Tx) error { _, err := tx.DisableInstance(ctx, instanceID); return err })
			}, true},
		}
		for _, tt := range tests {
			before := s.InstancesGeneration()
			if err := tt.write(); err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			if changed := s.InstancesGeneration() != before; changed != tt.changes {
				t.Errorf("%s: generation changed = %v, want %v", tt.name, changed, tt.changes)
			}
		}
	})
}

// Subscribers is cached; a subscription change must show at once, to later
// transactions and to the changing transaction itself.
func TestSubscribersSeeChangesAtOnce(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		domainID, instanceID := fixture(t, s, "D", "u1")
		subscribers := func() []store.Subscriber {
			var subs []store.Subscriber
			if err := s.View(ctx, func(tx *store.Tx) error {
				var err error
				subs, err = tx.Subscribers(ctx, domainID, "E")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return subs
		}
		set := func(events ...string) {
			if err := s.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.SetSubscriptions(ctx, instanceID, events)
				return err
			}); err != nil {
				t.Fatal(err)
			}
		}
		for _, step := range []struct {
			events []string
			want   int
		}{{nil, 0}, {[]string{"E"}, 1}, {[]string{"F"}, 0}, {[]string{"E", "F"}, 1}} {
			set(step.events...)
			for range 2 { // the second read comes from the cache
				if got := subscribers(); len(got) != step.want {
					t.Fatalf("after subscribing to %v: %d subscribers, want %d", step.events, len(got), step.want)
				}
			}
		}
		// Inside the transaction that changes them, Subscribers sees the change.
		if err := s.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.SetSubscriptions(ctx, instanceID, nil); err != nil {
				return err
			}
			subs, err := tx.Subscribers(ctx, domainID, "E")
			if err == nil && len(subs) != 0 {
				err = fmt.Errorf("own change not seen: %v", subs)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if got := subscribers(); len(got) != 0 {
			t.Fatalf("after unsubscribing: %v", got)
		}
	})
}

// TestPostgresClaimLooksUseTheWaitingIndex: the plan PostgreSQL keeps for a prepared claim look (a generic
// one, blind to which instance) reads the instance's open entries by an index on the instance, never the
// primary key or the whole table — those read every row of an instance with nothing waiting and every
// consumed row before the first New one (seconds a claim with 1,000,000 rows).
func TestPostgresClaimLooksUseTheWaitingIndex(t *testing.T) {
	b := storetest.NewPostgres(t)
	s := b.Open(t)
	dID, busy := fixture(t, s, "Big", "busy")
	_, idle := fixture(t, s, "Small", "idle")
	ids := queueMessages(t, s, dID, busy, 1)
	err := s.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO queue (domain_id, instance_id, message_id, event, patient_ref, focal_ref,
			status, status_changed_at, version, retry_count, exception, fetched_api_version, created_at)
			SELECT ?, ?, (SELECT message_id FROM queue WHERE id = ?), 'E', '', '', CASE WHEN i > 19000 THEN 'New' ELSE 'Success' END,
			1, 'v', 0, '', '', 1 FROM generate_series(1, 20000) AS i`, dID, busy, ids[0]); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "ANALYZE queue")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, instance := range []int64{busy, idle} {
		claim, hasNew := store.ExplainWaitingPostgres(t, s, instance)
		if !strings.Contains(claim, "queue_claim_live") {
			t.Errorf("instance %d: the claim does not walk queue_claim_live:\n%s", instance, claim)
		}
		for name, plan := range map[string]string{"claim": claim, "HasNew": hasNew} {
			if strings.Contains(plan, "Seq Scan") || strings.Contains(plan, "queue_pkey") {
				t.Errorf("instance %d: the %s look reads the whole queue:\n%s", instance, name, plan)
			}
		}
	}
}

// TestPostgresPlansFollowAGrowingQueue: a connection keeps the plan it made for a prepared statement while
// the tables were small until their statistics change. On a new database that was a POST replacing older
// queue entries by reading the whole queue (Seq Scan, ~25 ms a POST 20 s into a load run) until autovacuum
// analysed it a minute later; the statistics keeper analyses a table that has more than doubled, and the
// connection's next plan reads the open entries by their index.
func TestPostgresPlansFollowAGrowingQueue(t *testing.T) {
	s, db := keeperStore(t, -1) // analysed below, not in the background
	dID, inst := fixture(t, s, "Grow", "grow")
	ids := queueMessages(t, s, dID, inst, 60)
	// Autovacuum's first visit to a young database: statistics of a queue of 60 rows.
	if _, err := db.Exec("ANALYZE queue"); err != nil {
		t.Fatal(err)
	}
	explain, done := store.AcceptPlanPostgres(t, s, inst)
	defer done()
	replaces := func(plan string) string { // the line that reads queue in the replacement (CTE o)
		_, o, _ := strings.Cut(plan, "CTE o")
		o, _, _ = strings.Cut(o, "CTE q")
		for _, l := range strings.Split(o, "\n") {
			if strings.Contains(l, "Scan") && strings.Contains(l, "queue") {
				return strings.TrimSpace(l)
			}
		}
		return "no scan of queue in:\n" + plan
	}
	small := replaces(explain())
	if !strings.Contains(small, "Seq Scan") {
		t.Fatalf("the plan made on the small queue reads it by %s, not a Seq Scan: the test no longer shows what it is for", small)
	}
	growQueue(t, s, ids[0], 20000)
	if grown := replaces(explain()); grown != small {
		t.Fatalf("the plan changed without new statistics (%q → %q): the test no longer shows what it is for", small, grown)
	}
	analysed, err := s.AnalyzeGrownTables(ctx)
	if err != nil || !slices.Contains(analysed, "queue") {
		t.Fatalf("the keeper analysed %v (%v), not the queue that grew from 60 to 20,060 rows", analysed, err)
	}
	if after := replaces(explain()); !strings.Contains(after, "queue_replace_open") {
		t.Errorf("after the keeper's ANALYZE the replacement still reads the queue by %s, want queue_replace_open", after)
	}
	if again, err := s.AnalyzeGrownTables(ctx); err != nil || slices.Contains(again, "queue") {
		t.Errorf("a second look analysed %v (%v): the queue has not grown since", again, err)
	}
	if n := statEntries(t, s, "queue", "focal_ref"); n > 21 {
		t.Errorf("the keeper's statistics of queue.focal_ref have %d entries, want a sample's at target 10 (≤ 21)", n)
	}
}

// keeperStore opens a store on a new PostgreSQL database whose keeper looks every `every` (negative: only when
// the test asks), and a pool of its own on the database. Autovacuum is off for the queue: only the test and
// the keeper analyse it.
func keeperStore(t *testing.T, every time.Duration) (*store.Store, *sql.DB) {
	t.Helper()
	b := storetest.NewPostgres(t)
	s, err := store.Open(ctx, store.Config{DSN: b.DSN, AnalyzeEvery: every}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	db, err := sql.Open("pgx", b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.Exec("ALTER TABLE queue SET (autovacuum_enabled = false)"); err != nil {
		t.Fatal(err)
	}
	return s, db
}

// growQueue adds n entries of one queue entry's message and instance (one in 20 New, 500 focal resources),
// and has their row counts reach pg_stat_user_tables at the commit: an idle backend sends them only after 10 s.
func growQueue(t *testing.T, s *store.Store, entryID int64, n int) {
	t.Helper()
	if err := s.Update(ctx, func(tx *store.Tx) error {
		if _, err := tx.Exec(ctx, `INSERT INTO queue (domain_id, instance_id, message_id, event, patient_ref, focal_ref,
			status, status_changed_at, version, retry_count, exception, fetched_api_version, created_at)
			SELECT e.domain_id, e.instance_id, e.message_id, 'E', '', 'https://a/CarePlan/' || (i % 500),
			CASE WHEN i % 20 = 0 THEN 'New' ELSE 'ReplacedByNewVersion' END, 1, 'v', 0, '', '', 1
			FROM (SELECT * FROM queue WHERE id = ?) AS e, generate_series(1, ?) AS i`, entryID, n); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "SELECT pg_stat_force_next_flush()")
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// statEntries counts the most common values and histogram bounds PostgreSQL keeps for a column.
func statEntries(t *testing.T, s *store.Store, table, column string) int {
	t.Helper()
	var n int
	if err := s.Update(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &n, `SELECT COALESCE(array_length(most_common_vals, 1), 0) + COALESCE(array_length(histogram_bounds, 1), 0)
			FROM pg_stats WHERE schemaname = current_schema() AND tablename = ? AND attname = ?`, table, column)
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// The keeper's sampled statistics never replace fuller ones: a table another ANALYZE is busy with is skipped,
// and one whose statistics came up to date after the keeper listed it is left as it is.
func TestPostgresKeeperLeavesFullerStatistics(t *testing.T) {
	s, db := keeperStore(t, -1)
	dID, inst := fixture(t, s, "Full", "full")
	growQueue(t, s, queueMessages(t, s, dID, inst, 1)[0], 5000)
	// An operator's (or autovacuum's) ANALYZE at the full target, still running (its transaction open).
	other, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Rollback()
	if _, err := other.Exec("ANALYZE queue"); err != nil {
		t.Fatal(err)
	}
	// The keeper listed the queue before that ANALYZE began (a listing now would not: ANALYZE writes the row
	// count in place, before its commit); it skips the table instead of waiting.
	busy, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if done, err := store.AnalyzeSampled(busy, s, "queue"); err != nil || done {
		t.Fatalf("while another ANALYZE held the queue the keeper analysed it (%v) or waited (%v)", done, err)
	}
	if err := other.Commit(); err != nil {
		t.Fatal(err)
	}
	// The keeper listed the queue before that ANALYZE ended; it looks again under the lock.
	if done, err := store.AnalyzeSampled(ctx, s, "queue"); err != nil || done {
		t.Fatalf("the keeper analysed the queue (%v, %v) after another ANALYZE brought it up to date", done, err)
	}
	if n := statEntries(t, s, "queue", "focal_ref"); n <= 21 {
		t.Errorf("queue.focal_ref has %d statistics entries: the full ANALYZE's were replaced by a sample's", n)
	}
}

// The keeper runs by itself in a store opened with a loop (here every 50 ms).
func TestPostgresStatisticsKeeperRuns(t *testing.T) {
	s, db := keeperStore(t, 50*time.Millisecond)
	dID, inst := fixture(t, s, "Keep", "keep")
	growQueue(t, s, queueMessages(t, s, dID, inst, 1)[0], 1200)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		var n int
		if err := db.QueryRow("SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'queue'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the queue grew by 1,200 rows and was not analysed within 20 s")
		}
	}
}

// Message bodies and the other large values are compressed with lz4 on
// PostgreSQL (migration 0028): pglz cost ~6× the database CPU per POST.
func TestPostgresCompressesLargeValuesWithLZ4(t *testing.T) {
	b := storetest.NewPostgres(t)
	s := b.Open(t)
	body := []byte(`{"resourceType":"Bundle","entry":[` + strings.Repeat(`{"resource":{"resourceType":"CarePlan","status":"active"}},`, 400) + `{}]}`)
	var id int64
	if err := s.Update(ctx, func(tx *store.Tx) error {
		var err error
		id, err = tx.InsertBody(ctx, "json", body)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("pgx", b.DSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var method sql.NullString
	if err := db.QueryRow("SELECT pg_column_compression(body) FROM message_bodies WHERE id = $1", id).Scan(&method); err != nil {
		t.Fatal(err)
	}
	if method.String != "lz4" {
		t.Errorf("a %d-byte body is stored with compression %q, want lz4", len(body), method.String)
	}
	rows, err := db.Query(`SELECT c.relname || '.' || a.attname, a.attcompression FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		WHERE (c.relname, a.attname) IN (('message_bodies', 'body'), ('resources', 'content'), ('storage_items', 'content'),
			('activity_definition_versions', 'content'), ('http_log', 'request_body'), ('http_log', 'response_body'))`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var col, c string
		if err := rows.Scan(&col, &c); err != nil {
			t.Fatal(err)
		}
		n++
		if c != "l" {
			t.Errorf("%s compresses with %q, want l (lz4)", col, c)
		}
	}
	if n != 6 {
		t.Errorf("found %d of the 6 large columns", n)
	}
	got := s.Update(ctx, func(tx *store.Tx) error {
		_, back, err := tx.Body(ctx, id)
		if err == nil && string(back) != string(body) {
			t.Errorf("the body read back differs (%d bytes, want %d)", len(back), len(body))
		}
		return err
	})
	if got != nil {
		t.Fatal(got)
	}
}

package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestLockForPostPostgres: a POST's locks cover exactly its resources (also
// ones without a row) and its sender + identifier — another POST about other
// resources, or the same URL in another domain, does not wait for them. A
// resource carried unchanged (its current content hash) is locked shared: with
// other readers, not writers; carried changed, it is locked exclusively.
func TestLockForPostPostgres(t *testing.T) {
	s := storetest.NewPostgres(t).Open(t)
	dA, inst := fixture(t, s, "A", "u@a")
	dB, _ := fixture(t, s, "B", "u@b")
	const a, b, c, pr = "https://x/Patient/a", "https://x/Patient/b", "https://x/CarePlan/c", "https://x/Practitioner/p"
	if err := s.Update(ctx, func(tx *store.Tx) error {
		return tx.PutResourceVersion(ctx, store.ResourceVersion{DomainID: dA, URL: pr, ResourceType: "Practitioner",
			Version: "v1", ContentHash: "h1", InstanceID: inst})
	}); err != nil {
		t.Fatal(err)
	}
	unchanged := func(urls ...string) map[string]string {
		m := map[string]string{}
		for _, u := range urls {
			m[u] = "h1"
		}
		return m
	}

	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx *store.Tx) error {
			// Duplicates and any order are fine.
			st, err := tx.LockForPost(ctx, store.PostLock{DomainID: dA, SenderID: inst, Identifier: "m1",
				Exclusive: []string{b, a, b}, Unchanged: unchanged(pr), Read: []string{pr, a}})
			if err != nil {
				return err
			}
			if len(st.Shared) != 1 || st.Shared[0] != pr || st.Resources[pr].CurrentVersion != "v1" || len(st.Resources) != 1 {
				t.Errorf("lock state: shared %v, resources %v; want %s shared and read", st.Shared, st.Resources, pr)
			}
			close(held)
			<-release
			return nil
		})
	}()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("first lock: %v", err)
	}
	// A lock that must wait gets 500 ms and must run into that deadline; one
	// that must not wait gets a minute (on a busy machine BEGIN alone can take
	// 500 ms), so that waiting on a lock still fails it.
	lockWithin := func(d time.Duration, domainID int64, identifier string, urls []string, readOnly map[string]string) error {
		c, cancel := context.WithTimeout(ctx, d)
		defer cancel()
		return s.Update(c, func(tx *store.Tx) error {
			_, err := tx.LockForPost(c, store.PostLock{DomainID: domainID, SenderID: inst, Identifier: identifier,
				Exclusive: urls, Unchanged: readOnly})
			return err
		})
	}
	tryShared := func(domainID int64, identifier string, urls []string, readOnly map[string]string) error {
		return lockWithin(500*time.Millisecond, domainID, identifier, urls, readOnly)
	}
	try := func(domainID int64, identifier string, urls ...string) error {
		return tryShared(domainID, identifier, urls, nil)
	}
	noWait := func(domainID int64, identifier string, urls []string, readOnly map[string]string) error {
		return lockWithin(time.Minute, domainID, identifier, urls, readOnly)
	}
	if err := noWait(dA, "m2", []string{c}, nil); err != nil {
		t.Fatalf("other resource in the same domain: %v, want no wait", err)
	}
	if err := noWait(dB, "m2", []string{a, b}, nil); err != nil {
		t.Fatalf("same URLs in another domain: %v, want no wait", err)
	}
	// A lock another POST holds: waits until the caller's deadline cancels it.
	if start, err := time.Now(), try(dA, "m3", c, b); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("a locked resource: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if start, err := time.Now(), try(dA, "m1", c); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("the same sender and identifier: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if err := noWait(dA, "m4", []string{c}, unchanged(pr)); err != nil {
		t.Fatalf("a resource another POST holds read-only, read-only too: %v, want no wait", err)
	}
	if start, err := time.Now(), try(dA, "m5", pr); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("writing a resource another POST holds read-only: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if start, err := time.Now(), tryShared(dA, "m4b", nil, map[string]string{pr: "other content"}); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("a resource carried with other content than its current version: %v after %v, want an exclusive lock", err, time.Since(start))
	}
	if start, err := time.Now(), tryShared(dA, "m6", nil, unchanged(a)); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("reading a resource another POST writes: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if start, err := time.Now(), tryShared(dA, "m7", []string{pr}, unchanged(pr)); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("a URL in both lists must be locked exclusively: %v after %v", err, time.Since(start))
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := try(dA, "m3", c, b); err != nil {
		t.Fatalf("after the first committed: %v", err)
	}
}

// TestPostVersionIssued: SQLite keeps the domain's last version (LockForPost
// returns it); PostgreSQL neither writes nor returns it (no domain row lock).
func TestPostVersionIssued(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		d, inst := fixture(t, s, "A", "u@a")
		for _, v := range []string{"2026-01-01T00:00:00:000.0001", "2026-01-01T00:00:00:000.0002"} {
			if err := s.Update(ctx, func(tx *store.Tx) error {
				st, err := tx.LockForPost(ctx, store.PostLock{DomainID: d, SenderID: inst, Identifier: "m-" + v,
					Exclusive: []string{"https://x/Patient/1"}})
				if err != nil {
					return err
				}
				last := st.LastVersion
				want := ""
				if b.Name == "sqlite" && v != "2026-01-01T00:00:00:000.0001" {
					want = "2026-01-01T00:00:00:000.0001"
				}
				if last != want {
					t.Errorf("%s: LockForPost returned %q, want %q", b.Name, last, want)
				}
				return tx.PostVersionIssued(ctx, d, v)
			}); err != nil {
				t.Fatal(err)
			}
		}
	})
}

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
// resource locked read-only (shared) is shared with other readers, not writers.
func TestLockForPostPostgres(t *testing.T) {
	s := storetest.NewPostgres(t).Open(t)
	dA, inst := fixture(t, s, "A", "u@a")
	dB, _ := fixture(t, s, "B", "u@b")
	const a, b, c, pr = "https://x/Patient/a", "https://x/Patient/b", "https://x/CarePlan/c", "https://x/Practitioner/p"

	held, release, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- s.Update(ctx, func(tx *store.Tx) error {
			// Duplicates and any order are fine.
			if _, err := tx.LockForPost(ctx, dA, inst, "m1", []string{b, a, b}, []string{pr}); err != nil {
				return err
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
	tryShared := func(domainID int64, identifier string, urls, readOnly []string) error {
		c, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
		defer cancel()
		return s.Update(c, func(tx *store.Tx) error {
			_, err := tx.LockForPost(c, domainID, inst, identifier, urls, readOnly)
			return err
		})
	}
	try := func(domainID int64, identifier string, urls ...string) error {
		return tryShared(domainID, identifier, urls, nil)
	}
	if err := try(dA, "m2", c); err != nil {
		t.Fatalf("other resource in the same domain: %v, want no wait", err)
	}
	if err := try(dB, "m2", a, b); err != nil {
		t.Fatalf("same URLs in another domain: %v, want no wait", err)
	}
	// A lock another POST holds: waits until the caller's deadline cancels it.
	if start, err := time.Now(), try(dA, "m3", c, b); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("a locked resource: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if start, err := time.Now(), try(dA, "m1", c); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("the same sender and identifier: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if err := tryShared(dA, "m4", []string{c}, []string{pr}); err != nil {
		t.Fatalf("a resource another POST holds read-only, read-only too: %v, want no wait", err)
	}
	if start, err := time.Now(), try(dA, "m5", pr); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("writing a resource another POST holds read-only: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if start, err := time.Now(), tryShared(dA, "m6", nil, []string{a}); err == nil || time.Since(start) < 400*time.Millisecond {
		t.Fatalf("reading a resource another POST writes: %v after %v, want to wait until the deadline", err, time.Since(start))
	}
	if start, err := time.Now(), tryShared(dA, "m7", []string{pr}, []string{pr}); err == nil || time.Since(start) < 400*time.Millisecond {
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
				last, err := tx.LockForPost(ctx, d, inst, "m-"+v, []string{"https://x/Patient/1"}, nil)
				if err != nil {
					return err
				}
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

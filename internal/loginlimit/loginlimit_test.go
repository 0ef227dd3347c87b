package loginlimit

import (
	"fmt"
	"testing"
	"time"
)

func limiter() (*Limiter, *time.Time) {
	now := time.Unix(1_800_000_000, 0)
	l := New(Config{Window: time.Minute, PerAccountAndAddress: 3, PerAccount: 5, PerAddress: 8})
	l.SetClock(func() time.Time { return now })
	return l, &now
}

func fail(l *Limiter, addr, account string, n int) {
	for i := 0; i < n; i++ {
		l.FailedFrom(addr, account)
	}
}

func TestGuessingOneAccountFromOneAddress(t *testing.T) {
	l, now := limiter()
	fail(l, "198.51.100.1", "alice", 3)
	if r := l.Check("198.51.100.1", "alice"); r != ReasonPair {
		t.Fatalf("after 3 failures of the pair: %q", r)
	}
	if r := l.Check("198.51.100.2", "alice"); r != "" {
		t.Fatalf("alice from another address: %q", r)
	}
	if r := l.Check("198.51.100.1", "bob"); r != "" {
		t.Fatalf("bob from the guessing address: %q", r)
	}
	*now = now.Add(time.Minute)
	if r := l.Check("198.51.100.1", "alice"); r != "" {
		t.Fatalf("after the window: %q", r)
	}
}

// Credential stuffing: many addresses, one failure each. The account is
// refused to new addresses, not to the one its client logged in from.
func TestStuffingDoesNotLockOutTheOwner(t *testing.T) {
	l, _ := limiter()
	l.SucceededFrom("203.0.113.9", "alice") // alice's real client
	for i := 0; i < 5; i++ {
		l.FailedFrom(fmt.Sprintf("198.51.100.%d", i), "alice")
	}
	if r := l.Check("198.51.100.200", "alice"); r != ReasonAccount {
		t.Fatalf("a new address for an account under attack: %q", r)
	}
	if r := l.Check("203.0.113.9", "alice"); r != "" {
		t.Fatalf("alice's own address: %q", r)
	}
	if r := l.Check("198.51.100.200", "bob"); r != "" {
		t.Fatalf("another account: %q", r)
	}
}

// A flood of failures from one (shared) address: the sprayed accounts get no
// second guess from it; accounts nobody failed against, and accounts that
// logged in from it before, are checked as usual.
func TestSprayFromASharedAddress(t *testing.T) {
	l, _ := limiter()
	const proxy = "10.0.0.1"
	l.SucceededFrom(proxy, "alice")
	l.FailedFrom("192.0.2.1", "alice")
	for i := 0; i < 8; i++ {
		l.FailedFrom(proxy, fmt.Sprint("user", i))
	}
	if r := l.Check(proxy, "alice"); r != "" {
		t.Fatalf("alice, known at the shared address: %q", r)
	}
	if r := l.Check(proxy, "bob"); r != "" {
		t.Fatalf("bob, not under attack, from the flooded address: %q", r)
	}
	if r := l.Check(proxy, "user3"); r != ReasonAddress {
		t.Fatalf("a sprayed account from the flooded address: %q", r)
	}
	if r := l.Check("10.0.0.2", "user3"); r != "" {
		t.Fatalf("a sprayed account from another address: %q", r)
	}
}

// Even a known address is locked when it guesses the same account itself.
func TestKnownAddressGuessingItsOwnAccount(t *testing.T) {
	l, _ := limiter()
	l.SucceededFrom("203.0.113.9", "alice")
	fail(l, "203.0.113.9", "alice", 3)
	if r := l.Check("203.0.113.9", "alice"); r != ReasonPair {
		t.Fatalf("pair failures from a known address: %q", r)
	}
	l.SucceededFrom("203.0.113.9", "alice") // e.g. the cached correct password
	if r := l.Check("203.0.113.9", "alice"); r != "" {
		t.Fatalf("after a success: %q", r)
	}
}

func TestAccountlessAttemptsCountPerAddress(t *testing.T) {
	l, _ := limiter()
	fail(l, "198.51.100.1", "", 8)
	if r := l.Check("198.51.100.1", ""); r == "" {
		t.Fatal("guessing codes from one address is not throttled")
	}
	var nl *Limiter
	if nl.Check("x", "y") != "" {
		t.Fatal("a nil limiter refuses")
	}
}

func TestMemoryIsBounded(t *testing.T) {
	l, _ := limiter()
	for i := 0; i < maxKeys+10; i++ {
		l.FailedFrom(fmt.Sprint("a", i), fmt.Sprint("u", i))
	}
	if len(l.pairs) > maxKeys || len(l.accounts) > maxKeys || len(l.addrs) > maxKeys {
		t.Fatalf("maps grew to %d/%d/%d", len(l.pairs), len(l.accounts), len(l.addrs))
	}
}

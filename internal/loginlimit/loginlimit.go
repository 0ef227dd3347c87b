// Package loginlimit throttles password guessing against application
// instances, OAuth clients and administrators, without letting an attacker
// lock the real owner of an account out.
//
// Failures are counted per (address, account), per account and per address
// within a window. An attempt is refused (429) without checking its password
// when
//
//   - its address failed PerAccountAndAddress times for that account (someone
//     there is guessing this account's password), or
//   - the account failed PerAccount times from anywhere (credential stuffing
//     from many addresses) and the address has not logged in to that account
//     successfully before, or
//   - the address failed PerAddress times (password spraying) and the account
//     failed in the window too, and the address has not logged in to it before.
//
// Every other attempt is checked, and a correct password is let in. So an
// account that is not under attack is never refused (a flood of failures
// from a shared address — a NAT, a proxy without trusted_proxies — does not
// touch it), the real client of an account under attack keeps working from
// the address it logged in from before, and a sprayer gets one guess per
// account per window. Callers also let in, before asking Allow, a password
// this process already verified as correct (koppeltaal's verify cache), so a
// throttle never costs a correct password that is already known. What is
// left: a client that never logged in in this process, from a new address, to
// an account others are guessing at, waits for the window.
//
// The client's address is r.RemoteAddr, which internal/server rewrites from
// X-Forwarded-For only for configured trusted proxies. The state is in memory,
// per process: with N processes behind a balancer the limits are N times as
// wide, and a restart forgets both the failures and the good addresses.
package loginlimit

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Config sets the limits; zero values get the defaults.
type Config struct {
	// Window is the counting period. Default 15m.
	Window time.Duration `yaml:"window"`
	// PerAccountAndAddress failures of one account from one address lock that pair. Default 10.
	PerAccountAndAddress int `yaml:"per_account_and_address"`
	// PerAccount failures of one account (all addresses) refuse it to addresses that never logged in to it. Default 20.
	PerAccount int `yaml:"per_account"`
	// PerAddress failures from one address (all accounts) refuse it for accounts it never logged in to. Default 100.
	PerAddress int `yaml:"per_address"`
	// RememberGood is how long an address that logged in to an account stays known for it. Default 30 days.
	RememberGood time.Duration `yaml:"remember_good"`
}

func (c *Config) setDefaults() {
	if c.Window <= 0 {
		c.Window = 15 * time.Minute
	}
	if c.PerAccountAndAddress <= 0 {
		c.PerAccountAndAddress = 10
	}
	if c.PerAccount <= 0 {
		c.PerAccount = 20
	}
	if c.PerAddress <= 0 {
		c.PerAddress = 100
	}
	if c.RememberGood <= 0 {
		c.RememberGood = 30 * 24 * time.Hour
	}
}

// Reason says why Allow refused an attempt ("" when it did not).
type Reason string

// The reasons (also the label of the refusal metric).
const (
	ReasonPair    Reason = "account_and_address"
	ReasonAccount Reason = "account"
	ReasonAddress Reason = "address"
)

// maxKeys bounds each map: a spray of addresses or user names cannot grow memory without limit.
const maxKeys = 100_000

type counter struct {
	n     int
	since time.Time
}

// pairKey is the key of an (address, account) pair.
func pairKey(addr, account string) string { return addr + "\x00" + account }

// Limiter is the failed-login throttle (see the package comment). The zero
// value is not usable; use New. A nil *Limiter allows everything.
type Limiter struct {
	cfg Config
	now func() time.Time

	mu       sync.Mutex
	pairs    map[string]*counter
	accounts map[string]*counter
	addrs    map[string]*counter
	good     map[string]time.Time // pairKey → last successful login
	// OnRefuse, when set, is called for every refused attempt (metrics).
	OnRefuse func(Reason)
}

// New returns a limiter with cfg (defaults applied).
func New(cfg Config) *Limiter {
	cfg.setDefaults()
	return &Limiter{cfg: cfg, now: time.Now, pairs: map[string]*counter{}, accounts: map[string]*counter{},
		addrs: map[string]*counter{}, good: map[string]time.Time{}}
}

// SetClock replaces the clock (tests).
func (l *Limiter) SetClock(now func() time.Time) {
	l.mu.Lock()
	l.now = now
	l.mu.Unlock()
}

// RetryAfter is how long a refused client should wait (the window), for the Retry-After header.
func (l *Limiter) RetryAfter() time.Duration { return l.cfg.Window }

// Address is the client address of r that the limits count (r.RemoteAddr without port).
func Address(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Allow reports whether the password of an attempt to log in to account from
// r's address may be checked (account "" for credentials that name none, such
// as an activation code: only PerAddress counts).
func (l *Limiter) Allow(r *http.Request, account string) bool {
	reason := l.Check(Address(r), account)
	if reason != "" && l.OnRefuse != nil {
		l.OnRefuse(reason)
	}
	return reason == ""
}

// Check is Allow for an address: the reason it refuses, or "".
func (l *Limiter) Check(addr, account string) Reason {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	k := pairKey(addr, account)
	if account != "" && l.over(l.pairs, k, l.cfg.PerAccountAndAddress, now) {
		return ReasonPair
	}
	if account != "" && now.Sub(l.good[k]) < l.cfg.RememberGood {
		return "" // this address logged in to this account before: others' failures do not lock it out
	}
	if account != "" && l.over(l.accounts, account, l.cfg.PerAccount, now) {
		return ReasonAccount
	}
	if l.over(l.addrs, addr, l.cfg.PerAddress, now) && (account == "" || l.over(l.accounts, account, 1, now)) {
		return ReasonAddress // an account nobody failed against is checked whatever the address did
	}
	return ""
}

// over reports whether m[k] reached max failures in the current window.
func (l *Limiter) over(m map[string]*counter, k string, max int, now time.Time) bool {
	c := m[k]
	if c == nil {
		return false
	}
	if now.Sub(c.since) >= l.cfg.Window {
		delete(m, k)
		return false
	}
	return c.n >= max
}

// Failed records a failed attempt to log in to account from r's address.
func (l *Limiter) Failed(r *http.Request, account string) { l.FailedFrom(Address(r), account) }

// FailedFrom is Failed for an address.
func (l *Limiter) FailedFrom(addr, account string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if account != "" {
		l.count(l.pairs, pairKey(addr, account), now)
		l.count(l.accounts, account, now)
	}
	l.count(l.addrs, addr, now)
}

func (l *Limiter) count(m map[string]*counter, k string, now time.Time) {
	if len(m) >= maxKeys {
		for key, c := range m { // forget the stale ones; under a spray of fresh keys, everything
			if now.Sub(c.since) >= l.cfg.Window || len(m) >= maxKeys {
				delete(m, key)
			}
		}
	}
	c := m[k]
	if c == nil || now.Sub(c.since) >= l.cfg.Window {
		c = &counter{since: now}
		m[k] = c
	}
	c.n++
}

// Succeeded records a successful login to account from r's address: the pair
// is unlocked and the address known good for the account.
func (l *Limiter) Succeeded(r *http.Request, account string) { l.SucceededFrom(Address(r), account) }

// SucceededFrom is Succeeded for an address.
func (l *Limiter) SucceededFrom(addr, account string) {
	if l == nil || account == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	k := pairKey(addr, account)
	delete(l.pairs, k)
	if len(l.good) >= maxKeys {
		clear(l.good)
	}
	l.good[k] = l.now()
}

package oauth

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// Limiter throttles failed authentication (OAuth clients, portal and
// application instances) per source address: after MaxFailures failures
// within Window, the address is refused until the window has passed. It is
// shared by the OAuth endpoints and the FHIR API (api.Options.Limiter).
// Only the TCP peer address counts; X-Forwarded-For is not trusted.
type Limiter struct {
	// MaxFailures per Window before an address is refused. Default 20.
	MaxFailures int
	// Window is the counting period. Default 1 minute.
	Window time.Duration

	mu  sync.Mutex
	now func() time.Time
	m   map[string]*failures
}

type failures struct {
	n     int
	since time.Time
}

// NewLimiter returns a limiter with max failures per window (zero values: defaults).
func NewLimiter(max int, window time.Duration) *Limiter {
	if max <= 0 {
		max = 20
	}
	if window <= 0 {
		window = time.Minute
	}
	return &Limiter{MaxFailures: max, Window: window, now: time.Now, m: map[string]*failures{}}
}

func source(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// Allow reports whether r's source may try to authenticate.
func (l *Limiter) Allow(r *http.Request) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	f := l.m[source(r)]
	if f == nil {
		return true
	}
	if l.now().Sub(f.since) > l.Window {
		delete(l.m, source(r))
		return true
	}
	return f.n < l.MaxFailures
}

// Failed records a failed attempt from r's source.
func (l *Limiter) Failed(r *http.Request) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.m) > 100000 { // bounded memory under a spray of addresses: forget the stale ones
		for k, f := range l.m {
			if now.Sub(f.since) > l.Window {
				delete(l.m, k)
			}
		}
	}
	src := source(r)
	f := l.m[src]
	if f == nil || now.Sub(f.since) > l.Window {
		f = &failures{since: now}
		l.m[src] = f
	}
	f.n++
}

package regress

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
)

// T is what a case uses to talk to the target and to state expectations. A failed Expect is recorded and
// the case goes on; Fatalf and Require stop it. Failures name the last exchange with the target.
type T struct {
	ctx    context.Context
	s      *suite
	Format dstu1.Format
	res    *Result
	last   *Response
}

func (t *T) finish() {
	if len(t.res.Failures) > 0 && t.res.Status != Skip {
		t.res.Status = Fail
	}
}

// record adds a failure, attaching the last exchange when the failure has none.
func (t *T) record(f Failure) {
	if f.Request == "" && t.last != nil {
		f.Request, f.Status, f.Reply = t.last.Request, t.last.Status, excerpt(t.last.Body, 600)
	}
	t.res.Failures = append(t.res.Failures, f)
}

// Errorf records a failure and lets the case go on.
func (t *T) Errorf(format string, args ...any) {
	t.record(Failure{Check: fmt.Sprintf(format, args...)})
}

// Fatalf records a failure and ends the case.
func (t *T) Fatalf(format string, args ...any) {
	t.Errorf(format, args...)
	panic(stopCase{})
}

// Skipf ends the case as skipped (the target lacks an optional feature).
func (t *T) Skipf(format string, args ...any) {
	t.res.Status, t.res.Reason = Skip, fmt.Sprintf(format, args...)
	t.res.Failures = nil
	panic(stopCase{})
}

// Expect records a failure when ok is false: check says what was looked at, want what a client needs,
// got what the target did. It returns ok.
func (t *T) Expect(ok bool, check, want string, got any) bool {
	if !ok {
		g := fmt.Sprint(got)
		if g == "" {
			g = "(empty)"
		}
		if len(g) > 500 {
			g = g[:500] + " …"
		}
		t.record(Failure{Check: check, Expected: want, Got: g})
	}
	return ok
}

// Require is Expect that ends the case on failure.
func (t *T) Require(ok bool, check, want string, got any) {
	if !t.Expect(ok, check, want, got) {
		panic(stopCase{})
	}
}

// Equal expects got == want (exact strings: clients compare them so).
func (t *T) Equal(check, want, got string) bool {
	return t.Expect(got == want, check, fmt.Sprintf("%q", want), fmt.Sprintf("%q", got))
}

// Do sends r in the case's format (Accept and Content-Type from t.Format unless r sets them) and returns
// the reply; a transport error ends the case.
func (t *T) Do(r Request) *Response {
	resp, err := exchange(t.ctx, t.s.hc, t.s.cfg.Target, t.Format, r)
	if err != nil {
		t.Fatalf("request failed: %v", err)
	}
	t.last = resp
	return resp
}

// Unique returns a name no other case or run uses: "<prefix>-<run>-<n>".
func (t *T) Unique(prefix string) string {
	t.s.seq++
	return fmt.Sprintf("%s-%s-%d", prefix, t.s.run, t.s.seq)
}

// Eventually polls fn until it returns true or wait passes (messages may be routed asynchronously by
// other servers); it returns fn's last answer.
func (t *T) Eventually(wait time.Duration, fn func() bool) bool {
	deadline := time.Now().Add(wait)
	for {
		if fn() {
			return true
		}
		if time.Now().After(deadline) || t.ctx.Err() != nil {
			return false
		}
		t.Sleep(100 * time.Millisecond)
	}
}

// Sleep waits d, or ends the case when the run is cancelled.
func (t *T) Sleep(d time.Duration) {
	select {
	case <-time.After(d):
	case <-t.ctx.Done():
		t.Fatalf("run cancelled")
	}
}

// Portal, Subscriber and the others are the configured accounts.
func (t *T) Portal() *Account { a := t.s.cfg.Portal; return &a }

// Subscriber returns the i-th configured subscriber.
func (t *T) Subscriber(i int) *Account { a := t.s.cfg.Subscribers[i]; return &a }

// Legacy returns the api-version 1.3.3 instance.
func (t *T) Legacy() *Account { a := *t.s.cfg.Legacy; return &a }

// fhir is a path under the FHIR base.
func fhir(path string) string { return fhirPrefix + path }

// base is the target's FHIR base URL.
func (t *T) base() string { return strings.TrimRight(t.s.cfg.Target, "/") + fhirPrefix }

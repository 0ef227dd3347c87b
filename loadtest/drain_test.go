package loadtest

import (
	"context"
	"sync/atomic"
	"testing"
	"time"
)

// drainRunner is a runner with instances 0 (sender) and 1..3 (one consumer
// each) that has run for a second, with a prefill of perDomain messages.
func drainRunner(t *testing.T, perDomain int) *runner {
	t.Helper()
	sc := &Scenario{}
	sc.Defaults()
	r := &runner{sc: sc, tr: newTestTracker(), depth: make([]instDepth, 4), start: time.Now().Add(-time.Second)}
	for i := range 4 {
		r.insts = append(r.insts, &instance{idx: i})
	}
	p := testPrefill()
	p.PerDomain = perDomain
	r.opts.Prefill = p
	r.tr.ExpectPrefill(p)
	for inst := 1; inst <= 3; inst++ {
		r.consumers = append(r.consumers, &atomic.Int64{})
		r.consumerInst = append(r.consumerInst, inst)
		r.depth[inst].claimed.Store(100) // 100 claims/s so far
	}
	return r
}

// TestDrainEndsAtAPrefillThatCannotBeClaimed: with far more prefilled
// messages waiting than the consumers can claim before the deadline, the
// drain ends at once, even while their acknowledgements go on; with a small
// prefill it waits for the queues to empty.
func TestDrainEndsAtAPrefillThatCannotBeClaimed(t *testing.T) {
	r := drainRunner(t, 1_000_000)
	r.depth[2].acking.Store(1) // an acknowledgement of the prefill in flight
	r.depth[2].lastAck.Store(time.Now().UnixNano())
	start := time.Now()
	drained, byPrefill := r.waitDrained(context.Background(), time.Now().Add(time.Minute))
	if !drained || !byPrefill || time.Since(start) > 5*time.Second {
		t.Fatalf("drained %v, by prefill %v after %s; want an early end by the prefill", drained, byPrefill, time.Since(start))
	}

	r = drainRunner(t, 1000) // 2 × 100/s × 60 s could claim 12,000: not bound
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	drained, byPrefill = r.waitDrained(ctx, time.Now().Add(time.Minute))
	if drained || byPrefill {
		t.Fatalf("drained %v, by prefill %v; want the drain to wait for a prefill it can claim", drained, byPrefill)
	}
	if !r.prefillBound(1, time.Now()) {
		t.Fatal("at the deadline an instance with prefill left must count as prefill-bound")
	}
	// All claimed: the consumers see empty queues and the drain ends normally.
	for n := range 1000 {
		deliverAll(r.tr, prefillID(r.opts.Prefill.Tag, 0, n), StatusSuccess, Readback{})
	}
	for _, c := range r.consumers {
		c.Store(time.Now().Add(time.Second).UnixNano())
	}
	drained, byPrefill = r.waitDrained(context.Background(), time.Now().Add(time.Minute))
	if !drained || byPrefill {
		t.Fatalf("drained %v, by prefill %v; want a normal drain", drained, byPrefill)
	}
}

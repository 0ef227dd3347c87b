package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/store"
)

// claimBatch is how many due deliveries a worker claims at once.
const claimBatch = 50

// deliveryWorker makes the outbound calls of one route: lease due deliveries in a short transaction, call
// the output outside any transaction, then record the results in another short one. When ctx ends (a
// reload swaps the route, or the process stops) it drains: a call in flight may finish and is recorded (for
// up to Config.Drain), the deliveries of its batch not called yet are given back at once, so the next
// revision takes them without waiting for their lease, and nothing is delivered twice.
func (rt *Runtime) deliveryWorker(ctx context.Context, r *liveRoute) {
	t := time.NewTicker(rt.cfg.PollInterval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			var batch []store.Delivery
			now := time.Now()
			var due bool
			err := rt.cfg.Store.View(ctx, func(tx *store.Tx) error {
				var err error
				due, err = tx.HasDueDeliveries(ctx, r.Name, now.UnixMicro())
				return err
			})
			if err == nil && !due {
				break
			}
			err = rt.cfg.Store.Update(ctx, func(tx *store.Tx) error {
				var err error
				batch, err = tx.ClaimDeliveries(ctx, r.Name, now.UnixMicro(), now.Add(rt.cfg.Lease).UnixMicro(), claimBatch)
				return err
			})
			if err != nil {
				if ctx.Err() == nil {
					rt.log.Warn("claim deliveries failed", "route", r.Name, "error", err)
				}
				break
			}
			if len(batch) == 0 {
				break
			}
			results := make([]result, 0, len(batch))
			calls, stopCalls := drainContext(ctx, rt.cfg.Drain)
			for _, c := range batch {
				if ctx.Err() != nil { // stopping: not called, given back at once
					results = append(results, result{c: c, interrupted: true})
					continue
				}
				results = append(results, rt.deliver(calls, r, c))
			}
			stopCalls()
			if err := rt.record(ctx, r, results); err != nil {
				// The calls were made; their leases expire and they are retried (outputs are idempotent).
				rt.log.Error("recording delivery results failed", "route", r.Name, "error", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-r.wake:
		}
	}
}

// result is the outcome of one outbound call, recorded with the others of its batch in one transaction.
type result struct {
	c        store.Delivery
	err      error
	attempts int
	trace    trace.SpanContext // the delivery's trace, for the log line recording it
	// interrupted: the call failed because the worker is stopping; it is no attempt, and the delivery is
	// given back for the next worker (this process after a restart, or another one) at once.
	interrupted bool
	// hash is the delivery's content hash (change detection forgets it when the delivery dies).
	hash string
}

// deliver makes one outbound call, in a trace of its own (the route, the output, the attempt).
func (rt *Runtime) deliver(ctx context.Context, r *liveRoute, c store.Delivery) result {
	ctx, span := tracing.StartRoot(ctx, "route.deliver", trace.SpanKindClient, deliveryAttrs(r, c.Output, c.Attempts+1)...)
	var d adapters.Delivery
	var callErr error
	defer func() { tracing.End(span, callErr) }()
	if err := json.Unmarshal([]byte(c.Payload), &d); err != nil {
		callErr = fmt.Errorf("stored delivery is unreadable: %w", err)
	} else if out, ok := r.outputs[c.Output]; !ok {
		callErr = fmt.Errorf("the route has no output %q any more", c.Output)
	} else {
		start := time.Now()
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		callErr = out.Deliver(callCtx, d)
		cancel()
		rt.metrics.latency.WithLabelValues(r.Name, "deliver").Observe(time.Since(start).Seconds())
	}
	if ctx.Err() != nil && callErr != nil {
		// Cut off after the drain time: no verdict on this call; given back, retried with the same key.
		return result{c: c, interrupted: true}
	}
	return result{c: c, err: callErr, attempts: c.Attempts + 1, trace: span.SpanContext(), hash: d.ContentHash}
}

// deliveryAttrs describe a delivery on its span: names an integrator chose, never record keys or fields.
func deliveryAttrs(r *liveRoute, output string, attempt int) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("koppelpoort.route", r.Name), attribute.String("koppelpoort.route.revision", r.Revision),
		attribute.String("koppelpoort.output", output), attribute.Int("koppelpoort.delivery.attempt", attempt)}
}

// record writes the results of a batch in one transaction (one commit, not one per delivery).
func (rt *Runtime) record(ctx context.Context, r *liveRoute, results []result) error {
	if len(results) == 0 {
		return nil
	}
	now := time.Now()
	// Recorded even while stopping: a lease left behind would hold the deliveries back until it ends.
	ctx = context.WithoutCancel(ctx)
	return rt.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		var released []string
		for _, res := range results {
			c := res.c
			log := rt.log.With("route", r.Name, "revision", r.Revision, "output", c.Output, "record", c.RecordKey, "delivery", c.ID)
			if res.interrupted {
				released = append(released, c.ID)
				log.Info("delivery interrupted by shutdown; it will be retried")
				continue
			}
			lctx := trace.ContextWithSpanContext(ctx, res.trace) // the line carries the delivery's trace id
			dr := store.DeliveryResult{Attempts: res.attempts, Now: now.UnixMicro()}
			switch {
			case res.err == nil:
				dr.Status = store.DeliveryDone
				rt.metrics.out.WithLabelValues(r.Name, c.Output).Inc()
				log.InfoContext(lctx, "delivered", "attempts", res.attempts)
			case errors.Is(res.err, adapters.ErrTransient) && res.attempts < r.Retry.MaxAttempts:
				dr.AttemptLog = appendAttempt(c.AttemptLog, now, res.err)
				wait := adapters.Backoff(res.attempts, r.Retry.Backoff, r.Retry.MaxBackoff)
				dr.Status, dr.NextAttemptAt, dr.LastError = store.DeliveryPending, now.Add(wait).UnixMicro(), res.err.Error()
				rt.metrics.retries.WithLabelValues(r.Name, c.Output).Inc()
				log.WarnContext(lctx, "delivery failed; will retry", "attempts", res.attempts, "retry_in", wait.String(), "error", res.err)
			default:
				dr.Status, dr.LastError = store.DeliveryDead, res.err.Error()
				dr.AttemptLog = appendAttempt(c.AttemptLog, now, res.err)
				reason := fmt.Sprintf("output %s: %v", c.Output, res.err)
				if err := tx.PutDeadLetter(ctx, store.DeadLetter{ID: "delivery-" + c.ID, Route: r.Name, Stage: "output",
					Output: c.Output, RecordKey: c.RecordKey, Record: c.Record, Reason: reason,
					Attempts: res.attempts, Revision: c.Revision, AttemptLog: dr.AttemptLog, CreatedAt: now.UnixMicro()}); err != nil {
					return err
				}
				// Not sent after all: the same content in a later export is tried again (skip_unchanged).
				if r.SkipUnchanged && res.hash != "" {
					if err := tx.ForgetSentHash(ctx, r.Name, c.Output, c.RecordKey, res.hash); err != nil {
						return err
					}
				}
				rt.metrics.deadLettered.WithLabelValues(r.Name, "output").Inc()
				log.WarnContext(lctx, "delivery dead-lettered", "stage", "output", "attempts", res.attempts, "reason", reason)
			}
			if err := tx.FinishDelivery(ctx, c.ID, dr); err != nil {
				return err
			}
		}
		return tx.ReleaseDeliveries(ctx, released, now.UnixMicro())
	})
}

// drainContext is the context of the calls a worker makes: it ends drain after ctx does, so a stop lets a
// call in flight finish and be recorded instead of cutting it off (a reload must not turn a delivery that
// went through into a retry).
func drainContext(ctx context.Context, drain time.Duration) (context.Context, context.CancelFunc) {
	calls, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stop := context.AfterFunc(ctx, func() { time.AfterFunc(drain, cancel) })
	return calls, func() { stop(); cancel() }
}

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
)

// claimBatch is how many due deliveries a worker claims at once.
const claimBatch = 50

type claimed struct {
	id, output, recordKey, payload, record string
	attempts                               int
}

// deliveryWorker makes the outbound calls of one route: claim due deliveries in a short transaction, call
// the output outside any transaction, then record the result in another short one.
func (rt *Runtime) deliveryWorker(ctx context.Context, r *liveRoute) {
	t := time.NewTicker(rt.cfg.PollInterval)
	defer t.Stop()
	for {
		for ctx.Err() == nil {
			batch, err := rt.claim(ctx, r.Name)
			if err != nil {
				if ctx.Err() == nil {
					rt.log.Warn("claim deliveries failed", "route", r.Name, "error", err)
				}
				break
			}
			if len(batch) == 0 {
				break
			}
			var results []result
			for _, c := range batch {
				if res, ok := rt.deliver(ctx, r, c); ok {
					results = append(results, res)
				}
			}
			if err := rt.record(ctx, r, results); err != nil {
				// The calls were made; their claims expire and they are retried (outputs are idempotent).
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

func (rt *Runtime) claim(ctx context.Context, route string) ([]claimed, error) {
	now := time.Now()
	tx, err := rt.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback()
	q := `SELECT id, output, record_key, payload, record, attempts FROM kp_gateway_deliveries
		WHERE route = ? AND status IN ('pending', 'inflight') AND next_attempt_at <= ?
		ORDER BY created_at, id LIMIT ?`
	if rt.cfg.Dialect == "postgres" {
		// Several Koppelpoort processes share PostgreSQL: each claims different rows.
		q += ` FOR UPDATE SKIP LOCKED`
	}
	rows, err := tx.QueryContext(ctx, rebind(rt.cfg.Dialect, q), route, micros(now), claimBatch)
	if err != nil {
		return nil, fmt.Errorf("select due deliveries: %w", err)
	}
	var out []claimed
	for rows.Next() {
		var c claimed
		if err := rows.Scan(&c.id, &c.output, &c.recordKey, &c.payload, &c.record, &c.attempts); err != nil {
			rows.Close()
			return nil, fmt.Errorf("scan delivery: %w", err)
		}
		out = append(out, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	// "inflight" with a lease: a worker that dies mid-call leaves the row due again when the lease ends.
	upd := rebind(rt.cfg.Dialect, `UPDATE kp_gateway_deliveries SET status = 'inflight', next_attempt_at = ?, updated_at = ? WHERE id = ?`)
	for _, c := range out {
		if _, err := tx.ExecContext(ctx, upd, micros(now.Add(rt.cfg.Lease)), micros(now), c.id); err != nil {
			return nil, fmt.Errorf("claim delivery: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("commit claim: %w", err)
	}
	return out, nil
}

// result is the outcome of one outbound call, recorded with the others of its batch in one transaction.
type result struct {
	c        claimed
	err      error
	attempts int
}

func (rt *Runtime) deliver(ctx context.Context, r *liveRoute, c claimed) (result, bool) {
	var d adapters.Delivery
	var callErr error
	if err := json.Unmarshal([]byte(c.payload), &d); err != nil {
		callErr = fmt.Errorf("stored delivery is unreadable: %w", err)
	} else if out, ok := r.outputs[c.output]; !ok {
		callErr = fmt.Errorf("the route has no output %q any more", c.output)
	} else {
		start := time.Now()
		callCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
		callErr = out.Deliver(callCtx, d)
		cancel()
		rt.metrics.latency.WithLabelValues(r.Name, "deliver").Observe(time.Since(start).Seconds())
	}
	if ctx.Err() != nil && callErr != nil {
		// Shutting down: leave the claim to expire so the delivery is retried after restart.
		return result{}, false
	}
	return result{c: c, err: callErr, attempts: c.attempts + 1}, true
}

// record writes the results of a batch in one transaction (one commit, not one per delivery).
func (rt *Runtime) record(ctx context.Context, r *liveRoute, results []result) error {
	if len(results) == 0 {
		return nil
	}
	tx, err := rt.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	now := time.Now()
	for _, res := range results {
		c := res.c
		log := rt.log.With("route", r.Name, "output", c.output, "record", c.recordKey, "delivery", c.id)
		switch {
		case res.err == nil:
			_, err = tx.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_deliveries SET status = 'done', attempts = ?, last_error = '', updated_at = ? WHERE id = ?`),
				res.attempts, micros(now), c.id)
			rt.metrics.out.WithLabelValues(r.Name, c.output).Inc()
			log.Info("delivered", "attempts", res.attempts)
		case errors.Is(res.err, adapters.ErrTransient) && res.attempts < r.Retry.MaxAttempts:
			wait := adapters.Backoff(res.attempts, r.Retry.Backoff, r.Retry.MaxBackoff)
			_, err = tx.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_deliveries SET status = 'pending', attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?`),
				res.attempts, micros(now.Add(wait)), res.err.Error(), micros(now), c.id)
			rt.metrics.retries.WithLabelValues(r.Name, c.output).Inc()
			log.Warn("delivery failed; will retry", "attempts", res.attempts, "retry_in", wait.String(), "error", res.err)
		default:
			if _, err = tx.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_deliveries SET status = 'dead', attempts = ?, last_error = ?, updated_at = ? WHERE id = ?`),
				res.attempts, res.err.Error(), micros(now), c.id); err == nil {
				err = insertDeadLetter(ctx, sqlExec(tx), rt.cfg.Dialect, "delivery-"+c.id, r.Name, "output", c.output, c.recordKey, c.record,
					fmt.Sprintf("output %s: %v", c.output, res.err), res.attempts)
			}
			rt.metrics.deadLettered.WithLabelValues(r.Name, "output").Inc()
			log.Warn("delivery dead-lettered", "attempts", res.attempts, "error", res.err)
		}
		if err != nil {
			return fmt.Errorf("record delivery result: %w", err)
		}
	}
	return tx.Commit()
}

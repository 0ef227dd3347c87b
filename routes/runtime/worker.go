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
const claimBatch = 10

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
			for _, c := range batch {
				rt.deliver(ctx, r, c)
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

func (rt *Runtime) deliver(ctx context.Context, r *liveRoute, c claimed) {
	log := rt.log.With("route", r.Name, "output", c.output, "record", c.recordKey, "delivery", c.id)
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
		return
	}
	attempts := c.attempts + 1
	now := time.Now()
	var err error
	switch {
	case callErr == nil:
		_, err = rt.cfg.DB.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_deliveries SET status = 'done', attempts = ?, last_error = '', updated_at = ? WHERE id = ?`),
			attempts, micros(now), c.id)
		rt.metrics.out.WithLabelValues(r.Name, c.output).Inc()
		log.Info("delivered", "attempts", attempts)
	case errors.Is(callErr, adapters.ErrTransient) && attempts < r.Retry.MaxAttempts:
		wait := adapters.Backoff(attempts, r.Retry.Backoff, r.Retry.MaxBackoff)
		_, err = rt.cfg.DB.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_deliveries SET status = 'pending', attempts = ?, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?`),
			attempts, micros(now.Add(wait)), callErr.Error(), micros(now), c.id)
		rt.metrics.retries.WithLabelValues(r.Name, c.output).Inc()
		log.Warn("delivery failed; will retry", "attempts", attempts, "retry_in", wait.String(), "error", callErr)
	default:
		err = rt.deadLetterDelivery(ctx, r.Name, c, attempts, callErr)
		rt.metrics.deadLettered.WithLabelValues(r.Name, "output").Inc()
		log.Warn("delivery dead-lettered", "attempts", attempts, "error", callErr)
	}
	if err != nil {
		log.Error("recording the delivery result failed; it will be retried when its claim expires", "error", err)
	}
}

func (rt *Runtime) deadLetterDelivery(ctx context.Context, route string, c claimed, attempts int, cause error) error {
	tx, err := rt.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	reason := fmt.Sprintf("output %s: %v", c.output, cause)
	if _, err := tx.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_deliveries SET status = 'dead', attempts = ?, last_error = ?, updated_at = ? WHERE id = ?`),
		attempts, cause.Error(), micros(time.Now()), c.id); err != nil {
		return err
	}
	if err := insertDeadLetter(ctx, sqlExec(tx), rt.cfg.Dialect, "delivery-"+c.id, route, "output", c.output, c.recordKey, c.record, reason, attempts); err != nil {
		return err
	}
	return tx.Commit()
}

package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
)

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// outcomeWorker reports final record outcomes to an input that wants them: a routed record is final when
// all its deliveries are done (ok) or one is dead (failed); drops and rule dead letters are final at once.
func (rt *Runtime) outcomeWorker(ctx context.Context, r *liveRoute) {
	t := time.NewTicker(rt.cfg.PollInterval)
	defer t.Stop()
	for {
		if err := rt.settleOutcomes(ctx, r); err != nil && ctx.Err() == nil {
			rt.log.Warn("settling record outcomes failed", "route", r.Name, "error", err)
		}
		if err := rt.reportOutcomes(ctx, r); err != nil && ctx.Err() == nil {
			rt.log.Warn("reporting record outcomes failed", "route", r.Name, "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (rt *Runtime) settleOutcomes(ctx context.Context, r *liveRoute) error {
	rows, err := rt.cfg.DB.QueryContext(ctx, rebind(rt.cfg.Dialect, `SELECT id, delivery_ids FROM kp_gateway_outcomes WHERE route = ? AND state = 'waiting' ORDER BY created_at LIMIT 50`), r.Name)
	if err != nil {
		return err
	}
	type waiting struct{ id, ids string }
	var ws []waiting
	for rows.Next() {
		var w waiting
		if err := rows.Scan(&w.id, &w.ids); err != nil {
			rows.Close()
			return err
		}
		ws = append(ws, w)
	}
	rows.Close()
	for _, w := range ws {
		var ids []string
		if err := json.Unmarshal([]byte(w.ids), &ids); err != nil || len(ids) == 0 {
			continue
		}
		q := `SELECT status, last_error FROM kp_gateway_deliveries WHERE id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(ids)), ",") + `)`
		args := make([]any, len(ids))
		for i, id := range ids {
			args[i] = id
		}
		drows, err := rt.cfg.DB.QueryContext(ctx, rebind(rt.cfg.Dialect, q), args...)
		if err != nil {
			return err
		}
		done, dead, reason := 0, 0, ""
		for drows.Next() {
			var status, lastErr string
			if err := drows.Scan(&status, &lastErr); err != nil {
				drows.Close()
				return err
			}
			switch status {
			case "done":
				done++
			case "dead":
				dead++
				reason = lastErr
			}
		}
		drows.Close()
		if dead == 0 && done < len(ids) {
			continue
		}
		if _, err := rt.cfg.DB.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_outcomes SET state = 'ready', ok = ?, reason = ? WHERE id = ? AND state = 'waiting'`),
			boolInt(dead == 0), reason, w.id); err != nil {
			return err
		}
	}
	return nil
}

func (rt *Runtime) reportOutcomes(ctx context.Context, r *liveRoute) error {
	rows, err := rt.cfg.DB.QueryContext(ctx, rebind(rt.cfg.Dialect, `SELECT id, record, ok, reason FROM kp_gateway_outcomes WHERE route = ? AND state = 'ready' ORDER BY created_at LIMIT 50`), r.Name)
	if err != nil {
		return err
	}
	type ready struct {
		id, record, reason string
		ok                 int
	}
	var rs []ready
	for rows.Next() {
		var x ready
		if err := rows.Scan(&x.id, &x.record, &x.ok, &x.reason); err != nil {
			rows.Close()
			return err
		}
		rs = append(rs, x)
	}
	rows.Close()
	for _, x := range rs {
		var rec adapters.Record
		if err := json.Unmarshal([]byte(x.record), &rec); err != nil {
			return fmt.Errorf("outcome %s: stored record unreadable: %w", x.id, err)
		}
		callCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := r.ack.Outcome(callCtx, rec, x.ok == 1, x.reason)
		cancel()
		if err != nil {
			rt.log.Warn("reporting a record outcome failed; will retry", "route", r.Name, "record", rec.Key, "error", err)
			continue
		}
		if _, err := rt.cfg.DB.ExecContext(ctx, rebind(rt.cfg.Dialect, `UPDATE kp_gateway_outcomes SET state = 'sent' WHERE id = ?`), x.id); err != nil {
			return err
		}
		rt.log.Info("record outcome reported", "route", r.Name, "record", rec.Key, "ok", x.ok == 1)
	}
	return nil
}

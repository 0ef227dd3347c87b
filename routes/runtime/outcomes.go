package runtime

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/store"
)

// outcomeWorker reports final record outcomes to an input that wants them: a routed record is final when
// all its deliveries are done (ok) or one is dead (failed); drops, dead letters and records delivered in
// the routing transaction are final at once.
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
	var waiting []store.Outcome
	if err := rt.cfg.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		waiting, err = tx.Outcomes(ctx, r.Name, store.OutcomeWaiting, 50)
		return err
	}); err != nil || len(waiting) == 0 {
		return err
	}
	return rt.cfg.Store.Update(ctx, func(tx *store.Tx) error {
		for _, w := range waiting {
			var ids []string
			if err := json.Unmarshal([]byte(w.DeliveryIDs), &ids); err != nil || len(ids) == 0 {
				continue
			}
			statuses, err := tx.DeliveryStatuses(ctx, ids)
			if err != nil {
				return err
			}
			done, dead, reason := 0, 0, ""
			for _, s := range statuses {
				switch s.Status {
				case store.DeliveryDone:
					done++
				case store.DeliveryDead:
					dead++
					reason = s.LastError
				}
			}
			if dead == 0 && done < len(ids) {
				continue
			}
			if err := tx.SetOutcome(ctx, w.ID, store.OutcomeWaiting, store.OutcomeReady, dead == 0, reason); err != nil {
				return err
			}
		}
		return nil
	})
}

func (rt *Runtime) reportOutcomes(ctx context.Context, r *liveRoute) error {
	var ready []store.Outcome
	if err := rt.cfg.Store.View(ctx, func(tx *store.Tx) error {
		var err error
		ready, err = tx.Outcomes(ctx, r.Name, store.OutcomeReady, 50)
		return err
	}); err != nil {
		return err
	}
	for _, x := range ready {
		var rec adapters.Record
		if err := json.Unmarshal([]byte(x.Record), &rec); err != nil {
			return fmt.Errorf("outcome %s: stored record unreadable: %w", x.ID, err)
		}
		callCtx, cancel := context.WithTimeout(ctx, time.Minute)
		err := r.ack.Outcome(callCtx, rec, x.OK, x.Reason)
		cancel()
		if err != nil {
			rt.log.Warn("reporting a record outcome failed; will retry", "route", r.Name, "record", rec.Key, "error", err)
			continue
		}
		if err := rt.cfg.Store.Update(ctx, func(tx *store.Tx) error {
			return tx.SetOutcome(ctx, x.ID, store.OutcomeReady, store.OutcomeSent, x.OK, x.Reason)
		}); err != nil {
			return err
		}
		rt.log.Info("record outcome reported", "route", r.Name, "record", rec.Key, "ok", x.OK)
	}
	return nil
}

package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/transport"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// handler processes one record inside the transport's consuming transaction: deliveries to outputs in the
// store, deliveries for the others, dead letters and the outcome commit together with the consumer
// offset, so a crash either redoes the record or has fully recorded it.
func (rt *Runtime) handler(r *liveRoute) message.NoPublishHandlerFunc {
	return func(msg *message.Message) error {
		var rm recordMessage
		if err := json.Unmarshal(msg.Payload, &rm); err != nil {
			// A payload we cannot read will never get better: log it and let it pass.
			rt.log.Error("route message is not a record; skipped", "route", r.Name, "message", msg.UUID, "error", err)
			return nil
		}
		tx, ok := transport.StoreTx(msg)
		if !ok {
			return errors.New("runtime: no store transaction in message context")
		}
		queued, err := rt.route(msg.Context(), tx, r, msg.UUID, rm)
		if err != nil {
			return err
		}
		rt.metrics.latency.WithLabelValues(r.Name, "process").Observe(time.Since(rm.Received).Seconds())
		if queued {
			// Only then has the delivery worker something to do: a record delivered in the store (or dropped)
			// would make it look for due deliveries in vain, once per record.
			select {
			case r.wake <- struct{}{}:
			default:
			}
		}
		return nil
	}
}

// route applies the route to one record in tx (see handler); queued reports whether it left deliveries for
// the delivery worker.
func (rt *Runtime) route(ctx context.Context, tx *store.Tx, r *liveRoute, msgID string, rm recordMessage) (queued bool, err error) {
	res := r.Process(rm.Record)
	log := rt.log.With("route", r.Name, "revision", r.Revision, "record", res.Key)
	recordJSON, err := json.Marshal(rm.Record)
	if err != nil {
		return false, fmt.Errorf("encode record: %w", err)
	}
	now := time.Now().UnixMicro()
	outcome := store.Outcome{ID: msgID, Route: r.Name, Record: string(recordJSON), State: store.OutcomeReady,
		OK: res.Outcome != routes.DeadLettered, Reason: res.Reason, CreatedAt: now}
	var pending []string
	switch res.Outcome {
	case routes.Dropped:
		rt.metrics.dropped.WithLabelValues(r.Name).Inc()
		// Reasons are written by integrators and may quote record values: only at debug level.
		log.Info("record dropped")
		log.Debug("record dropped", "reason", res.Reason)
	case routes.DeadLettered:
		stage := res.Stage // where it failed: input, rules or transform
		if stage == "" {
			stage = routes.StageRules
		}
		dl := store.DeadLetter{ID: deadLetterID(r, res.Key, rm.Record, string(recordJSON)), Route: r.Name, Stage: stage,
			RecordKey: res.Key, Record: string(recordJSON), Reason: res.Reason, Revision: r.Revision, CreatedAt: now}
		if err := tx.PutDeadLetter(ctx, dl); err != nil {
			return false, err
		}
		rt.metrics.deadLettered.WithLabelValues(r.Name, stage).Inc()
		// The reason is what an operator needs first; route files name records by key in their reasons
		// (routes/README.md), so it is logged at WARN like an output's error.
		log.Warn("record dead-lettered", "stage", stage, "reason", res.Reason, "dead_letter", dl.ID)
	case routes.Routed:
		var later []store.Delivery
		unchanged := 0
		for _, d := range res.Deliveries {
			if same, err := rt.unchanged(ctx, tx, r, d); err != nil {
				return false, err
			} else if same {
				unchanged++
				continue
			}
			if out, ok := r.inTx[d.Output]; ok {
				if err := rt.deliverInTx(ctx, tx, r, out, d, string(recordJSON), now, &outcome); err != nil {
					return false, err
				}
				continue
			}
			payload, err := json.Marshal(d)
			if err != nil {
				return false, fmt.Errorf("encode delivery: %w", err)
			}
			later = append(later, store.Delivery{ID: d.IdempotencyKey, Route: r.Name, Output: d.Output, RecordKey: res.Key,
				Payload: string(payload), Record: string(recordJSON), NextAttemptAt: now, Revision: r.Revision,
				CreatedAt: now, UpdatedAt: now})
			pending = append(pending, d.IdempotencyKey)
			// Counted as sent once it is queued, so a second export before the call is made does not queue
			// it again; forgotten if the delivery becomes a dead letter (record).
			if err := rt.sent(ctx, tx, r, d, now); err != nil {
				return false, err
			}
		}
		if err := tx.InsertDeliveries(ctx, later); err != nil {
			return false, err
		}
		queued = len(later) > 0
		log.Debug("record routed", "deliveries", len(res.Deliveries), "delivered", len(res.Deliveries)-len(later)-unchanged,
			"unchanged", unchanged)
	}
	if r.ack == nil {
		return queued, nil
	}
	// The source wants the outcome: park it durably with the record; the outcome worker reports it.
	if len(pending) > 0 && outcome.OK {
		ids, _ := json.Marshal(pending)
		outcome.State, outcome.DeliveryIDs = store.OutcomeWaiting, string(ids)
	} else {
		outcome.DeliveryIDs = "[]"
	}
	return queued, tx.PutOutcome(ctx, outcome)
}

// deliverInTx delivers d to an output in the store, inside the routing transaction. A refusal (the
// message is not valid for the domain) dead-letters the delivery: DeliverTx refuses before it writes
// (adapters.TxOutbound), so there is nothing to undo and no savepoint per record (one cost SQLite a copy of
// every page the record touched). A transient error fails the transaction, so the record is routed again.
func (rt *Runtime) deliverInTx(ctx context.Context, tx *store.Tx, r *liveRoute, out adapters.TxOutbound, d adapters.Delivery,
	record string, now int64, outcome *store.Outcome) error {
	start := time.Now()
	ctx, span := tracing.StartRoot(ctx, "route.deliver", trace.SpanKindInternal,
		append(deliveryAttrs(r, d.Output, 1), attribute.Bool("koppelpoort.delivery.in_transaction", true))...)
	err := out.DeliverTx(ctx, tx, d)
	tracing.End(span, err)
	rt.metrics.latency.WithLabelValues(r.Name, "deliver").Observe(time.Since(start).Seconds())
	log := rt.log.With("route", r.Name, "revision", r.Revision, "output", d.Output, "record", d.RecordKey, "delivery", d.IdempotencyKey)
	switch {
	case err == nil:
		rt.metrics.out.WithLabelValues(r.Name, d.Output).Inc()
		log.DebugContext(ctx, "delivered in the routing transaction")
		return rt.sent(ctx, tx, r, d, now)
	case errors.Is(err, adapters.ErrTransient), errors.Is(err, context.Canceled):
		return fmt.Errorf("output %s: %w", d.Output, err)
	}
	reason := fmt.Sprintf("output %s: %v", d.Output, err)
	if perr := tx.PutDeadLetter(ctx, store.DeadLetter{ID: "delivery-" + d.IdempotencyKey, Route: r.Name, Stage: "output",
		Output: d.Output, RecordKey: d.RecordKey, Record: record, Reason: reason, Attempts: 1, Revision: r.Revision,
		AttemptLog: appendAttempt("", time.UnixMicro(now), err), CreatedAt: now}); perr != nil {
		return perr
	}
	outcome.OK, outcome.Reason = false, reason
	rt.metrics.deadLettered.WithLabelValues(r.Name, "output").Inc()
	log.WarnContext(ctx, "delivery dead-lettered", "stage", "output", "reason", reason)
	return nil
}

// unchanged reports whether change detection (the route's skip_unchanged) skips d: its output was last
// sent the same content for the same record key. Such a delivery is counted, not made.
func (rt *Runtime) unchanged(ctx context.Context, tx *store.Tx, r *liveRoute, d adapters.Delivery) (bool, error) {
	if !r.SkipUnchanged || d.ContentHash == "" {
		return false, nil
	}
	last, err := tx.SentHash(ctx, r.Name, d.Output, d.RecordKey)
	if err != nil || last != d.ContentHash {
		return false, err
	}
	rt.metrics.unchanged.WithLabelValues(r.Name, d.Output).Inc()
	return true, nil
}

// sent records d's content as the last sent to its output for its record key (skip_unchanged only).
func (rt *Runtime) sent(ctx context.Context, tx *store.Tx, r *liveRoute, d adapters.Delivery, now int64) error {
	if !r.SkipUnchanged || d.ContentHash == "" {
		return nil
	}
	return tx.PutSentHash(ctx, r.Name, d.Output, d.RecordKey, d.ContentHash, now)
}

// deadLetterID is stable for the same record from the same source, so a re-read after a crash does not
// park it twice (and a replay that fails again brings the same dead letter back). Its seed keeps "rules"
// for every stage: ids of dead letters parked before stages were told apart stay the same. With
// skip_unchanged the source is left out: the same refused record in the next export is the same dead
// letter, not a second one.
func deadLetterID(r *liveRoute, key string, rec adapters.Record, recordJSON string) string {
	if r.SkipUnchanged {
		fields, err := json.Marshal(rec.Fields)
		if err == nil {
			return transforms.StableID(r.Name, "rules", key, "unchanged", string(fields))
		}
	}
	return transforms.StableID(r.Name, "rules", key, rec.Meta["source_id"], recordJSON)
}

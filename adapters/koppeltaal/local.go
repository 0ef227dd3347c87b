package koppeltaal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// local is a Koppeltaal adapter's binding to an application instance of this process's own server: it
// uses the mailbox port (Check → Accept on a transaction) and the queue directly, with no HTTP, no
// password and no copy of the server's versions.
type local struct {
	svc    *koppeltaal.Service
	st     *store.Store
	caller *koppeltaal.Caller
}

func newLocal(ctx context.Context, h adapters.Host, instance string) (*local, error) {
	if h.Koppeltaal == nil || h.Store == nil {
		return nil, fmt.Errorf("instance %q: this Koppelpoort serves no Koppeltaal domains (no koppeltaal: section); use base_url for a remote server", instance)
	}
	c, err := h.Koppeltaal.LocalCaller(ctx, instance)
	if err != nil {
		return nil, fmt.Errorf("instance: %w", err)
	}
	return &local{svc: h.Koppeltaal, st: h.Store, caller: c}, nil
}

// accept checks msg and accepts it on tx as an update of the current versions (the store's, read under
// the post's locks in tx). A refusal is permanent (the message is wrong for the domain) and comes before
// any write (Check writes nothing; Accept refuses before its first write), as adapters.TxOutbound asks;
// anything else is the store's trouble and transient.
func (l *local) accept(ctx context.Context, tx *store.Tx, msg *dstu1.Bundle) error {
	sub, err := l.svc.CheckBundle(l.caller, msg, dstu1.FormatJSON, 0)
	if err != nil {
		return err
	}
	sub.BasedOnCurrentVersions()
	_, err = l.svc.Accept(ctx, tx, sub)
	var ke *koppeltaal.Error
	if err != nil && !errors.As(err, &ke) {
		return adapters.Transient(err)
	}
	return err
}

// inOwnTx runs fn in a transaction of its own (a delivery made outside a routing transaction).
func (l *local) inOwnTx(ctx context.Context, fn func(tx *store.Tx) error) error {
	return l.st.Update(ctx, fn)
}

// takeBatch is how many messages a local inbound takes per transaction.
const takeBatch = 50

// run feeds sink from the instance's queue: each transaction takes the New messages (they become Claimed:
// the queue's status is the checkpoint) and accepts their records on the route's topic, so a message is
// taken exactly once. The outcome is reported with outcome.
func (l *local) run(ctx context.Context, sink adapters.Sink, event string, poll func(context.Context), log *slog.Logger) error {
	txs, ok := sink.(adapters.TxSink)
	if !ok {
		return errors.New("koppeltaal inbound: a local instance needs a sink that accepts in a store transaction")
	}
	for ctx.Err() == nil {
		waiting, err := l.st.HasNew(ctx, l.caller.ID, store.Filter{Event: event})
		if err != nil || !waiting {
			if err != nil && ctx.Err() == nil {
				log.Warn("koppeltaal inbound: reading the queue failed", "error", err)
			}
			poll(ctx)
			continue
		}
		var unreadable []store.Entry
		err = l.st.Update(ctx, func(tx *store.Tx) error {
			taken, err := l.svc.TakeTx(ctx, tx, l.caller, event, takeBatch)
			if err != nil {
				return err
			}
			recs := make([]adapters.Record, 0, len(taken))
			unreadable = unreadable[:0]
			for _, t := range taken {
				rec, err := MessageRecord(t.Message)
				if err != nil {
					unreadable = append(unreadable, t.Entry)
					continue
				}
				recs = append(recs, rec)
			}
			return txs.AcceptTx(ctx, tx, recs)
		})
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("koppeltaal inbound: taking messages failed; retrying", "error", err)
			}
			poll(ctx)
			continue
		}
		for _, e := range unreadable {
			if err := l.svc.SetProcessingStatus(ctx, l.caller, e.ID, store.StatusFailed, "the gateway cannot read the message"); err != nil {
				log.Warn("koppeltaal inbound: acknowledging an unreadable message failed", "entry", e.ID, "error", err)
			}
		}
	}
	return nil
}

// outcome acknowledges the queue entry a record came from.
func (l *local) outcome(ctx context.Context, ackURL, status, exception string) error {
	id, _, err := koppeltaal.ParseEntryRef(ackURL)
	if err != nil {
		return fmt.Errorf("koppeltaal inbound: record has no queue entry: %w", err)
	}
	err = l.svc.SetProcessingStatus(ctx, l.caller, id, status, exception)
	var ke *koppeltaal.Error
	if errors.As(err, &ke) && ke.Kind == koppeltaal.Conflict {
		return nil // already acknowledged (an outcome reported twice)
	}
	return err
}

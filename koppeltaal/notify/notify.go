// Package notify pushes "new message" notifications of the Koppeltaal server
// (SPEC.md §3.10, §13): per-instance webhooks and a Server-Sent Events stream
// on the FHIR base for clients that cannot receive webhooks.
//
// Webhooks are the output "webhook" of the built-in Koppeltaal route
// (routes/runtime.NewKoppeltaal). This package decides what to notify and
// makes one call: Input scans the queue table beyond a checkpoint kept in the
// database and records a route delivery per queue row of an instance with a
// webhook; Webhook is the output that calls it. The route worker leases,
// retries, dead-letters and reports those deliveries like any route output's,
// so a restart (or a second process on the same PostgreSQL) drops and
// duplicates nothing beyond at-least-once. Posting a message wakes the scan in
// process; other processes' messages are found by polling.
package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/store"
)

// Webhook retry policy, the built-in route's for its webhook output: at most 5 attempts (SPEC.md §13.1),
// 2s, 4s, 8s, 16s apart (capped at 5m).
const (
	MaxAttempts = 5
	Backoff     = 2 * time.Second
	MaxBackoff  = 5 * time.Minute
)

// Options configure New. Zero values get the documented defaults.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// Client makes the webhook calls. Default: a client with a 10s timeout.
	Client *http.Client
	// PollInterval is how often the database is scanned for new queue rows (wake-ups make local messages
	// faster). Default 1s.
	PollInterval time.Duration
	// Settle is how far the checkpoint trails the newest queue row, so rows
	// whose transaction commits late (PostgreSQL, several writers) are not
	// skipped. Default 10s.
	Settle time.Duration
	// RecheckInterval is how often an open live stream verifies its caller's
	// credentials again (a replaced or revoked token, a removed instance, a
	// changed password end it); a Bearer stream also ends when its token
	// expires. Default 5s.
	RecheckInterval time.Duration
}

func (o *Options) setDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.Settle <= 0 {
		o.Settle = 10 * time.Second
	}
	if o.RecheckInterval <= 0 {
		o.RecheckInterval = 5 * time.Second
	}
}

// Notifier records webhook deliveries, makes webhook calls and feeds the live streams.
type Notifier struct {
	o    Options
	st   *store.Store
	log  *slog.Logger
	wake chan struct{}

	mu  sync.Mutex
	gen chan struct{} // closed and replaced on every wake-up: the streams wait on it

	stopped  chan struct{} // closed when Run's context ends: live streams end (server shutdown)
	stopOnce sync.Once

	// hooks caches whether any instance has a webhook; see anyWebhook.
	hooks struct {
		sync.Mutex
		known   bool
		any     bool
		gen     uint64
		checked time.Time
	}
}

// anyWebhook reports whether some instance has a webhook URL. The answer is
// cached until the store's instance generation moves (a configuration change in
// this process) or 10 s pass (a change by another process on a shared database),
// so the scan that follows every POST costs no query when nobody uses webhooks.
func (n *Notifier) anyWebhook(ctx context.Context) (bool, error) {
	h := &n.hooks
	h.Lock()
	defer h.Unlock()
	gen := n.st.InstancesGeneration()
	if h.known && h.gen == gen && time.Since(h.checked) < 10*time.Second {
		return h.any, nil
	}
	var found bool
	if err := n.st.View(ctx, func(tx *store.Tx) error {
		return tx.Get(ctx, &found, "SELECT EXISTS (SELECT 1 FROM app_instances WHERE webhook_url <> '')")
	}); err != nil {
		return false, fmt.Errorf("look for webhooks: %w", err)
	}
	h.known, h.any, h.gen, h.checked = true, found, gen, time.Now()
	return found, nil
}

// New returns a notifier; run Run for the live streams, and Input and Webhook as the built-in route's.
func New(opts Options) (*Notifier, error) {
	if opts.Store == nil {
		return nil, errors.New("notify: New needs a Store")
	}
	opts.setDefaults()
	return &Notifier{o: opts, st: opts.Store, log: opts.Logger, wake: make(chan struct{}, 1), gen: make(chan struct{}),
		stopped: make(chan struct{})}, nil
}

// Wake tells the scan and the live streams that messages were queued.
// It never blocks.
func (n *Notifier) Wake() {
	select {
	case n.wake <- struct{}{}:
	default:
	}
	n.mu.Lock()
	close(n.gen)
	n.gen = make(chan struct{})
	n.mu.Unlock()
}

// changed returns a channel closed at the next Wake.
func (n *Notifier) changed() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.gen
}

// KeepDeliveries is how long finished (delivered or dead) webhook deliveries stay in
// the database for inspection before the scan's hourly purge deletes them (a dead one's dead letter stays).
const KeepDeliveries = 7 * 24 * time.Hour

// purge deletes finished webhook deliveries older than KeepDeliveries.
func (n *Notifier) purge(ctx context.Context) (int64, error) {
	var k int64
	err := n.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		k, err = tx.PurgeDeliveries(ctx, store.KoppeltaalRoute, time.Now().Add(-KeepDeliveries).UnixMicro())
		return err
	})
	return k, err
}

// Run serves the live streams until ctx ends; then they end too (http.Server.Shutdown would otherwise wait
// for them).
func (n *Notifier) Run(ctx context.Context) error {
	<-ctx.Done()
	n.stopOnce.Do(func() { close(n.stopped) })
	return nil
}

// Input is the built-in route's input: the scan that records a webhook delivery for every new queue row
// of an instance with a webhook (routes/runtime.NewKoppeltaal).
func (n *Notifier) Input() adapters.Inbound { return input{n} }

type input struct{ n *Notifier }

// Run scans until ctx ends (and purges old deliveries hourly). The deliveries are the records' routing:
// the route's rule (an instance with a webhook) is a condition of the scan's query, so the scan writes
// them itself, in the transaction that moves the checkpoint, and leaves the sink unused.
func (in input) Run(ctx context.Context, _ adapters.Sink) error {
	n := in.n
	t := time.NewTicker(n.o.PollInterval)
	defer t.Stop()
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	for {
		if err := n.scan(ctx); err != nil {
			if ctx.Err() == nil {
				n.log.Error("notify: webhook scan failed", "err", err)
			} else {
				n.log.Info("notify: webhook scan interrupted by shutdown", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-t.C:
		case <-purge.C:
			if k, err := n.purge(ctx); err != nil && ctx.Err() == nil {
				n.log.Error("notify: purge failed", "err", err)
			} else if k > 0 {
				n.log.Info("notify: old webhook deliveries purged", "rows", k)
			}
		}
	}
}

const checkpointName = "webhooks"

// scan records a delivery for every queue row beyond the checkpoint whose
// instance has a webhook, and moves the checkpoint up to the rows older than Settle.
func (n *Notifier) scan(ctx context.Context) error {
	// Without any webhook there is nothing to record; skip the write transaction, which would otherwise
	// queue behind every POST in the single SQLite writer (about a fifth of its time under load). The
	// checkpoint stays where it is, so a webhook configured later is told about what waits for it.
	if anyHook, err := n.anyWebhook(ctx); err != nil || !anyHook {
		return err
	}
	now := time.Now()
	return n.st.Update(ctx, func(tx *store.Tx) error {
		var last int64
		err := tx.Get(ctx, &last, "SELECT last_id FROM notify_checkpoints WHERE name = ?", checkpointName)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read checkpoint: %w", err)
		}
		if err != nil {
			// First run: start at the current end of the queue (history is not notified).
			if err := tx.Get(ctx, &last, "SELECT COALESCE(MAX(id), 0) FROM queue"); err != nil {
				return fmt.Errorf("read queue end: %w", err)
			}
			if _, err := tx.Exec(ctx, "INSERT INTO notify_checkpoints (name, last_id) VALUES (?, ?)", checkpointName, last); err != nil {
				return fmt.Errorf("create checkpoint: %w", err)
			}
		}
		var rows []struct {
			ID         int64 `db:"id"`
			InstanceID int64 `db:"instance_id"`
		}
		const limit = 1000
		if err := tx.Select(ctx, &rows, `SELECT q.id, q.instance_id FROM queue q JOIN app_instances i ON i.id = q.instance_id
			WHERE q.id > ? AND i.webhook_url <> ''
			AND NOT EXISTS (SELECT 1 FROM route_deliveries d WHERE d.id = 'webhook-' || CAST(q.id AS TEXT))
			ORDER BY q.id LIMIT ?`, last, limit); err != nil {
			return fmt.Errorf("scan queue: %w", err)
		}
		ds := make([]store.Delivery, 0, len(rows))
		for _, r := range rows {
			d, err := webhookDelivery(r.ID, r.InstanceID, now)
			if err != nil {
				return err
			}
			ds = append(ds, d)
		}
		if err := tx.InsertDeliveries(ctx, ds); err != nil {
			return err
		}
		var settled int64
		if err := tx.Get(ctx, &settled, "SELECT COALESCE(MAX(id), 0) FROM queue WHERE id > ? AND created_at < ?",
			last, now.Add(-n.o.Settle).UnixMicro()); err != nil {
			return fmt.Errorf("find settled queue rows: %w", err)
		}
		if len(rows) == limit && rows[len(rows)-1].ID < settled {
			settled = rows[len(rows)-1].ID
		}
		if settled > last {
			if _, err := tx.Exec(ctx, "UPDATE notify_checkpoints SET last_id = ? WHERE name = ? AND last_id < ?", settled, checkpointName, settled); err != nil {
				return fmt.Errorf("advance checkpoint: %w", err)
			}
		}
		return nil
	})
}

// webhookDelivery is the built-in route's delivery for queue row queueID of instance: its record names
// both (as strings: a replayed record comes back through JSON), and its id is "webhook-<queue id>", which
// the scan looks for so a queue row is notified once however often it is scanned.
func webhookDelivery(queueID, instance int64, now time.Time) (store.Delivery, error) {
	key := strconv.FormatInt(queueID, 10)
	rec := adapters.Record{Key: key, Fields: map[string]any{"queue_id": key, "instance_id": strconv.FormatInt(instance, 10)}}
	d := adapters.Delivery{Route: store.KoppeltaalRoute, Output: store.WebhookOutput, RecordKey: key,
		IdempotencyKey: "webhook-" + key, Fields: rec.Fields}
	payload, err := json.Marshal(d)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("encode webhook delivery for queue row %d: %w", queueID, err)
	}
	record, err := json.Marshal(rec)
	if err != nil {
		return store.Delivery{}, fmt.Errorf("encode webhook record for queue row %d: %w", queueID, err)
	}
	return store.Delivery{ID: d.IdempotencyKey, Route: d.Route, Output: d.Output, RecordKey: key, Payload: string(payload),
		Record: string(record), NextAttemptAt: now.UnixMicro(), Revision: routes.BuiltinRevision,
		CreatedAt: now.UnixMicro(), UpdatedAt: now.UnixMicro()}, nil
}

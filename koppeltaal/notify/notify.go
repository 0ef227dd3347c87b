// Package notify pushes "new message" notifications of the Koppeltaal server
// (SPEC.md §3.10, §13): per-instance webhooks, delivered durably with retries,
// and a Server-Sent Events stream on the FHIR base for clients that cannot
// receive webhooks.
//
// Webhook delivery is durable: a dispatcher scans the queue table beyond a
// checkpoint kept in the database, records one delivery row per queue row of
// an instance with a webhook, and works those rows off with leases, so a
// restart (or a second process on the same PostgreSQL) drops and duplicates
// nothing beyond at-least-once. Posting a message wakes the dispatcher in
// process; other processes' messages are found by polling.
package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/store"
)

// Options configure New. Zero values get the documented defaults.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// Registerer receives the koppeltaal_webhook_* metrics; nil: not registered.
	Registerer prometheus.Registerer
	// Client makes the webhook calls. Default: a client with a 10s timeout.
	Client *http.Client
	// MaxAttempts is how often one notification is tried (SPEC.md §13: at most 5). Default 5.
	MaxAttempts int
	// Backoff is the delay before the first retry; it doubles per attempt up to MaxBackoff. Default 2s.
	Backoff time.Duration
	// MaxBackoff caps the retry delay. Default 5m.
	MaxBackoff time.Duration
	// PollInterval is how often the database is scanned for new queue rows and
	// due retries (wake-ups make local messages faster). Default 1s.
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
	if o.MaxAttempts <= 0 {
		o.MaxAttempts = 5
	}
	if o.Backoff <= 0 {
		o.Backoff = 2 * time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 5 * time.Minute
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

// Notifier delivers webhooks and feeds the live streams.
type Notifier struct {
	o       Options
	st      *store.Store
	log     *slog.Logger
	wake    chan struct{}
	metrics metrics

	mu  sync.Mutex
	gen chan struct{} // closed and replaced on every wake-up: the streams wait on it

	stopped  chan struct{} // closed when Run returns: live streams end (server shutdown)
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

type metrics struct {
	deliveries *prometheus.CounterVec
	latency    prometheus.Histogram
	pending    prometheus.Gauge
}

// New returns a notifier; call Run to start delivering.
func New(opts Options) (*Notifier, error) {
	if opts.Store == nil {
		return nil, errors.New("notify: New needs a Store")
	}
	opts.setDefaults()
	n := &Notifier{o: opts, st: opts.Store, log: opts.Logger, wake: make(chan struct{}, 1), gen: make(chan struct{}),
		stopped: make(chan struct{})}
	n.metrics = metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_webhook_deliveries_total",
			Help: "Webhook calls by result: delivered, retry (failed, will be retried), failed (gave up)."}, []string{"result"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "koppeltaal_webhook_call_seconds",
			Help: "Duration of webhook calls.", Buckets: prometheus.DefBuckets}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{Name: "koppeltaal_webhook_pending",
			Help: "Webhook notifications waiting for (another) attempt, as of the last scan."}),
	}
	if opts.Registerer != nil {
		for _, c := range []prometheus.Collector{n.metrics.deliveries, n.metrics.latency, n.metrics.pending} {
			_ = opts.Registerer.Register(c)
		}
	}
	return n, nil
}

// Wake tells the dispatcher and the live streams that messages were queued.
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

// KeepDeliveries is how long finished (delivered or failed) deliveries stay in
// the database for inspection before Purge deletes them.
const KeepDeliveries = 7 * 24 * time.Hour

// Purge deletes finished deliveries older than KeepDeliveries.
func (n *Notifier) Purge(ctx context.Context) (int64, error) {
	var k int64
	err := n.st.Update(ctx, func(tx *store.Tx) error {
		res, err := tx.Exec(ctx, "DELETE FROM webhook_deliveries WHERE status IN ('delivered', 'failed') AND updated_at < ?",
			time.Now().Add(-KeepDeliveries).UnixMicro())
		if err != nil {
			return fmt.Errorf("purge webhook deliveries: %w", err)
		}
		k, _ = res.RowsAffected()
		return nil
	})
	return k, err
}

// Run scans and delivers until ctx ends (and purges old deliveries hourly).
func (n *Notifier) Run(ctx context.Context) error {
	// Streams end with the process: http.Server.Shutdown would otherwise wait for them.
	defer n.stopOnce.Do(func() { close(n.stopped) })
	t := time.NewTicker(n.o.PollInterval)
	defer t.Stop()
	purge := time.NewTicker(time.Hour)
	defer purge.Stop()
	for {
		if err := n.Step(ctx); err != nil {
			if ctx.Err() == nil {
				n.log.Error("notify: webhook dispatch failed", "err", err)
			} else {
				n.log.Info("notify: webhook dispatch interrupted by shutdown", "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-n.wake:
		case <-t.C:
		case <-purge.C:
			if k, err := n.Purge(ctx); err != nil && ctx.Err() == nil {
				n.log.Error("notify: purge failed", "err", err)
			} else if k > 0 {
				n.log.Info("notify: old webhook deliveries purged", "rows", k)
			}
		}
	}
}

// Step runs one scan and delivers every due notification (tests drive it directly).
func (n *Notifier) Step(ctx context.Context) error {
	if err := n.scan(ctx); err != nil {
		return err
	}
	for ctx.Err() == nil {
		k, err := n.deliverDue(ctx)
		if err != nil {
			return err
		}
		if k == 0 {
			return nil
		}
	}
	return nil
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
			WHERE q.id > ? AND i.webhook_url <> '' AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.queue_id = q.id)
			ORDER BY q.id LIMIT ?`, last, limit); err != nil {
			return fmt.Errorf("scan queue: %w", err)
		}
		for _, r := range rows {
			if _, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (queue_id, instance_id, status, attempts, next_attempt_at,
				lease_until, last_error, created_at, updated_at) VALUES (?, ?, 'pending', 0, ?, 0, '', ?, ?)
				ON CONFLICT (queue_id) DO NOTHING`, r.ID, r.InstanceID, now.UnixMicro(), now.UnixMicro(), now.UnixMicro()); err != nil {
				return fmt.Errorf("record delivery for queue row %d: %w", r.ID, err)
			}
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
		var pending int64
		if err := tx.Get(ctx, &pending, "SELECT COUNT(*) FROM webhook_deliveries WHERE status = 'pending'"); err == nil {
			n.metrics.pending.Set(float64(pending))
		}
		return nil
	})
}

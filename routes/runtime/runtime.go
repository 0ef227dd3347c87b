// Package runtime runs loaded routes: inbound adapters publish records to the route's topic on the
// durable transport (watermill-sql on the store's database); a watermill Router handler applies the route's
// rules and transforms and records the resulting deliveries, drops and dead letters in the same
// transaction that consumes the record; delivery workers make the outbound calls with retries and backoff,
// and park deliveries that keep failing as dead letters for replay.
package runtime

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/transport"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// Config configures a Runtime.
type Config struct {
	// DB is the store's database (for SQLite: the single writer connection) and Dialect "sqlite" or "postgres".
	DB      *sql.DB
	Dialect string
	Routes  []*routes.Route
	Logger  *slog.Logger
	// Registerer receives the per-route metrics; nil uses a private registry.
	Registerer prometheus.Registerer
	// Mount registers inbound HTTP handlers on the server's router. Nil: the runtime keeps them and mounts
	// them when the server calls Runtime.Mount(chi.Router).
	Mount func(pattern string, h http.Handler)
	// PollInterval is how often idle delivery workers and subscribers look for work; default 200ms.
	PollInterval time.Duration
	// Lease is how long a claimed delivery stays claimed before another worker may retry it; default 5m.
	Lease time.Duration
}

// Runtime runs routes until its context ends.
type Runtime struct {
	cfg       Config
	log       *slog.Logger
	transport *transport.Transport
	publisher message.Publisher
	metrics   *metrics
	routes    []*liveRoute
	handlers  []mounted
	// ownDB is a connection ForServe opened itself (closed by Close).
	ownDB *sql.DB
}

type mounted struct {
	pattern string
	h       http.Handler
}

// Mount registers the http inbound handlers on the server's router (it implements the server's Mounter).
func (rt *Runtime) Mount(r chi.Router) {
	for _, m := range rt.handlers {
		r.Handle(m.pattern, m.h)
	}
}

type liveRoute struct {
	*routes.Route
	topic   string
	outputs map[string]adapters.Outbound
	wake    chan struct{}
	// ack is the input when it wants record outcomes (the Koppeltaal mailbox).
	ack adapters.Acknowledger
	sub message.Subscriber
}

var topicUnsafe = regexp.MustCompile(`[^a-z0-9_]`)

// TopicFor is the transport topic of a route.
func TopicFor(route string) string {
	return "route_" + topicUnsafe.ReplaceAllString(strings.ToLower(route), "_")
}

// New creates the gateway tables and provisions every route's adapters (construct → decode → validate
// happened at load; here: provision). On error everything provisioned so far is closed.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.DB == nil {
		return nil, errors.New("runtime: no database")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 200 * time.Millisecond
	}
	if cfg.Lease <= 0 {
		cfg.Lease = 5 * time.Minute
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	if err := Migrate(ctx, cfg.DB, cfg.Dialect); err != nil {
		return nil, err
	}
	tr, err := transport.New(transport.Config{DB: cfg.DB, Dialect: cfg.Dialect, PollInterval: cfg.PollInterval, Logger: cfg.Logger})
	if err != nil {
		return nil, err
	}
	pub, err := tr.Publisher()
	if err != nil {
		return nil, fmt.Errorf("runtime: publisher: %w", err)
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	rt := &Runtime{cfg: cfg, log: cfg.Logger, transport: tr, publisher: pub, metrics: m}
	mount := cfg.Mount
	if mount == nil {
		mount = func(pattern string, h http.Handler) { rt.handlers = append(rt.handlers, mounted{pattern, h}) }
	}
	seenTopics := map[string]string{}
	for _, r := range cfg.Routes {
		lr := &liveRoute{Route: r, topic: TopicFor(r.Name), outputs: map[string]adapters.Outbound{}, wake: make(chan struct{}, 1)}
		if prev, dup := seenTopics[lr.topic]; dup {
			rt.Close()
			return nil, fmt.Errorf("runtime: routes %q and %q map to the same topic %s; rename one", prev, r.Name, lr.topic)
		}
		seenTopics[lr.topic] = r.Name
		rt.routes = append(rt.routes, lr)
		host := adapters.Host{Logger: cfg.Logger.With("route", r.Name), Dir: r.Dir, DB: cfg.DB, Dialect: cfg.Dialect,
			Route: r.Name, Mount: mount, Checkpoints: Checkpoints{DB: cfg.DB, Dialect: cfg.Dialect}}
		for _, c := range append([]routes.Component{r.Input}, r.Outputs...) {
			if p, ok := c.Adapter.(adapters.Provisioner); ok {
				if err := p.Provision(ctx, host); err != nil {
					rt.Close()
					return nil, fmt.Errorf("route %s: provision %s (%s): %w", r.Name, c.Name, c.Registration.ID, err)
				}
			}
		}
		for _, o := range r.Outputs {
			lr.outputs[o.Name] = o.Adapter.(adapters.Outbound)
		}
		lr.ack, _ = r.Input.Adapter.(adapters.Acknowledger)
		// The topic exists before anything can publish to it (a sink may be used before Run).
		sub, err := tr.Subscriber("route")
		if err != nil {
			rt.Close()
			return nil, fmt.Errorf("runtime: subscriber for %s: %w", r.Name, err)
		}
		lr.sub = sub
		if si, ok := sub.(message.SubscribeInitializer); ok {
			if err := si.SubscribeInitialize(lr.topic); err != nil {
				rt.Close()
				return nil, fmt.Errorf("runtime: initialise topic %s: %w", lr.topic, err)
			}
		}
	}
	return rt, nil
}

// Close closes every adapter (adapters tolerate Close after a failed or missing Provision).
func (rt *Runtime) Close() error {
	var errs []error
	for _, r := range rt.routes {
		if r.sub != nil {
			r.sub.Close()
		}
		for _, c := range append([]routes.Component{r.Input}, r.Outputs...) {
			if err := adapters.Close(c.Adapter); err != nil {
				errs = append(errs, fmt.Errorf("route %s: close %s: %w", r.Name, c.Name, err))
			}
		}
	}
	if rt.publisher != nil {
		rt.publisher.Close()
	}
	if rt.ownDB != nil {
		errs = append(errs, rt.ownDB.Close())
	}
	return errors.Join(errs...)
}

// Run runs the router, the inbound adapters and the delivery workers until ctx ends or one part fails.
func (rt *Runtime) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	router, err := message.NewRouter(message.RouterConfig{CloseTimeout: 10 * time.Second}, rt.transport.Logger())
	if err != nil {
		return fmt.Errorf("runtime: router: %w", err)
	}
	for _, r := range rt.routes {
		router.AddConsumerHandler(r.Name, r.topic, r.sub, rt.handler(r))
	}
	var wg sync.WaitGroup
	errc := make(chan error, 1+2*len(rt.routes))
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := router.Run(ctx); err != nil {
			errc <- fmt.Errorf("router: %w", err)
		}
	}()
	select {
	case <-router.Running():
	case <-ctx.Done():
	}
	for _, r := range rt.routes {
		if r.ack != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rt.outcomeWorker(ctx, r)
			}()
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			in := r.Input.Adapter.(adapters.Inbound)
			if err := in.Run(ctx, rt.Sink(r.Name)); err != nil && ctx.Err() == nil {
				errc <- fmt.Errorf("route %s: input: %w", r.Name, err)
			}
		}()
		go func() {
			defer wg.Done()
			rt.deliveryWorker(ctx, r)
		}()
	}
	var runErr error
	select {
	case <-ctx.Done():
	case runErr = <-errc:
		cancel()
	}
	router.Close()
	wg.Wait()
	return runErr
}

// recordMessage is the transport payload of one inbound record.
type recordMessage struct {
	Record   adapters.Record `json:"record"`
	Received time.Time       `json:"received"`
}

// Sink returns the sink an inbound adapter of route feeds: Accept publishes the records in one transaction
// and returns after the commit, so the source may forget them.
func (rt *Runtime) Sink(route string) adapters.Sink { return sink{rt: rt, route: route} }

type sink struct {
	rt    *Runtime
	route string
}

// publishChunk bounds one INSERT's placeholders (SQLite allows 32766).
const publishChunk = 500

func (s sink) Accept(ctx context.Context, recs []adapters.Record) error {
	if len(recs) == 0 {
		return nil
	}
	msgs := make([]*message.Message, 0, len(recs))
	now := time.Now().UTC()
	for _, r := range recs {
		b, err := json.Marshal(recordMessage{Record: r, Received: now})
		if err != nil {
			return fmt.Errorf("encode record %s: %w", r.Key, err)
		}
		msgs = append(msgs, message.NewMessage(uuid.NewString(), b))
	}
	tx, err := s.rt.cfg.DB.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("accept records: begin: %w", err)
	}
	pub, err := s.rt.transport.TxPublisher(wmsql.TxFromStdSQL(tx))
	if err != nil {
		tx.Rollback()
		return err
	}
	topic := TopicFor(s.route)
	for i := 0; i < len(msgs); i += publishChunk {
		if err := pub.Publish(topic, msgs[i:min(i+publishChunk, len(msgs))]...); err != nil {
			tx.Rollback()
			return fmt.Errorf("accept records: publish: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("accept records: commit: %w", err)
	}
	s.rt.metrics.in.WithLabelValues(s.route).Add(float64(len(recs)))
	return nil
}

// Check runs the route's rules and transforms on recs without storing anything (adapters.Checker).
func (s sink) Check(_ context.Context, recs []adapters.Record) []adapters.Verdict {
	var r *liveRoute
	for _, lr := range s.rt.routes {
		if lr.Name == s.route {
			r = lr
		}
	}
	out := make([]adapters.Verdict, len(recs))
	for i, rec := range recs {
		if r == nil {
			out[i] = adapters.Verdict{Key: rec.Key, Outcome: string(routes.Routed)}
			continue
		}
		res := r.Process(rec)
		out[i] = adapters.Verdict{Key: res.Key, Outcome: string(res.Outcome), Reason: res.Reason}
	}
	return out
}

// handler processes one record inside the transport's consuming transaction: deliveries and dead letters
// commit together with the consumer offset, so a crash either redoes the record or has fully recorded it.
func (rt *Runtime) handler(r *liveRoute) message.NoPublishHandlerFunc {
	insertDelivery := rebind(rt.cfg.Dialect, `INSERT INTO kp_gateway_deliveries
		(id, route, output, record_key, payload, record, status, attempts, next_attempt_at, last_error, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, '', ?, ?)
		ON CONFLICT (id) DO UPDATE SET status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
			last_error = '', updated_at = excluded.updated_at
		WHERE kp_gateway_deliveries.status = 'dead'`)
	return func(msg *message.Message) error {
		var rm recordMessage
		if err := json.Unmarshal(msg.Payload, &rm); err != nil {
			// A payload we cannot read will never get better: log it and let it pass.
			rt.log.Error("route message is not a record; skipped", "route", r.Name, "message", msg.UUID, "error", err)
			return nil
		}
		tx, ok := wmsql.TxFromContext(msg.Context())
		if !ok {
			return errors.New("runtime: no transaction in message context")
		}
		ctx := msg.Context()
		res := r.Process(rm.Record)
		log := rt.log.With("route", r.Name, "record", res.Key)
		recordJSON, _ := json.Marshal(rm.Record)
		now := time.Now()
		var deliveryIDs []string
		switch res.Outcome {
		case routes.Dropped:
			rt.metrics.dropped.WithLabelValues(r.Name).Inc()
			// Reasons are written by integrators and may quote record values: only at debug level.
			log.Info("record dropped")
			log.Debug("record dropped", "reason", res.Reason)
		case routes.DeadLettered:
			// The id is stable for the same record from the same source, so a re-read after a crash does not
			// park it twice (and a replay that fails again brings the same dead letter back).
			dlID := transforms.StableID(r.Name, "rules", res.Key, rm.Record.Meta["source_id"], string(recordJSON))
			if err := insertDeadLetter(ctx, wmExec(tx), rt.cfg.Dialect, dlID, r.Name, "rules", "", res.Key, string(recordJSON), res.Reason, 0); err != nil {
				return err
			}
			rt.metrics.deadLettered.WithLabelValues(r.Name, "rules").Inc()
			log.Warn("record dead-lettered; see koppelpoort replay for the reason", "dead_letter", dlID)
			log.Debug("record dead-lettered", "reason", res.Reason)
		case routes.Routed:
			for _, d := range res.Deliveries {
				payload, err := json.Marshal(d)
				if err != nil {
					return fmt.Errorf("encode delivery: %w", err)
				}
				if _, err := tx.ExecContext(ctx, insertDelivery, d.IdempotencyKey, r.Name, d.Output, res.Key, string(payload),
					string(recordJSON), micros(now), micros(now), micros(now)); err != nil {
					return fmt.Errorf("record delivery: %w", err)
				}
				deliveryIDs = append(deliveryIDs, d.IdempotencyKey)
			}
			log.Debug("record routed", "deliveries", len(res.Deliveries))
		}
		if r.ack != nil {
			// The source wants the outcome: park it durably with the record; the outcome worker reports it.
			state, ok := "ready", res.Outcome == routes.Dropped
			if res.Outcome == routes.Routed {
				state = "waiting"
			}
			ids, _ := json.Marshal(deliveryIDs)
			if _, err := tx.ExecContext(ctx, rebind(rt.cfg.Dialect, `INSERT INTO kp_gateway_outcomes (id, route, record, delivery_ids, state, ok, reason, created_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`), msg.UUID, r.Name, string(recordJSON), string(ids), state, boolInt(ok), res.Reason, micros(now)); err != nil {
				return fmt.Errorf("record outcome: %w", err)
			}
		}
		rt.metrics.latency.WithLabelValues(r.Name, "process").Observe(time.Since(rm.Received).Seconds())
		select {
		case r.wake <- struct{}{}:
		default:
		}
		return nil
	}
}

// execFn runs one statement; it hides the two transaction types (database/sql and the transport's).
type execFn func(ctx context.Context, query string, args ...any) error

func wmExec(tx wmsql.Tx) execFn {
	return func(ctx context.Context, q string, args ...any) error {
		_, err := tx.ExecContext(ctx, q, args...)
		return err
	}
}

func sqlExec(ex execer) execFn {
	return func(ctx context.Context, q string, args ...any) error {
		_, err := ex.ExecContext(ctx, q, args...)
		return err
	}
}

func insertDeadLetter(ctx context.Context, exec execFn, dialect, id, route, stage, output, key, record, reason string, attempts int) error {
	err := exec(ctx, rebind(dialect, `INSERT INTO kp_gateway_dead_letters
		(id, route, stage, output, record_key, record, reason, attempts, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET reason = excluded.reason, attempts = excluded.attempts, created_at = excluded.created_at, replayed_at = NULL`),
		id, route, stage, output, key, record, reason, attempts, micros(time.Now()))
	if err != nil {
		return fmt.Errorf("record dead letter: %w", err)
	}
	return nil
}

// Interface guards.
var _ adapters.Checker = sink{}

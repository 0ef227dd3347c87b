// Package runtime runs loaded routes: inbound adapters publish records to the route's topic on the
// durable transport (watermill-sql on the store's transactions); a watermill Router handler applies the
// route's rules and transforms in the same transaction that consumes the record, delivers to outputs that
// live in the store (a local Koppeltaal domain: adapters.TxOutbound) right there, and records deliveries
// for the other outputs, drops and dead letters; delivery workers make those outbound calls with retries
// and backoff, and park deliveries that keep failing as dead letters for replay. Every write goes through
// the store (store.Update), so a SQLite file has one writer.
package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/transport"
	"github.com/koppelpoort/koppelpoort/store"
)

// Config configures a Runtime.
type Config struct {
	// Store holds the routes' tables and topics; every write goes through it.
	Store  *store.Store
	Routes []*routes.Route
	// Koppeltaal is this process's Koppeltaal server, offered to adapters (nil: none).
	Koppeltaal *koppeltaal.Service
	Logger     *slog.Logger
	// Registerer receives the per-route metrics; nil uses a private registry.
	Registerer prometheus.Registerer
	// Mount registers inbound HTTP handlers on the server's router. Nil: the runtime keeps them and mounts
	// them when the server calls Runtime.Mount(chi.Router).
	Mount func(pattern string, h http.Handler)
	// RequestLog is the server's HTTP request log (httplog.Recorder.Middleware), offered to inputs that
	// listen on an address of their own, so their requests are logged like the server's; nil: none.
	RequestLog func(http.Handler) http.Handler
	// PollInterval is how often idle delivery workers and subscribers look for work; default 200ms.
	PollInterval time.Duration
	// Lease is how long a claimed delivery stays claimed before another worker may retry it; default 5m.
	Lease time.Duration
	// Drain is how long a stopping route (a reload, a shutdown) lets the outbound calls in flight finish
	// and records their results before it cuts them off; default 30s.
	Drain time.Duration
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
	// inTx are the outputs delivered inside the routing transaction (adapters.TxOutbound).
	inTx map[string]adapters.TxOutbound
	wake chan struct{}
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
	if cfg.Store == nil {
		return nil, errors.New("runtime: no store")
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
	if cfg.Drain <= 0 {
		cfg.Drain = 30 * time.Second
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	tr, err := transport.New(transport.Config{Store: cfg.Store, PollInterval: cfg.PollInterval, Logger: cfg.Logger})
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
		lr := &liveRoute{Route: r, topic: TopicFor(r.Name), outputs: map[string]adapters.Outbound{},
			inTx: map[string]adapters.TxOutbound{}, wake: make(chan struct{}, 1)}
		if prev, dup := seenTopics[lr.topic]; dup {
			rt.Close()
			return nil, fmt.Errorf("runtime: routes %q and %q map to the same topic %s; rename one", prev, r.Name, lr.topic)
		}
		seenTopics[lr.topic] = r.Name
		rt.routes = append(rt.routes, lr)
		m.zero(r)
		host := adapters.Host{Logger: cfg.Logger.With("route", r.Name), Dir: r.Dir, Store: cfg.Store, Koppeltaal: cfg.Koppeltaal,
			Route: r.Name, Mount: mount, Checkpoints: Checkpoints{Store: cfg.Store}, RequestLog: cfg.RequestLog}
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
			if txo, ok := o.Adapter.(adapters.TxOutbound); ok && txo.InTx() {
				lr.inTx[o.Name] = txo
			}
		}
		lr.ack, _ = r.Input.Adapter.(adapters.Acknowledger)
		// The topic exists before anything can publish to it (a sink may be used before Run).
		sub, err := tr.Subscriber("route")
		if err != nil {
			rt.Close()
			return nil, fmt.Errorf("runtime: subscriber for %s: %w", r.Name, err)
		}
		lr.sub = sub
		if err := tr.Initialize(ctx, lr.topic); err != nil {
			rt.Close()
			return nil, fmt.Errorf("runtime: initialise topic %s: %w", lr.topic, err)
		}
	}
	return rt, nil
}

// Routes returns the routes this Runtime runs.
func (rt *Runtime) Routes() []*routes.Route {
	out := make([]*routes.Route, len(rt.routes))
	for i, r := range rt.routes {
		out[i] = r.Route
	}
	return out
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
	return s.rt.cfg.Store.Update(ctx, func(tx *store.Tx) error { return s.AcceptTx(ctx, tx, recs) })
}

// AcceptTx publishes the records on tx (adapters.TxSink); they are the route's once tx commits.
func (s sink) AcceptTx(ctx context.Context, tx *store.Tx, recs []adapters.Record) error {
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
	pub, err := s.rt.transport.TxPublisher(tx)
	if err != nil {
		return err
	}
	topic := TopicFor(s.route)
	for i := 0; i < len(msgs); i += publishChunk {
		if err := pub.Publish(topic, msgs[i:min(i+publishChunk, len(msgs))]...); err != nil {
			return fmt.Errorf("accept records: publish: %w", err)
		}
	}
	// Counted before the commit: a rolled-back take is retried and counted again.
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

// Interface guards.
var (
	_ adapters.Checker = sink{}
	_ adapters.TxSink  = sink{}
)

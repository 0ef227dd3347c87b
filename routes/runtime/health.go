package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/store"
)

// Health tells the truth about the routes' outputs from the store (so every process on a shared database
// sees the same): what waits for each output, how old the oldest waiting delivery is, and since when the
// output has been failing. It is a readiness check (Check) and a Prometheus collector of
// koppelpoort_route_deliveries_waiting, koppelpoort_route_oldest_waiting_seconds and
// koppelpoort_route_output_failing_seconds{route,output}; every output of every running route has a series
// from the start, 0 when nothing waits.
type Health struct {
	st       *store.Store
	routes   func() []*routes.Route
	log      *slog.Logger
	cacheFor time.Duration
	now      func() time.Time

	waiting, oldest, failing *prometheus.Desc

	mu     sync.Mutex
	at     time.Time
	cached map[[2]string]store.OutputBacklog
}

// NewHealth returns the health of the routes that running returns (Set.Routes), read from st.
func NewHealth(st *store.Store, running func() []*routes.Route, log *slog.Logger) *Health {
	labels := []string{"route", "output"}
	return &Health{st: st, routes: running, log: log, cacheFor: time.Second, now: time.Now,
		waiting: prometheus.NewDesc("koppelpoort_route_deliveries_waiting",
			"Deliveries waiting for a route's output (pending or in flight): its backlog.", labels, nil),
		oldest: prometheus.NewDesc("koppelpoort_route_oldest_waiting_seconds",
			"Age of the oldest delivery waiting for a route's output; 0 when none waits.", labels, nil),
		failing: prometheus.NewDesc("koppelpoort_route_output_failing_seconds",
			"How long a route's output has been failing: since the first failed attempt of its oldest failing waiting delivery; 0 when it is not failing.", labels, nil)}
}

// Check fails when an output of a running route has been failing longer than the route's health:
// failing_after, naming each such route and output.
func (h *Health) Check(ctx context.Context) error {
	bs, err := h.backlogs(ctx)
	if err != nil {
		return err
	}
	now := h.now()
	var errs []error
	for _, r := range h.routes() {
		for _, o := range r.Outputs {
			b := bs[[2]string{r.Name, o.Name}]
			if b.FailingSince == 0 {
				continue
			}
			if d := now.Sub(time.UnixMicro(b.FailingSince)); d > r.FailingAfter {
				errs = append(errs, fmt.Errorf("route %s: output %s has been failing for %s (health.failing_after %s); %d deliveries waiting",
					r.Name, o.Name, d.Round(time.Second), r.FailingAfter, b.Waiting))
			}
		}
	}
	return errors.Join(errs...)
}

// Describe implements prometheus.Collector.
func (h *Health) Describe(ch chan<- *prometheus.Desc) {
	ch <- h.waiting
	ch <- h.oldest
	ch <- h.failing
}

// Collect implements prometheus.Collector.
func (h *Health) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	bs, err := h.backlogs(ctx)
	if err != nil {
		// A store that cannot be read is /readyz's to report; the scrape shows zeros meanwhile.
		h.log.Warn("route backlogs not read", "error", err)
	}
	now := h.now()
	age := func(us int64) float64 {
		if us == 0 {
			return 0
		}
		return max(0, now.Sub(time.UnixMicro(us)).Seconds())
	}
	for _, r := range h.routes() {
		for _, o := range r.Outputs {
			b := bs[[2]string{r.Name, o.Name}]
			ch <- prometheus.MustNewConstMetric(h.waiting, prometheus.GaugeValue, float64(b.Waiting), r.Name, o.Name)
			ch <- prometheus.MustNewConstMetric(h.oldest, prometheus.GaugeValue, age(b.Oldest), r.Name, o.Name)
			ch <- prometheus.MustNewConstMetric(h.failing, prometheus.GaugeValue, age(b.FailingSince), r.Name, o.Name)
		}
	}
}

// backlogs reads the store at most every cacheFor (a scrape and /readyz together cost one query).
func (h *Health) backlogs(ctx context.Context) (map[[2]string]store.OutputBacklog, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	if h.cached != nil && now.Sub(h.at) < h.cacheFor {
		return h.cached, nil
	}
	var rows []store.OutputBacklog
	if err := h.st.View(ctx, func(tx *store.Tx) error {
		var err error
		rows, err = tx.OutputBacklogs(ctx)
		return err
	}); err != nil {
		return h.cached, err
	}
	h.cached, h.at = make(map[[2]string]store.OutputBacklog, len(rows)), now
	for _, b := range rows {
		h.cached[[2]string{b.Route, b.Output}] = b
	}
	return h.cached, nil
}

// Interface guard.
var _ prometheus.Collector = (*Health)(nil)

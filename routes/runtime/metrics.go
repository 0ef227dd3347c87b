package runtime

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/routes"
)

// metrics are the per-route counters and latency.
type metrics struct {
	in           *prometheus.CounterVec
	out          *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	retries      *prometheus.CounterVec
	unchanged    *prometheus.CounterVec
	latency      *prometheus.HistogramVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		in:           prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppelpoort_route_records_in_total", Help: "Records accepted by the route's input (durable)."}, []string{"route"}),
		out:          prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppelpoort_route_deliveries_out_total", Help: "Deliveries made successfully by an output."}, []string{"route", "output"}),
		dropped:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppelpoort_route_records_dropped_total", Help: "Records dropped by a rule."}, []string{"route"}),
		deadLettered: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppelpoort_route_dead_letters_total", Help: "Records or deliveries parked as dead letters."}, []string{"route", "stage"}),
		retries:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppelpoort_route_delivery_retries_total", Help: "Delivery attempts that failed transiently and will be retried."}, []string{"route", "output"}),
		unchanged:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppelpoort_route_unchanged_total", Help: "Deliveries not made because the output was already sent the same content for the record key (skip_unchanged)."}, []string{"route", "output"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "koppelpoort_route_latency_seconds", Help: "Time from accepting a record to processing it (stage process) and duration of outbound calls (stage deliver).",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10)}, []string{"route", "stage"}),
	}
	var err error
	reg2 := func(c prometheus.Collector) prometheus.Collector {
		if e := reg.Register(c); e != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(e, &are) {
				// A second runtime on the same registry (tests, reload) shares the existing series.
				return are.ExistingCollector
			}
			err = fmt.Errorf("register route metrics: %w", e)
		}
		return c
	}
	m.in = reg2(m.in).(*prometheus.CounterVec)
	m.out = reg2(m.out).(*prometheus.CounterVec)
	m.dropped = reg2(m.dropped).(*prometheus.CounterVec)
	m.deadLettered = reg2(m.deadLettered).(*prometheus.CounterVec)
	m.retries = reg2(m.retries).(*prometheus.CounterVec)
	m.unchanged = reg2(m.unchanged).(*prometheus.CounterVec)
	m.latency = reg2(m.latency).(*prometheus.HistogramVec)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// deadLetterStages are the stage label values of koppelpoort_route_dead_letters_total.
var deadLetterStages = []string{routes.StageInput, routes.StageRules, routes.StageTransform, "output"}

// zero creates every labelled series of route r at 0 (at start and on reload), so a rate or an alert on
// them works before the first record, and a series that never moves is there to see.
func (m *metrics) zero(r *routes.Route) {
	m.in.WithLabelValues(r.Name)
	m.dropped.WithLabelValues(r.Name)
	for _, s := range deadLetterStages {
		m.deadLettered.WithLabelValues(r.Name, s)
	}
	for _, o := range r.Outputs {
		m.out.WithLabelValues(r.Name, o.Name)
		m.retries.WithLabelValues(r.Name, o.Name)
		m.unchanged.WithLabelValues(r.Name, o.Name)
	}
	for _, s := range []string{"process", "deliver"} {
		m.latency.WithLabelValues(r.Name, s)
	}
}

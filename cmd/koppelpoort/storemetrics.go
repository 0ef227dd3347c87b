package main

import (
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/prometheus/client_golang/prometheus"
)

// registerStoreMetrics exposes the SQLite writer's counters: with one writer
// for every change, its utilisation says how close the server is to its limit.
func registerStoreMetrics(reg prometheus.Registerer, st *store.Store) {
	if st.Dialect() == store.Postgres {
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "koppelpoort_store_round_trips_total",
			Help: "Round trips to PostgreSQL (a turn from sending to receiving on a connection); per request, the waits a request costs."},
			func() float64 { return float64(st.RoundTrips()) }))
		return
	}
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "koppelpoort_store_writer_batches_total",
			Help: "Transactions committed by the SQLite group-commit writer (each one fsync)."},
			func() float64 { return float64(st.WriterStats().Batches) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "koppelpoort_store_writer_requests_total",
			Help: "Write requests carried by those transactions (requests / batches = batching factor)."},
			func() float64 { return float64(st.WriterStats().Requests) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "koppelpoort_store_writer_busy_seconds_total",
			Help: "Time the SQLite writer spent running and committing batches; its rate is the writer's utilisation (1 = saturated)."},
			func() float64 { return st.WriterStats().Busy.Seconds() }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "koppelpoort_store_writer_commit_seconds_total",
			Help: "Part of the writer's busy time spent in COMMIT (writing the WAL and fsync)."},
			func() float64 { return st.WriterStats().Commit.Seconds() }),
	)
}

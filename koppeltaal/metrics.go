package koppeltaal

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the Prometheus metrics of the Koppeltaal core.
type Metrics struct {
	Posted    *prometheus.CounterVec // messages accepted, by event
	Rejected  *prometheus.CounterVec // requests refused, by operation and kind of refusal
	Claimed   prometheus.Counter
	Acked     *prometheus.CounterVec // acknowledgements, by status set
	Sweeps    *prometheus.CounterVec // sweeper changes, by result (requeued, max_retries)
	Delivered prometheus.Counter     // queue entries created
	// VersionWarnings counts resources accepted although their sender did not
	// follow 1.3.5 versioning (no version where the server has one, or a version
	// it never issued).
	VersionWarnings prometheus.Counter
	// PostLockRetries counts PostgreSQL POSTs run a second time because a
	// resource they carried unchanged (shared lock) changed before the lock.
	PostLockRetries prometheus.Counter
	// Automatic data removal (SPEC.md §10).
	RetentionRemoved *prometheus.CounterVec // message bodies removed, by reason (retrieved, age)
	RetentionBytes   prometheus.Counter     // bytes of removed bodies and storage items
	RetentionOldest  prometheus.Gauge       // age of the oldest body still kept, after the last run
	RetentionRuns    *prometheus.CounterVec // removal runs, by result (ok, error)
}

// NewMetrics creates the metrics and registers them with reg (nil: not registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Posted: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_messages_posted_total",
			Help: "Messages accepted on POST /Mailbox."}, []string{"event"}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_requests_rejected_total",
			Help: "Koppeltaal requests refused with an OperationOutcome, by operation and kind of refusal (invalid, conflict, ...)."}, []string{"op", "refusal"}),
		Claimed: prometheus.NewCounter(prometheus.CounterOpts{Name: "koppeltaal_messages_claimed_total",
			Help: "Messages handed out by GetNextNewAndClaim."}),
		Acked: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_messages_acknowledged_total",
			Help: "Processing-status updates by clients."}, []string{"status"}),
		Sweeps: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_sweeper_entries_total",
			Help: "Queue entries changed by the claim sweeper."}, []string{"result"}),
		Delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "koppeltaal_queue_entries_created_total",
			Help: "Queue entries created by routing (one per subscribed instance)."}),
		VersionWarnings: prometheus.NewCounter(prometheus.CounterOpts{Name: "koppeltaal_version_warnings_total",
			Help: "Resources accepted although the sender did not follow 1.3.5 versioning (logged per sender at most once a minute)."}),
		PostLockRetries: prometheus.NewCounter(prometheus.CounterOpts{Name: "koppeltaal_post_lock_retries_total",
			Help: "POSTs run again with exclusive locks because a resource they carried unchanged changed concurrently (PostgreSQL)."}),
		RetentionRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_retention_bodies_removed_total",
			Help: "Message bodies removed by automatic data removal: every recipient succeeded (retrieved) or past the maximum age (age)."}, []string{"reason"}),
		RetentionBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "koppeltaal_retention_bytes_freed_total",
			Help: "Bytes of message bodies and Storage Service items removed by automatic data removal."}),
		RetentionOldest: prometheus.NewGauge(prometheus.GaugeOpts{Name: "koppeltaal_retention_oldest_body_age_seconds",
			Help: "Age of the oldest message body still kept, measured by the last removal run (0: none)."}),
		RetentionRuns: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppeltaal_retention_runs_total",
			Help: "Runs of the removal job, by result."}, []string{"result"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Posted, m.Rejected, m.Claimed, m.Acked, m.Sweeps, m.Delivered, m.VersionWarnings, m.PostLockRetries,
			m.RetentionRemoved, m.RetentionBytes, m.RetentionOldest, m.RetentionRuns} {
			_ = reg.Register(c)
		}
	}
	return m
}

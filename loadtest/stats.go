package loadtest

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Operation names in the report.
const (
	OpPostPatient        = "POST Mailbox CreateOrUpdatePatient"
	OpPostCarePlanNew    = "POST Mailbox CreateOrUpdateCarePlan (new)"
	OpPostCarePlanUpdate = "POST Mailbox CreateOrUpdateCarePlan (update)"
	OpPostStale          = "POST Mailbox stale version (409 expected)"
	OpPostStatus         = "POST Mailbox UpdateCarePlanActivityStatus"
	OpPostAll            = "POST Mailbox (all)"
	OpClaim              = "GET GetNextNewAndClaim (message)"
	OpClaimEmpty         = "GET GetNextNewAndClaim (empty)"
	OpAck                = "PUT MessageHeader (ack)"
	OpAckReplaced        = "PUT MessageHeader (409: replaced by a newer version)"
	OpReadback           = "GET MessageHeader _search (verify)"
	OpPostBacklog        = "POST Mailbox backlog CreateOrUpdatePatient"
)

var opOrder = []string{OpPostBacklog, OpPostAll, OpPostPatient, OpPostCarePlanNew, OpPostCarePlanUpdate, OpPostStatus, OpPostStale, OpClaim, OpClaimEmpty, OpAck, OpAckReplaced, OpReadback}

type opStat struct {
	hist SyncHistogram
	ok   atomic.Int64
	errs atomic.Int64
}

type errStat struct {
	count  int64
	sample string
}

// stats collects per-operation histograms, error counts and the per-second timeline.
type stats struct {
	ops map[string]*opStat

	mu     sync.Mutex
	errors map[string]*errStat

	// Claim latency by estimated queue depth of the claiming instance.
	depthBands [len(depthBandNames)]SyncHistogram

	// Per-interval histograms for the timeline and the progress line.
	postIv, claimIv SyncHistogram
	posted          atomic.Int64 // accepted POSTs
	delivered       atomic.Int64 // claims that returned a message
	acked           atomic.Int64 // acknowledgements answered 2xx
	failed          atomic.Int64 // requests that failed (unexpectedly)
	conflicts       atomic.Int64 // intended 409s
}

func newStats() *stats {
	s := &stats{ops: make(map[string]*opStat), errors: make(map[string]*errStat)}
	for _, op := range opOrder {
		s.ops[op] = &opStat{}
	}
	return s
}

func (s *stats) ok(op string, d time.Duration) {
	o := s.ops[op]
	o.hist.Record(d)
	o.ok.Add(1)
}

// fail counts an unexpected failure of op; kind classifies it.
func (s *stats) fail(op, kind string, d time.Duration, detail string) {
	o := s.ops[op]
	o.hist.Record(d)
	o.errs.Add(1)
	s.failed.Add(1)
	s.addError(op+": "+kind, detail)
}

// addError counts a problem that is not tied to one request's latency.
func (s *stats) addError(kind, detail string) {
	s.mu.Lock()
	e := s.errors[kind]
	if e == nil {
		e = &errStat{sample: detail}
		s.errors[kind] = e
	}
	e.count++
	s.mu.Unlock()
}

// OpStats is the report line of one operation.
type OpStats struct {
	Name   string  `json:"name"`
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	Rate   float64 `json:"rate_per_s"`
	P50    float64 `json:"p50_ms"`
	P90    float64 `json:"p90_ms"`
	P99    float64 `json:"p99_ms"`
	P999   float64 `json:"p999_ms"`
	Max    float64 `json:"max_ms"`
	Mean   float64 `json:"mean_ms"`
}

// ErrorCount is one kind of error with an example.
type ErrorCount struct {
	Kind   string `json:"kind"`
	Count  int64  `json:"count"`
	Sample string `json:"sample,omitempty"`
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func (s *stats) opStats(seconds float64) []OpStats {
	var out []OpStats
	for _, name := range opOrder {
		o := s.ops[name]
		h := o.hist.Snapshot()
		if h.Count() == 0 {
			continue
		}
		st := OpStats{Name: name, Count: int64(h.Count()), Errors: o.errs.Load(),
			P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)),
			Max: ms(h.Max()), Mean: ms(h.Mean())}
		if seconds > 0 {
			st.Rate = float64(st.Count) / seconds
		}
		out = append(out, st)
	}
	return out
}

func (s *stats) errorCounts() []ErrorCount {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ErrorCount, 0, len(s.errors))
	for k, e := range s.errors {
		out = append(out, ErrorCount{Kind: k, Count: e.count, Sample: e.sample})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Count != out[j].Count {
			return out[i].Count > out[j].Count
		}
		return out[i].Kind < out[j].Kind
	})
	return out
}

// TimePoint is one second of the run.
type TimePoint struct {
	T          float64 `json:"t_s"`
	Phase      string  `json:"phase"`
	Posted     float64 `json:"posted_per_s"`
	Delivered  float64 `json:"delivered_per_s"`
	Acked      float64 `json:"acked_per_s"`
	Errors     float64 `json:"errors_per_s"`
	PostP50    float64 `json:"post_p50_ms"`
	PostP99    float64 `json:"post_p99_ms"`
	ClaimP99   float64 `json:"claim_p99_ms"`
	ServerRSSM float64 `json:"server_rss_mib,omitempty"`
}

// depthBandNames label claim latency by the queue depth at the claim.
var depthBandNames = [...]string{"depth < 100", "depth 100-999", "depth 1k-9.9k", "depth 10k-99k", "depth 100k-999k", "depth ≥ 1M"}

func (s *stats) claimAtDepth(depth int64, d time.Duration) {
	i := 0
	for lim := int64(100); depth >= lim && i < len(depthBandNames)-1; lim *= 10 {
		i++
	}
	s.depthBands[i].Record(d)
}

func (s *stats) depthStats() []OpStats {
	var out []OpStats
	for i := range s.depthBands {
		h := s.depthBands[i].Snapshot()
		if h.Count() == 0 {
			continue
		}
		out = append(out, OpStats{Name: "claim at " + depthBandNames[i], Count: int64(h.Count()),
			P50: ms(h.Quantile(0.5)), P90: ms(h.Quantile(0.9)), P99: ms(h.Quantile(0.99)), P999: ms(h.Quantile(0.999)),
			Max: ms(h.Max()), Mean: ms(h.Mean())})
	}
	return out
}

package loadtest

import (
	"math"
	"math/bits"
	"sync"
	"time"
)

// Histogram is a log-linear (HDR-style) latency histogram with fixed memory:
// values are kept in microseconds in buckets whose width is at most 1/64 of
// their lower bound, so any reported percentile is within ~1.6% of the true
// value. It never grows with the number of samples. The zero value is ready.
// A Histogram is not safe for concurrent use; see SyncHistogram.
type Histogram struct {
	counts [histBuckets]uint64
	n      uint64
	sum    uint64 // microseconds
	min    uint64
	max    uint64
}

const (
	histSubBits = 6
	histSub     = 1 << histSubBits // sub-buckets per power of two
	// histMaxExp covers values up to 2^(histMaxExp+histSubBits) µs (~ 3 days).
	histMaxExp  = 32
	histBuckets = (histMaxExp + 2) * histSub
)

// bucketOf maps a value in µs to its bucket index.
func bucketOf(v uint64) int {
	if v < histSub {
		return int(v)
	}
	exp := bits.Len64(v) - histSubBits - 1 // v>>exp is in [histSub, 2*histSub)
	if exp > histMaxExp {
		return histBuckets - 1
	}
	return (exp+1)*histSub + int(v>>uint(exp)) - histSub
}

// bucketUpper is the largest value (µs) that falls into bucket i.
func bucketUpper(i int) uint64 {
	if i < histSub {
		return uint64(i)
	}
	exp := i/histSub - 1
	mant := uint64(i%histSub + histSub)
	return (mant+1)<<uint(exp) - 1
}

// Record adds one sample. Negative durations count as zero.
func (h *Histogram) Record(d time.Duration) {
	us := uint64(0)
	if d > 0 {
		us = uint64((d + time.Microsecond - 1) / time.Microsecond)
	}
	h.RecordMicros(us)
}

// RecordMicros adds one sample given in microseconds.
func (h *Histogram) RecordMicros(us uint64) {
	h.counts[bucketOf(us)]++
	if h.n == 0 || us < h.min {
		h.min = us
	}
	if us > h.max {
		h.max = us
	}
	h.n++
	h.sum += us
}

// Merge adds all samples of o to h.
func (h *Histogram) Merge(o *Histogram) {
	if o.n == 0 {
		return
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	if h.n == 0 || o.min < h.min {
		h.min = o.min
	}
	if o.max > h.max {
		h.max = o.max
	}
	h.n += o.n
	h.sum += o.sum
}

// Reset forgets all samples.
func (h *Histogram) Reset() { *h = Histogram{} }

// Count is the number of samples.
func (h *Histogram) Count() uint64 { return h.n }

// Max is the largest sample (exact).
func (h *Histogram) Max() time.Duration { return time.Duration(h.max) * time.Microsecond }

// Min is the smallest sample (exact).
func (h *Histogram) Min() time.Duration { return time.Duration(h.min) * time.Microsecond }

// Mean is the average sample.
func (h *Histogram) Mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum/h.n) * time.Microsecond
}

// Quantile returns the value below which a fraction q (0..1) of the samples
// fall, as the upper bound of the bucket holding that rank (clamped to the
// exact max). It returns 0 for an empty histogram.
func (h *Histogram) Quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	if q <= 0 {
		return h.Min()
	}
	if q >= 1 {
		return h.Max()
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			v := bucketUpper(i)
			if v > h.max {
				v = h.max
			}
			if v < h.min {
				v = h.min
			}
			return time.Duration(v) * time.Microsecond
		}
	}
	return h.Max()
}

// SyncHistogram is a Histogram guarded by a mutex, for recording from many goroutines.
type SyncHistogram struct {
	mu sync.Mutex
	h  Histogram
}

// Record adds one sample.
func (s *SyncHistogram) Record(d time.Duration) {
	s.mu.Lock()
	s.h.Record(d)
	s.mu.Unlock()
}

// Snapshot returns a copy of the current state.
func (s *SyncHistogram) Snapshot() *Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.h
	return &c
}

// SnapshotAndReset returns a copy of the current state and clears it, for
// per-interval statistics.
func (s *SyncHistogram) SnapshotAndReset() *Histogram {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.h
	s.h.Reset()
	return &c
}

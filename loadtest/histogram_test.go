package loadtest

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketRoundTrip(t *testing.T) {
	// Every value must land in a bucket whose upper bound is >= the value and
	// within 1/64 of it: that is the accuracy the report promises.
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 129, 1000, 4095, 4096, 123456, 1 << 30, 1<<38 - 1} {
		i := bucketOf(v)
		up := bucketUpper(i)
		if up < v {
			t.Fatalf("value %d: bucket %d upper %d is below the value", v, i, up)
		}
		if v >= histSub && float64(up-v) > float64(v)/histSub {
			t.Fatalf("value %d: bucket %d upper %d is off by more than 1/%d", v, i, up, histSub)
		}
		if i > 0 && bucketUpper(i-1) >= v {
			t.Fatalf("value %d: previous bucket %d already covers it (upper %d)", v, i-1, bucketUpper(i-1))
		}
	}
	if got := bucketOf(1 << 62); got != histBuckets-1 {
		t.Fatalf("huge value: bucket %d, want the last (%d)", got, histBuckets-1)
	}
}

func TestHistogramQuantiles(t *testing.T) {
	tests := []struct {
		name    string
		samples []time.Duration
		q       float64
		want    time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"single", []time.Duration{5 * time.Millisecond}, 0.99, 5 * time.Millisecond},
		{"min", []time.Duration{3 * time.Millisecond, 9 * time.Millisecond}, 0, 3 * time.Millisecond},
		{"max", []time.Duration{3 * time.Millisecond, 9 * time.Millisecond}, 1, 9 * time.Millisecond},
		{"small exact", []time.Duration{1 * time.Microsecond, 2 * time.Microsecond, 3 * time.Microsecond, 4 * time.Microsecond}, 0.5, 2 * time.Microsecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var h Histogram
			for _, s := range tt.samples {
				h.Record(s)
			}
			if got := h.Quantile(tt.q); got != tt.want {
				t.Fatalf("Quantile(%v) = %v, want %v", tt.q, got, tt.want)
			}
		})
	}
}

// TestHistogramAgainstSort compares percentiles with the exact ones of a
// sorted sample of a long-tailed distribution.
func TestHistogramAgainstSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	var h Histogram
	var all []uint64
	for range 100000 {
		v := uint64(r.ExpFloat64()*2000) + 100 // µs, long tail
		if r.IntN(1000) == 0 {
			v *= 200
		}
		all = append(all, v)
		h.RecordMicros(v)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		exact := all[int(q*float64(len(all)))-1]
		got := uint64(h.Quantile(q) / time.Microsecond)
		if got < exact || float64(got-exact) > float64(exact)/histSub+1 {
			t.Errorf("p%v: got %dµs, exact %dµs (allowed +1/%d)", q*100, got, exact, histSub)
		}
	}
	if h.Max() != time.Duration(all[len(all)-1])*time.Microsecond {
		t.Errorf("max %v, want %dµs", h.Max(), all[len(all)-1])
	}
	if h.Count() != uint64(len(all)) {
		t.Errorf("count %d, want %d", h.Count(), len(all))
	}
}

func TestHistogramMerge(t *testing.T) {
	var a, b, both Histogram
	for i := range 1000 {
		d := time.Duration(i) * 37 * time.Microsecond
		if i%2 == 0 {
			a.Record(d)
		} else {
			b.Record(d)
		}
		both.Record(d)
	}
	a.Merge(&b)
	if a != both {
		t.Fatal("merged histogram differs from recording everything into one")
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h SyncHistogram
	b.RunParallel(func(pb *testing.PB) {
		d := time.Duration(0)
		for pb.Next() {
			d += 13 * time.Microsecond
			h.Record(d % time.Second)
		}
	})
}

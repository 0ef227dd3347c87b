package loadtest

import (
	"testing"
	"time"
)

func TestClaimAtDepthBands(t *testing.T) {
	tests := []struct {
		depth int64
		band  string
	}{
		{0, "depth < 100"}, {99, "depth < 100"}, {100, "depth 100-999"}, {999, "depth 100-999"},
		{1000, "depth 1k-9.9k"}, {12345, "depth 10k-99k"}, {999_999, "depth 100k-999k"}, {1_000_000, "depth ≥ 1M"}, {50_000_000, "depth ≥ 1M"},
	}
	for _, tt := range tests {
		s := newStats()
		s.claimAtDepth(tt.depth, time.Millisecond)
		got := s.depthStats()
		if len(got) != 1 || got[0].Name != "claim at "+tt.band {
			t.Errorf("depth %d: %+v, want band %q", tt.depth, got, tt.band)
		}
	}
}

package main

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
)

func TestServeTunesTheGCUnlessTheEnvironmentDoes(t *testing.T) {
	percent, limit := debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64)
	t.Cleanup(func() { debug.SetGCPercent(percent); debug.SetMemoryLimit(limit) })
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i+1 < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cfg := &config.Config{Koppeltaal: &koppeltaal.Config{MaxBodyBytesInFlight: 100 << 20}}
	reset := func() (int, int64) { return debug.SetGCPercent(100), debug.SetMemoryLimit(math.MaxInt64) }

	got := tuneGC(env(), cfg)
	if p, l := reset(); p != gcPercent || l != gcLimitBase+3*(100<<20) || !strings.Contains(got, "GOGC=200 GOMEMLIMIT=556MiB") {
		t.Errorf("no GOGC, no GOMEMLIMIT: percent %d, limit %d, reported %q", p, l, got)
	}
	got = tuneGC(env("GOGC", "150"), cfg)
	if p, l := reset(); p != 100 || l != math.MaxInt64 || !strings.Contains(got, "GOGC=150 GOMEMLIMIT=none") {
		t.Errorf("GOGC=150: the runtime's own setting must stay (percent %d, limit %d), reported %q", p, l, got)
	}
	got = tuneGC(env("GOMEMLIMIT", "1GiB"), cfg)
	if p, l := reset(); p != gcPercent || l != math.MaxInt64 || !strings.Contains(got, "GOGC=200 GOMEMLIMIT=1GiB") {
		t.Errorf("GOMEMLIMIT=1GiB: percent %d, limit %d (the runtime applies the environment's), reported %q", p, l, got)
	}
	got = tuneGC(env(), &config.Config{Koppeltaal: &koppeltaal.Config{}})
	if _, l := reset(); l != gcLimitBase+3*koppeltaal.DefaultBodiesInFlight*koppeltaal.DefaultMaxBodyBytes {
		t.Errorf("default body budget: limit %d, reported %q", l, got)
	}
}

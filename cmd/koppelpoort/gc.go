package main

import (
	"fmt"
	"runtime/debug"

	"github.com/koppelpoort/koppelpoort/internal/config"
)

// gcPercent is the garbage collector's target (GOGC) serve runs with when the
// environment does not set GOGC. Go's default, 100, starts a collection each
// time the heap has grown by its live size; a Koppelpoort server's live heap
// is small (the message caches, 40 MiB, and what requests in flight hold) next
// to what every request allocates and drops (parsing and encoding a 15 KB
// message), so at 100 the collector ran often and took ~14 % of the server's
// CPU under load. At 200 it runs half as often: +8 % posted msg/s on SQLite
// for +55 MiB of RSS peak (docs/operations.md, "Memory and the garbage
// collector").
const gcPercent = 200

// The soft memory limit that comes with gcPercent when GOMEMLIMIT is not set:
// a burst of large bodies (issue 16 item 3: the body budget lets
// max_body_bytes_in_flight of them be parsed at once, each holding a few times
// its size) must not let the heap double as GOGC=200 would; near the limit the
// collector works as at GOGC=100 or harder. Ordinary load stays far below it.
const (
	gcLimitBase            = 256 << 20
	gcLimitPerBodyInFlight = 3
)

// tuneGC applies gcPercent and the soft limit for cfg unless the environment
// sets GOGC or GOMEMLIMIT (the operator's choice wins), and describes the
// settings in effect for the start log line.
func tuneGC(getenv func(string) string, cfg *config.Config) string {
	gogc := getenv("GOGC")
	if gogc == "" {
		debug.SetGCPercent(gcPercent)
		gogc = fmt.Sprint(gcPercent)
	}
	limit := getenv("GOMEMLIMIT")
	if limit == "" && getenv("GOGC") == "" {
		var inFlight int64
		if k := cfg.Koppeltaal; k != nil {
			kc := *k
			kc.SetDefaults()
			inFlight = kc.MaxBodyBytesInFlight
		}
		soft := int64(gcLimitBase) + gcLimitPerBodyInFlight*inFlight
		debug.SetMemoryLimit(soft)
		limit = fmt.Sprintf("%dMiB", soft>>20)
	}
	if limit == "" {
		limit = "none"
	}
	return fmt.Sprintf("GOGC=%s GOMEMLIMIT=%s (set either in the environment to choose)", gogc, limit)
}

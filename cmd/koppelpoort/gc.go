package main

import (
	"runtime/debug"
)

// gcPercent is the garbage collector's target (GOGC) serve runs with when the
// environment does not set GOGC. Go's default, 100, starts a collection each
// time the heap has grown by its live size; a Koppelpoort server's live heap
// is small (caches of rendered messages, ~100 MB) next to what every request
// allocates and drops (parsing and encoding a 15 KB message), so at 100 the
// collector ran often and took ~14 % of the server's CPU under load. At 200 it
// runs half as often: +8 % posted msg/s on SQLite for +50 MiB of peak RSS
// (docs/operations.md, "Memory and the garbage collector"). GOGC, and
// GOMEMLIMIT for a hard ceiling, still decide when an operator sets them.
const gcPercent = 200

// tuneGC sets gcPercent unless GOGC is set, and reports the setting in effect.
func tuneGC(getenv func(string) string) (setting string) {
	if v := getenv("GOGC"); v != "" {
		return "GOGC=" + v + " (from the environment)"
	}
	debug.SetGCPercent(gcPercent)
	return "GOGC=200 (Koppelpoort's default; set GOGC to change it)"
}

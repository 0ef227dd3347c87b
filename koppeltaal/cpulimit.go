package koppeltaal

import (
	"context"
	"runtime"
)

// cpuSlots bounds how many requests parse and encode messages at the same
// time to the number of CPUs. Beyond that, requests wait parked rather than
// runnable: the Go scheduler has no priorities, and on SQLite every write
// goes through one writer goroutine that, back from each fsync, queues for a
// CPU behind every runnable goroutine. Under overload, dozens of requests
// parsing at once made that wait the server's bottleneck (scheduler latency
// p90 over 100 ms in load tests); parked requests cost nothing.
type cpuSlots chan struct{}

func newCPUSlots() cpuSlots { return make(cpuSlots, runtime.GOMAXPROCS(0)) }

// acquire takes a slot, or fails when ctx ends first. The returned release
// may be called more than once (only the first call frees the slot), so it can
// be both deferred and called early.
func (c cpuSlots) acquire(ctx context.Context) (release func(), err error) {
	select {
	case c <- struct{}{}:
	case <-ctx.Done():
		return func() {}, ctx.Err()
	}
	done := false
	return func() {
		if !done {
			done = true
			<-c
		}
	}, nil
}

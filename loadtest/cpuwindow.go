package loadtest

import (
	"os"
	"runtime"
	"strconv"
	"strings"
)

// CPUUse is where the machine's CPU time went while the load and the drain
// ran: the window the throughput counts, without the warm-up and the
// read-back. Rest is everything else that ran on the machine (on PostgreSQL
// mostly its backends; other users' work too), so the cost of a store shows
// next to the server's even when it runs in other processes. Zero where /proc
// is missing.
type CPUUse struct {
	Seconds       float64 `json:"seconds"`        // wall-clock length of the window
	CPUs          int     `json:"cpus"`           // the capacity is Seconds × CPUs
	ServerSeconds float64 `json:"server_seconds"` // all server processes
	ToolSeconds   float64 `json:"tool_seconds"`   // this load tool
	RestSeconds   float64 `json:"rest_seconds"`   // busy, but neither the server nor the tool
	IdleSeconds   float64 `json:"idle_seconds"`   // idle and waiting for I/O
	// Per accepted message (the load phase's Posted), in milliseconds.
	ServerMsPerMessage float64 `json:"server_ms_per_message"`
	ToolMsPerMessage   float64 `json:"tool_ms_per_message"`
	RestMsPerMessage   float64 `json:"rest_ms_per_message"`
}

// cpuMark is a reading of the CPU counters at one moment.
type cpuMark struct {
	server, tool, busy, idle float64 // seconds
	ok                       bool
}

func markCPU(serverPIDs []int) cpuMark {
	m := cpuMark{tool: selfStats().CPUSeconds}
	for _, pid := range serverPIDs {
		if ps, err := readProc(pid); err == nil {
			m.server += ps.CPUSeconds
		}
	}
	m.busy, m.idle, m.ok = machineCPU()
	return m
}

// machineCPU reads the machine's busy and idle time from the first line of /proc/stat.
func machineCPU() (busy, idle float64, ok bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, false
	}
	line, _, _ := strings.Cut(string(b), "\n")
	fs := strings.Fields(line)
	if len(fs) < 8 || fs[0] != "cpu" {
		return 0, 0, false
	}
	// user nice system idle iowait irq softirq steal (guest time is inside user).
	for i, f := range fs[1:min(len(fs), 9)] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return 0, 0, false
		}
		if i == 3 || i == 4 {
			idle += v
		} else {
			busy += v
		}
	}
	return busy / clockTicks, idle / clockTicks, true
}

// cpuUse is what happened between two marks, seconds apart, for posted messages.
func cpuUse(from, to cpuMark, seconds float64, posted int64) *CPUUse {
	if !from.ok || !to.ok || seconds <= 0 {
		return nil
	}
	u := &CPUUse{Seconds: seconds, CPUs: runtime.NumCPU(), ServerSeconds: to.server - from.server,
		ToolSeconds: to.tool - from.tool, IdleSeconds: to.idle - from.idle}
	u.RestSeconds = max(0, (to.busy-from.busy)-u.ServerSeconds-u.ToolSeconds)
	if posted > 0 {
		n := float64(posted)
		u.ServerMsPerMessage, u.ToolMsPerMessage, u.RestMsPerMessage = 1000*u.ServerSeconds/n, 1000*u.ToolSeconds/n, 1000*u.RestSeconds/n
	}
	return u
}

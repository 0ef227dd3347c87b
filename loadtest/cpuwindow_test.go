package loadtest

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"time"
)

// The CPU window counts this process's work as the tool's, a child's as the
// server's, and reports it per message.
func TestCPUUseCountsTheWindowOnly(t *testing.T) {
	if _, err := os.Stat("/proc/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	spin := func(d time.Duration) {
		for end := time.Now().Add(d); time.Now().Before(end); {
		}
	}
	spin(300 * time.Millisecond) // before the window: must not count
	from := markCPU([]int{os.Getpid()})
	start := time.Now()
	spin(400 * time.Millisecond)
	u := cpuUse(from, markCPU([]int{os.Getpid()}), time.Since(start).Seconds(), 100)
	if u == nil {
		t.Fatal("no CPU use reported with /proc present")
	}
	// The "server" here is this process too: both count the spin, and nothing before it.
	for name, s := range map[string]float64{"tool": u.ToolSeconds, "server": u.ServerSeconds} {
		if s < 0.3 || s > 0.6 {
			t.Errorf("%s CPU %.2fs for a 0.4 s spin inside the window (0.3 s before it)", name, s)
		}
	}
	if got, want := u.ToolMsPerMessage, 1000*u.ToolSeconds/100; got != want {
		t.Errorf("tool ms per message %.2f, want %.2f", got, want)
	}
	if u.Seconds*float64(u.CPUs)+0.05 < u.ToolSeconds+u.IdleSeconds { // the counters tick in 10 ms
		t.Errorf("more CPU than the machine had: %+v", u)
	}
}

// The comparison shows each leg's CPU per message, not a process's lifetime total.
func TestComparisonShowsCPUPerMessage(t *testing.T) {
	legs := []Leg{
		{Name: "sqlite", Report: &Report{Store: "sqlite", PostedPerSecond: 800, Pass: true,
			CPU: &CPUUse{Seconds: 10, CPUs: 2, IdleSeconds: 5, ServerMsPerMessage: 1.5, RestMsPerMessage: 0.25}}},
		{Name: "postgres", Report: &Report{Store: "postgres", PostedPerSecond: 400, Pass: true}},
	}
	var b bytes.Buffer
	WriteComparison(&b, legs)
	out := b.String()
	for _, want := range []string{"CPU ms/msg: server", "1.50", "0.25", "25", "0.50"} {
		if !strings.Contains(out, want) {
			t.Errorf("comparison lacks %q:\n%s", want, out)
		}
	}
}

package loadtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// clockTicks is USER_HZ, 100 on every Linux architecture Go supports.
const clockTicks = 100

// ProcStats is what /proc says about a process.
type ProcStats struct {
	PID        int     `json:"pid"`
	RSSMiB     float64 `json:"rss_mib"`     // resident now
	MaxRSSMiB  float64 `json:"max_rss_mib"` // peak seen while sampling
	HWMMiB     float64 `json:"hwm_rss_mib"` // kernel's high-water mark
	CPUSeconds float64 `json:"cpu_seconds"` // user + system
	Samples    int     `json:"samples"`
}

// readProc reads VmRSS/VmHWM from /proc/<pid>/status and CPU time from /proc/<pid>/stat.
func readProc(pid int) (ProcStats, error) {
	ps := ProcStats{PID: pid}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			continue
		}
		kb, _ := strconv.ParseFloat(fs[0], 64)
		switch k {
		case "VmRSS":
			ps.RSSMiB = kb / 1024
		case "VmHWM":
			ps.HWMMiB = kb / 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// Fields after the ")" that closes the command name; utime and stime are fields 14 and 15.
	s := string(stat)
	if i := strings.LastIndexByte(s, ')'); i >= 0 {
		fs := strings.Fields(s[i+1:])
		if len(fs) > 12 {
			ut, _ := strconv.ParseFloat(fs[11], 64)
			st, _ := strconv.ParseFloat(fs[12], 64)
			ps.CPUSeconds = (ut + st) / clockTicks
		}
	}
	return ps, nil
}

// serverSampler keeps the peak resident size of the server process.
type serverSampler struct {
	pid  int
	mu   sync.Mutex
	last ProcStats
	max  float64
	n    int
	err  error
}

func (s *serverSampler) sample() float64 {
	if s == nil || s.pid <= 0 {
		return 0
	}
	ps, err := readProc(s.pid)
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		s.err = err
		return 0
	}
	s.last = ps
	s.n++
	if ps.RSSMiB > s.max {
		s.max = ps.RSSMiB
	}
	return ps.RSSMiB
}

func (s *serverSampler) stats() *ProcStats {
	if s == nil || s.pid <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == 0 {
		return nil
	}
	out := s.last
	out.MaxRSSMiB = s.max
	out.Samples = s.n
	return &out
}

// selfStats is the load tool's own CPU time and peak memory.
func selfStats() ProcStats {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	cpu := float64(ru.Utime.Sec+ru.Stime.Sec) + float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
	ps, _ := readProc(os.Getpid())
	ps.CPUSeconds = cpu
	ps.MaxRSSMiB = float64(ru.Maxrss) / 1024
	return ps
}

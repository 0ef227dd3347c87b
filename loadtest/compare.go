package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
)

// Leg is one run of `koppelpoort load --compare`: the same scenario on one
// store, with one or more server processes.
type Leg struct {
	Name      string  `json:"name"` // as written: sqlite, postgres, postgres*2
	DSN       string  `json:"-"`    // "" for SQLite; the admin DSN of a PostgreSQL leg
	Processes int     `json:"processes"`
	Report    *Report `json:"report"`
}

// ParseCompare reads the --compare list: "sqlite", "postgres" or
// "postgres*N" (N processes on one database), separated by commas; PostgreSQL
// legs run on a fresh database of pgDSN.
func ParseCompare(list, pgDSN string) ([]Leg, error) {
	var legs []Leg
	for _, name := range strings.Split(list, ",") {
		name = strings.TrimSpace(name)
		store, n, hasN := strings.Cut(name, "*")
		leg := Leg{Name: name, Processes: 1}
		if hasN {
			p, err := strconv.Atoi(n)
			if err != nil || p < 1 || p > 16 {
				return nil, fmt.Errorf("--compare %q: want a number of processes 1-16 after '*'", name)
			}
			leg.Processes = p
		}
		switch store {
		case "sqlite":
			if leg.Processes > 1 {
				return nil, fmt.Errorf("--compare %q: several processes need PostgreSQL", name)
			}
		case "postgres":
			if pgDSN == "" {
				return nil, fmt.Errorf("--compare %q: needs --dsn postgres://... (a server to create the database on)", name)
			}
			leg.DSN = pgDSN
		default:
			return nil, fmt.Errorf("--compare %q: want sqlite, postgres or postgres*N", name)
		}
		legs = append(legs, leg)
	}
	return legs, nil
}

func opOf(r *Report, name string) OpStats {
	for _, o := range r.Ops {
		if o.Name == name {
			return o
		}
	}
	return OpStats{Name: name}
}

// WriteComparison prints the legs side by side; ratios are against the first leg.
func WriteComparison(w io.Writer, legs []Leg) {
	if len(legs) == 0 {
		return
	}
	fmt.Fprintf(w, "\ncomparison: the same scenario, one run per store, one after the other on this machine (load average %s); ratios against %s\n",
		loadAverages(legs), legs[0].Name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "leg\tstore\tposted msg/s\t× "+legs[0].Name+"\tdeliveries/s\tPOST p50 ms\tPOST p99 ms\tclaim p99 ms\tack p99 ms\tCPU ms/msg: server\trest\tidle %\tconsistency\t")
	base := legs[0].Report.PostedPerSecond
	for _, l := range legs {
		r := l.Report
		ratio := "-"
		if base > 0 {
			ratio = fmt.Sprintf("%.2f", r.PostedPerSecond/base)
		}
		post, claim, ack := opOf(r, OpPostAll), opOf(r, OpClaim), opOf(r, OpAck)
		result := "PASS"
		if !r.Pass {
			result = "FAIL"
		}
		server, rest, idle := "-", "-", "-"
		if u := r.CPU; u != nil {
			server, rest = fmt.Sprintf("%.2f", u.ServerMsPerMessage), fmt.Sprintf("%.2f", u.RestMsPerMessage)
			idle = fmt.Sprintf("%.0f", 100*u.IdleSeconds/(u.Seconds*float64(u.CPUs)))
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%s\t%.0f\t%.1f\t%.1f\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t\n", l.Name, r.Store, r.PostedPerSecond, ratio,
			r.DeliveredPerSecond, post.P50, post.P99, claim.P99, ack.P99, server, rest, idle, result)
	}
	tw.Flush()
}

func loadAverages(legs []Leg) string {
	var parts []string
	for _, l := range legs {
		parts = append(parts, fmt.Sprintf("%.1f→%.1f", l.Report.Machine.LoadStart, l.Report.Machine.LoadEnd))
	}
	return strings.Join(parts, ", ")
}

// WriteComparisonJSON writes the legs with their whole reports.
func WriteComparisonJSON(path string, legs []Leg) error {
	b, err := json.MarshalIndent(struct {
		Legs []Leg `json:"legs"`
	}{legs}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

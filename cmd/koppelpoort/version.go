package main

import (
	"fmt"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/internal/buildinfo"
)

// registerBuildInfo exposes koppelpoort_build_info{version,commit,goversion} 1, so a dashboard shows what
// runs where and an alert can compare versions across processes.
func registerBuildInfo(reg prometheus.Registerer) {
	b := buildinfo.Current()
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "koppelpoort_build_info", Help: "Always 1; the labels say which build runs.",
		ConstLabels: prometheus.Labels{"version": b.Version, "commit": b.Commit, "goversion": runtime.Version()}})
	g.Set(1)
	reg.MustRegister(g)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version and commit of this binary",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			b := buildinfo.Current()
			fmt.Fprintln(cmd.OutOrStdout(), b)
			if b.Commit == "" {
				// go build / go run with -buildvcs=false (or outside a checkout) stamps nothing (issue 14, defect 27).
				fmt.Fprintln(cmd.ErrOrStderr(), "koppelpoort version: no version or commit was set when this binary was built; "+
					"deploy/build.sh OUTPUT builds it with both (from git describe and git rev-parse), see deploy/README.md")
			}
		},
	}
}

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/koppelpoort/koppelpoort/loadtest"
	"github.com/spf13/cobra"
)

type loadFlags struct {
	scenario   string
	self       bool
	dsn        string
	sqliteSync string
	keepData   bool
	dataDir    string
	cpuProfile string
	serverLog  string
	jsonOut    string
	htmlOut    string
	probe      time.Duration
	probeDSN   string
	serverPID  int
	quiet      bool
	instances  []string
	sc         loadtest.Scenario
	statusSh   float64
	failedSh   float64
	newSh      float64
	staleSh    float64
	processes  int
	compare    string
	removalAt  time.Duration
	snapshot   string
}

func newLoadCmd() *cobra.Command {
	var f loadFlags
	cmd := &cobra.Command{
		Use:   "load",
		Short: "Drive a Koppeltaal 1.3 server with a realistic load and check consistency",
		Long: `Drive a Koppeltaal 1.3 server over HTTP with a realistic mix: practitioner
portals create and update Patients and CarePlans (versioned, with deliberate 409s),
patient portals and modules claim, report UpdateCarePlanActivityStatus and
acknowledge (Success, a share of Failed and New). At the end it prints throughput,
latency percentiles per operation and errors by kind, and checks that every accepted
message reached every subscriber exactly once and every acknowledgement stuck.
It also measures the raw commit rate of the store on this machine for comparison.

  koppelpoort load --self --duration 1m                 # own server on a temp SQLite
  koppelpoort load --self --dsn postgres://... --rate 300
  koppelpoort load --scenario scenario.yaml             # an external server

Exit status 1 when the consistency check fails.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// The first ^C ends the load phase (the drain, the check and the
			// report still run); the second aborts.
			ctx, cancel := context.WithCancel(cmd.Context())
			defer cancel()
			stopLoad := make(chan struct{})
			sig := make(chan os.Signal, 2)
			signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
			defer signal.Stop(sig)
			go func() {
				select {
				case <-sig:
				case <-ctx.Done():
					return
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "\nstopping the load; draining and checking (^C again to abort)")
				close(stopLoad)
				select {
				case <-sig:
					cancel()
				case <-ctx.Done():
				}
			}()
			return runLoad(ctx, cmd, &f, stopLoad)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.scenario, "scenario", "", "scenario file (YAML); flags override it")
	fl.BoolVar(&f.self, "self", false, "start a Koppelpoort server as a child process and provision its domains")
	fl.StringVar(&f.dsn, "dsn", "", "with --self: postgres:// URL of a server to create a fresh database on (default: temp SQLite)")
	fl.IntVar(&f.processes, "processes", 1, "with --self and --dsn: server processes sharing the database (the load goes to each in turn)")
	fl.StringVar(&f.compare, "compare", "", "with --self: run the scenario once per store, one after the other, and print them side by side with ratios: e.g. sqlite,postgres,postgres*2 (postgres legs on --dsn; *N = N processes)")
	fl.StringVar(&f.sqliteSync, "sqlite-synchronous", "FULL", "with --self on SQLite: FULL or NORMAL")
	fl.BoolVar(&f.keepData, "keep-data", false, "with --self: keep the temporary data directory / database")
	fl.StringVar(&f.dataDir, "data-dir", "", "with --self: where to create the temporary data directory (default the system temp dir; must be a real disk, not tmpfs)")
	fl.StringVar(&f.cpuProfile, "cpuprofile", "", "with --self: write the server's pprof CPU profile to this file")
	fl.StringVar(&f.serverLog, "server-log-level", "warn", "with --self: the server's log level")
	fl.StringVar(&f.jsonOut, "json", "", "write the report as JSON to this file")
	fl.StringVar(&f.htmlOut, "html", "", "write an HTML report with charts to this file")
	fl.DurationVar(&f.probe, "commit-probe", 3*time.Second, "how long to measure the raw commit rate (0 disables)")
	fl.StringVar(&f.probeDSN, "commit-probe-dsn", "", "without --self: a directory (SQLite) or postgres:// URL to measure the commit rate on")
	fl.IntVar(&f.serverPID, "server-pid", 0, "without --self: pid of the server on this machine, for its memory and CPU")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress line")
	fl.StringArrayVar(&f.instances, "instance", nil, "without --self: an instance to act as, e.g. role=game,domain=D,username=u,password=${PW},subscriptions=CreateOrUpdateCarePlan+CreateOrUpdatePatient (repeatable; replaces the scenario's instances)")
	sc := &f.sc
	fl.StringVar(&sc.Target, "target", "", "base URL of the server (default from the scenario; loopback only unless --allow-remote)")
	fl.BoolVar(&sc.AllowRemote, "allow-remote", false, "allow a target that is not on this machine")
	fl.StringVar(&sc.Format, "format", "", "message format: json, xml or mixed (default json)")
	fl.DurationVar(&sc.Duration, "duration", 0, "length of the load phase (default 30s)")
	fl.Float64Var(&sc.Rate, "rate", 0, "open-loop rate in messages/s posted by practitioner portals (0: closed loop)")
	fl.IntVar(&sc.Concurrency, "concurrency", 0, "posting workers (closed loop) or max in flight (open loop) (default 8 / 64)")
	fl.IntVar(&sc.Domains, "domains", 0, "domains to provision with --self (default 2)")
	fl.IntVar(&sc.PatientsPerDomain, "patients", 0, "patients per domain (default 200)")
	fl.IntVar(&sc.SubscribersPerEvent, "subscribers", 0, "subscribers per event and domain with --self (default 3)")
	fl.IntVar(&sc.ConsumersPerInstance, "consumers", 0, "claim loops per subscribed instance (default 2)")
	fl.DurationVar(&sc.PollInterval, "poll-interval", 0, "wait after an empty claim (default 20ms)")
	fl.IntVar(&sc.Activities, "activities", 0, "activities per CarePlan (default 4)")
	fl.IntVar(&sc.CareTeams, "careteams", 0, "CareTeams per CarePlan (default 2)")
	fl.Var(&sc.MessageSize, "message-size", "minimum CarePlan message size, e.g. 16KiB (activities are added)")
	fl.Float64Var(&sc.Mix.Patient, "mix-patient", 0, "weight of CreateOrUpdatePatient (default 1)")
	fl.Float64Var(&sc.Mix.CarePlan, "mix-careplan", 0, "weight of CreateOrUpdateCarePlan (default 4)")
	fl.Float64Var(&f.statusSh, "status-share", 0.3, "share of claimed CarePlans a module answers with UpdateCarePlanActivityStatus")
	fl.Float64Var(&f.failedSh, "ack-failed", 0.02, "share of acknowledgements that are Failed")
	fl.Float64Var(&f.newSh, "ack-new", 0.02, "share of first acknowledgements that are New (delivered again)")
	fl.Float64Var(&f.staleSh, "stale-share", 0.02, "share of CarePlan updates sent with an outdated version (409 expected)")
	fl.IntVar(&sc.Backlog, "backlog", 0, "new-patient messages per domain posted before the consumers start (deep queues; see claim latency by depth)")
	fl.IntVar(&sc.Prefill, "prefill", 0, "with --self: new-patient messages per domain written straight into the fresh database before the server starts (deep queues in seconds; see loadtest/README.md)")
	fl.Float64Var(&sc.PrefillDue, "prefill-due", 0, "with --prefill: share (0..1) of the prefilled messages written due for removal (older than the maximum message age, delivered long ago, body kept)")
	fl.DurationVar(&f.removalAt, "removal-at", 0, "with --prefill: the server's first removal run starts about this long into the load phase instead of at its start (the prefill holds the job's lease); longer than the run keeps it out of the run. Sets --server-log-level info unless given, to report the run")
	fl.StringVar(&f.snapshot, "prefill-snapshot", "", "with --prefill: a file to copy the prefilled database to when it does not exist, and to copy it from instead of prefilling when it does (legs to compare start from the same database; FILE.json describes it; with --dsn the copy is a database kp_snapshot_* on that server, dropped by hand)")
	fl.DurationVar(&sc.DrainTimeout, "drain-timeout", 0, "max wait for the queues to empty after the load (default 60s)")
	fl.DurationVar(&sc.RequestTimeout, "request-timeout", 0, "timeout of one HTTP request (default 30s)")

	cmd.AddCommand(newLoadServeSelfCmd())
	return cmd
}

// scenarioFrom merges the scenario file with the flags that were set.
func scenarioFrom(cmd *cobra.Command, f *loadFlags) (*loadtest.Scenario, error) {
	sc := &loadtest.Scenario{}
	if f.scenario != "" {
		var err error
		if sc, err = loadtest.LoadScenario(f.scenario); err != nil {
			return nil, err
		}
	}
	set := cmd.Flags().Changed
	fs := &f.sc
	for _, o := range []struct {
		name  string
		apply func()
	}{
		{"target", func() { sc.Target = fs.Target }},
		{"allow-remote", func() { sc.AllowRemote = fs.AllowRemote }},
		{"format", func() { sc.Format = fs.Format }},
		{"duration", func() { sc.Duration = fs.Duration }},
		{"rate", func() { sc.Rate = fs.Rate }},
		{"concurrency", func() { sc.Concurrency = fs.Concurrency }},
		{"domains", func() { sc.Domains = fs.Domains }},
		{"patients", func() { sc.PatientsPerDomain = fs.PatientsPerDomain }},
		{"subscribers", func() { sc.SubscribersPerEvent = fs.SubscribersPerEvent }},
		{"consumers", func() { sc.ConsumersPerInstance = fs.ConsumersPerInstance }},
		{"poll-interval", func() { sc.PollInterval = fs.PollInterval }},
		{"activities", func() { sc.Activities = fs.Activities }},
		{"careteams", func() { sc.CareTeams = fs.CareTeams }},
		{"message-size", func() { sc.MessageSize = fs.MessageSize }},
		{"mix-patient", func() { sc.Mix.Patient = fs.Mix.Patient }},
		{"mix-careplan", func() { sc.Mix.CarePlan = fs.Mix.CarePlan }},
		{"status-share", func() { sc.StatusShare = &f.statusSh }},
		{"ack-failed", func() { sc.AckFailedShare = &f.failedSh }},
		{"ack-new", func() { sc.AckNewShare = &f.newSh }},
		{"stale-share", func() { sc.StaleVersionShare = &f.staleSh }},
		{"drain-timeout", func() { sc.DrainTimeout = fs.DrainTimeout }},
		{"backlog", func() { sc.Backlog = fs.Backlog }},
		{"prefill", func() { sc.Prefill = fs.Prefill }},
		{"prefill-due", func() { sc.PrefillDue = fs.PrefillDue }},
		{"request-timeout", func() { sc.RequestTimeout = fs.RequestTimeout }},
	} {
		if set(o.name) {
			o.apply()
		}
	}
	if len(f.instances) > 0 {
		sc.Instances = nil
		for _, v := range f.instances {
			in, err := loadtest.ParseInstanceFlag(v)
			if err != nil {
				return nil, err
			}
			sc.Instances = append(sc.Instances, in)
		}
	}
	sc.Defaults()
	if err := sc.Validate(f.self); err != nil {
		if f.scenario != "" {
			return nil, fmt.Errorf("%s: %w", f.scenario, err)
		}
		return nil, err
	}
	return sc, nil
}

func runLoad(ctx context.Context, cmd *cobra.Command, f *loadFlags, stopLoad <-chan struct{}) error {
	sc, err := scenarioFrom(cmd, f)
	if err != nil {
		return err
	}
	if f.removalAt > 0 {
		if !f.self || sc.Prefill == 0 {
			return errors.New("--removal-at needs --self and --prefill: the prefill holds the server's removal job until then")
		}
		if !cmd.Flags().Changed("server-log-level") {
			f.serverLog = "info" // the removal run's log line is the report's source
		}
	}
	if f.snapshot != "" && (!f.self || sc.Prefill == 0 || f.compare != "") {
		return errors.New("--prefill-snapshot needs --self and --prefill, and one store (no --compare): it is a copy of the prefilled database")
	}
	if f.compare != "" {
		return runCompare(ctx, cmd, f, sc, stopLoad)
	}
	rep, err := loadOnce(ctx, cmd, f, sc, stopLoad)
	if err != nil {
		return err
	}
	rep.WriteText(cmd.OutOrStdout())
	if f.jsonOut != "" {
		if err := rep.WriteJSON(f.jsonOut); err != nil {
			return err
		}
	}
	if f.htmlOut != "" {
		if err := rep.WriteHTML(f.htmlOut); err != nil {
			return err
		}
	}
	if !rep.Pass {
		return exitError{code: 1}
	}
	return nil
}

// runCompare runs sc once per leg of --compare and prints each report, then
// the legs side by side (loadtest.WriteComparison).
func runCompare(ctx context.Context, cmd *cobra.Command, f *loadFlags, sc *loadtest.Scenario, stopLoad <-chan struct{}) error {
	if !f.self {
		return errors.New("--compare needs --self: it starts a server per store")
	}
	legs, err := loadtest.ParseCompare(f.compare, f.dsn)
	if err != nil {
		return err
	}
	var done []loadtest.Leg
	pass := true
	for i, leg := range legs {
		fmt.Fprintf(cmd.ErrOrStderr(), "\n=== %s (%d of %d)\n", leg.Name, i+1, len(legs))
		lf := *f
		lf.dsn, lf.processes = leg.DSN, leg.Processes
		legSc := *sc
		rep, err := loadOnce(ctx, cmd, &lf, &legSc, stopLoad)
		if err != nil {
			return fmt.Errorf("%s: %w", leg.Name, err)
		}
		fmt.Fprintf(cmd.OutOrStdout(), "\n=== %s\n", leg.Name)
		rep.WriteText(cmd.OutOrStdout())
		leg.Report = rep
		done = append(done, leg)
		pass = pass && rep.Pass
	}
	loadtest.WriteComparison(cmd.OutOrStdout(), done)
	if f.jsonOut != "" {
		if err := loadtest.WriteComparisonJSON(f.jsonOut, done); err != nil {
			return err
		}
	}
	if !pass {
		return exitError{code: 1}
	}
	return nil
}

// loadOnce runs sc once (with --self: on a server of its own) and returns the report.
func loadOnce(ctx context.Context, cmd *cobra.Command, f *loadFlags, sc *loadtest.Scenario, stopLoad <-chan struct{}) (*loadtest.Report, error) {
	ctx, abort := context.WithCancel(ctx)
	defer abort()
	errw := cmd.ErrOrStderr()
	logger := slog.New(slog.NewTextHandler(errw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	opts := loadtest.Options{Scenario: sc, Target: sc.Target, Instances: sc.Instances, Logger: logger, ServerPID: f.serverPID, StopLoad: stopLoad}
	if !f.quiet {
		opts.Progress = errw
		if fi, err := os.Stderr.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 && errw == os.Stderr {
			opts.TTY = true
		}
	}
	if sc.AllowRemote && !f.self {
		fmt.Fprintf(errw, "warning: --allow-remote: driving %s, which may be a shared server\n", sc.Target)
	}

	var srv *loadtest.SelfServer
	if f.self {
		exe, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find own binary to start the server: %w", err)
		}
		fmt.Fprintf(errw, "starting a Koppelpoort server (%d domains × %d instances)...\n", sc.Domains, sc.SubscribersPerEvent+1)
		if sc.Prefill > 0 {
			fmt.Fprintf(errw, "prefilling %d messages per domain into the fresh database...\n", sc.Prefill)
		}
		hold := time.Duration(0)
		if f.removalAt > 0 {
			// From the prefill's end: the server's start, the commit probe and
			// the warm-up reads come before the load phase (about 3 s here).
			hold = f.removalAt + f.probe + 3*time.Second
		}
		srv, err = loadtest.StartSelf(ctx, sc, loadtest.SelfOptions{Command: []string{exe, "load", "serve-self"}, DSN: f.dsn, HoldRemoval: hold, PrefillSnapshot: f.snapshot,
			SQLiteSynchronous: f.sqliteSync, KeepData: f.keepData, DataDir: f.dataDir, CPUProfile: f.cpuProfile, LogLevel: f.serverLog,
			Progress: opts.Progress, Processes: f.processes})
		if err != nil {
			return nil, err
		}
		if p := srv.Prefill; p != nil {
			how := "prefilled"
			if p.Snapshot != "" {
				how = "copied from the snapshot " + p.Snapshot + ":"
			}
			fmt.Fprintf(errw, "%s %d messages (per domain %d waiting and %d due for removal, each for %d subscribers) in %.1fs\n", how, p.Messages(), p.PerDomain, p.DuePerDomain, len(p.Domains[0].Subscribers), p.Seconds)
		}
		defer func() {
			abort() // first, so that the watcher below does not report the stop as a crash
			if err := srv.Stop(); err != nil {
				fmt.Fprintf(errw, "warning: %v\n", err)
			}
		}()
		opts.Target, opts.Instances, opts.ServerPID, opts.StoreLabel, opts.Prefill = srv.URL, srv.Instances, srv.PID, srv.StoreLabel, srv.Prefill
		opts.ServerPIDs = srv.PIDs
		opts.AuditDSN = srv.DSN // the audit trail must name the instance and patient of every claim and read
		opts.FreshServer = true
		// A server that dies mid-run ends the run at once, with its last words.
		go func() {
			select {
			case <-srv.Died():
				if ctx.Err() == nil {
					fmt.Fprintf(errw, "\nthe server (pid %d) exited during the run; the end of its log (%s):\n%s\n", srv.PID, srv.LogPath, srv.LogTail(20))
					abort()
				}
			case <-ctx.Done():
			}
		}()
		fmt.Fprintf(errw, "server pid %v at %s on %s (data and log in %s)\n", srv.PIDs, srv.URL, srv.StoreLabel, srv.Dir)
	}
	if f.probe > 0 {
		var cr *loadtest.CommitRate
		var perr error
		switch {
		case srv != nil:
			cr, perr = srv.MeasureCommitRate(ctx, f.probe)
		case strings.HasPrefix(f.probeDSN, "postgres://") || strings.HasPrefix(f.probeDSN, "postgresql://"):
			cr, perr = loadtest.MeasurePostgresCommitRate(ctx, f.probeDSN, f.probe)
		default:
			dir := f.probeDSN
			if dir == "" {
				dir = os.TempDir()
			}
			cr, perr = loadtest.MeasureSQLiteCommitRate(ctx, dir, f.sqliteSync, f.probe)
		}
		if perr != nil {
			fmt.Fprintf(errw, "warning: raw commit rate not measured: %v\n", perr)
		} else {
			opts.CommitRate = cr
			fmt.Fprintf(errw, "raw commit rate: %.0f commits/s (%s)\n", cr.PerSecond, cr.Store)
		}
	}
	rep, err := loadtest.Run(ctx, opts)
	if err == nil && srv != nil && (f.removalAt > 0 || sc.PrefillDue > 0) {
		runs, rerr := srv.RemovalRuns()
		if rerr != nil {
			fmt.Fprintf(errw, "warning: %v\n", rerr)
		}
		rep.AddRemovalRuns(runs)
	}
	return rep, err
}

// newLoadServeSelfCmd is the server side of `load --self`: `serve` from a
// config file, plus an optional CPU profile of the server alone.
func newLoadServeSelfCmd() *cobra.Command {
	var cfgPath, cpuProfile string
	cmd := &cobra.Command{
		Use:    "serve-self",
		Short:  "Run the server for load --self (internal)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(serveFlags{configPath: cfgPath}, os.Getenv)
			if err != nil {
				return err
			}
			if cpuProfile != "" {
				pf, err := os.Create(cpuProfile)
				if err != nil {
					return fmt.Errorf("cpu profile: %w", err)
				}
				if err := pprof.StartCPUProfile(pf); err != nil {
					pf.Close()
					return fmt.Errorf("cpu profile: %w", err)
				}
				defer func() { pprof.StopCPUProfile(); pf.Close() }()
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr(), nil)
		},
	}
	cmd.Flags().StringVar(&cfgPath, "config", "", "configuration file written by load --self")
	cmd.Flags().StringVar(&cpuProfile, "cpuprofile", "", "write a pprof CPU profile here")
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

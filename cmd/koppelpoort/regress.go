package main

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/regress"
)

type regressFlags struct {
	config       string
	list         bool
	run          string
	junit        string
	json         string
	quiet        bool
	claimTimeout time.Duration
	sweep        time.Duration
	hookUser     string
	hookListen   string
	known        string
}

func newRegressCmd() *cobra.Command {
	var f regressFlags
	cmd := &cobra.Command{
		Use:   "regress <base-url>",
		Short: "Run the Koppeltaal 1.3 Regression Test against a server",
		Long: `Run the Regression Test: a black-box conformance suite for any Koppeltaal 1.3
server (this one or another). It asserts what deployed clients read (CLIENTS.md)
and the rules of SPEC.md behind it, in XML and JSON, and checks that hostile input
is refused and nothing of it is stored. Every run creates its own uniquely named
data, so it can run again and again against a long-lived server.

  koppelpoort regress http://127.0.0.1:8080                 # the demo domain of koppelpoort serve
  koppelpoort regress --config regress.yaml https://kt.example.nl
  koppelpoort regress --list                                # every case, with its reference
  koppelpoort regress --run 'mailbox/|sso/' --junit regress.xml http://127.0.0.1:8080

Without --config it uses the accounts of the demo domain of 'koppelpoort serve'.
Cases that need something optional (a second subscriber, a short claim timeout, a
webhook pointing at the suite, the Storage Service) are skipped with the reason.
Exit status 0 when no case failed, 1 otherwise.

A configuration file (the demo domain's; values may use ${VAR}):

` + indentBlock(regress.ExampleConfig),
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return runRegress(cmd, args, f) },
	}
	fl := cmd.Flags()
	fl.StringVarP(&f.config, "config", "c", "", "configuration file (YAML); default: the demo domain of koppelpoort serve")
	fl.BoolVar(&f.list, "list", false, "list the cases (id[format], title, reference) and exit")
	fl.StringVar(&f.run, "run", "", "run only cases whose id[format] matches this regular expression")
	fl.StringVar(&f.junit, "junit", "", "write a JUnit XML report to this file")
	fl.StringVar(&f.json, "json", "", "write a JSON report to this file")
	fl.BoolVarP(&f.quiet, "quiet", "q", false, "no progress line per case, only failures and counts")
	fl.DurationVar(&f.claimTimeout, "claim-timeout", 0, "the target's claim timeout, when at most 1m: enables the time-out cases (overrides the file)")
	fl.DurationVar(&f.sweep, "sweep-interval", 0, "how long after the claim timeout the target may take to notice it (overrides the file)")
	fl.StringVar(&f.hookUser, "webhook-instance", "", "the instance whose webhook URL points at --webhook-listen (overrides the file)")
	fl.StringVar(&f.hookListen, "webhook-listen", "", "host:port where the suite receives that instance's webhook calls")
	fl.StringVar(&f.known, "known-failures", "", "file listing known failures (a case id or id[format] a line, then # reason): reported, not failing the run")
	return cmd
}

func runRegress(cmd *cobra.Command, args []string, f regressFlags) error {
	var sel *regexp.Regexp
	if f.run != "" {
		var err error
		if sel, err = regexp.Compile(f.run); err != nil {
			return fmt.Errorf("--run: %w", err)
		}
	}
	out := cmd.OutOrStdout()
	if f.list {
		for _, r := range regress.List(sel) {
			fmt.Fprintf(out, "%-58s %s\n%58s ref: %s\n", r.Name(), r.Title, "", r.Ref)
		}
		return nil
	}
	if len(args) != 1 {
		return fmt.Errorf("give the base URL of the server, e.g. koppelpoort regress http://127.0.0.1:8080")
	}
	target := strings.TrimRight(args[0], "/")
	cfg := demoRegressConfig(target)
	if f.config != "" {
		var err error
		if cfg, err = regress.LoadConfig(f.config); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(cmd.ErrOrStderr(), "no --config: using the demo domain of 'koppelpoort serve' (%s)\n", koppeltaal.DemoDomain)
	}
	cfg.Target = target
	if err := applyRegressFlags(&cfg, f); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	opts := regress.Options{Config: cfg, Run: sel}
	if f.known != "" {
		b, err := os.ReadFile(f.known)
		if err != nil {
			return fmt.Errorf("--known-failures: %w", err)
		}
		opts.Known = regress.ParseKnown(string(b))
	}
	if !f.quiet {
		opts.Progress = out
	}
	rep, err := regress.Run(ctx, opts)
	if err != nil {
		return err
	}
	rep.WriteSummary(out)
	if err := writeReport(f.junit, rep.WriteJUnit); err != nil {
		return err
	}
	if err := writeReport(f.json, rep.WriteJSON); err != nil {
		return err
	}
	if !rep.Passed() {
		return exitError{code: 1}
	}
	return nil
}

func applyRegressFlags(cfg *regress.Config, f regressFlags) error {
	if f.claimTimeout > 0 {
		cfg.ClaimTimeout = f.claimTimeout
	}
	if f.sweep > 0 {
		cfg.SweepInterval = f.sweep
	}
	if (f.hookUser == "") != (f.hookListen == "") {
		return fmt.Errorf("--webhook-instance and --webhook-listen go together")
	}
	if f.hookUser != "" {
		cfg.Webhook = &regress.Webhook{Username: f.hookUser, Listen: f.hookListen}
	}
	return nil
}

func writeReport(path string, write func(io.Writer) error) error {
	if path == "" {
		return nil
	}
	fh, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := write(fh); err != nil {
		fh.Close()
		return fmt.Errorf("report %s: %w", path, err)
	}
	return fh.Close()
}

// demoRegressConfig is the regression test's view of koppeltaal.DemoConfig on a server at target (the
// demo game's redirect URI follows the server's address, as serve sets it).
func demoRegressConfig(target string) regress.Config {
	acct := func(u, p string) regress.Account { return regress.Account{Username: u, Password: p} }
	legacy := acct(koppeltaal.DemoLegacyUser, koppeltaal.DemoLegacyPassword)
	return regress.Config{
		Target:      target,
		Domain:      koppeltaal.DemoDomain,
		Portal:      acct(koppeltaal.DemoPortalUser, koppeltaal.DemoPortalPassword),
		Subscribers: []regress.Account{acct(koppeltaal.DemoGameUser, koppeltaal.DemoGamePassword), acct(koppeltaal.DemoEPDUser, koppeltaal.DemoEPDPassword)},
		Legacy:      &legacy,
		Module: &regress.Module{
			OAuthClient: regress.OAuthClient{ClientID: koppeltaal.DemoModuleClient, ClientSecret: koppeltaal.DemoModuleSecret,
				RedirectURI: koppeltaal.DemoModuleRoot + "/callback"},
			Account: acct(koppeltaal.DemoModuleUser, koppeltaal.DemoModulePassword),
		},
		PublicClient: &regress.OAuthClient{ClientID: "DemoGame", RedirectURI: target + koppeltaal.DemoGamePath},
		CORSOrigin:   koppeltaal.DemoModuleRoot,
	}
}

func indentBlock(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/testclient"
)

type testclientFlags struct {
	cfg            testclient.Config
	listen         string
	launch         string
	activationCode string
	interval       time.Duration
	format         string
}

func newTestClientCmd() *cobra.Command {
	var f testclientFlags
	cmd := &cobra.Command{
		Use:   "testclient",
		Short: "Run the Test Client: a simulated Koppeltaal module (game / e-learning)",
		Long: `Run the Test Client, a simulated intervention that behaves like a deployed module
against any Koppeltaal 1.3 server: it takes web launches on its launch URL (or an
activation code), reads the Conformance, authorizes, gets a token, claims its patient's
CarePlan messages, reports UpdateCarePlanActivityStatus (InProgress, Completed, with its
state as a BlackBoxState) and CreateOrUpdateCarePlanActivityResult, keeps its state in the
Storage Service when the server has one, acknowledges (Success, or Failed with
--fail-with) and logs every step.

Without flags it is the demo module of 'koppelpoort serve' (DemoModule): it serves its
launch URL and redirect URI on 127.0.0.1:8090, so a portal's launch opened in a browser
lands there and the module works on the launch patient's CarePlan. With --watch it also
works through its instance's whole mailbox (HTTP Basic, module@demo), as a server-side
module does (do not watch the module 'koppelpoort regress' uses while it runs: the
watcher would take the suite's messages).

  koppelpoort testclient                               # the demo module, next to koppelpoort serve
  koppelpoort testclient --watch 3s                    # ... and its whole mailbox every 3 seconds
  koppelpoort testclient --launch '<Location of a Launch>'   # one launch, then exit
  koppelpoort testclient --activation-code ABCD234567  # a mobile launch, then exit
  koppelpoort testclient --server https://kt.example.nl --client-id MyGame --client-secret $SECRET \
      --redirect-uri https://game.example/callback --username game@dom --password $PW --activity my-game

Launch it as the portal, then open the Location in a browser:
  curl -i -u portal@demo:demo-portal 'http://127.0.0.1:8080/OAuth2/Koppeltaal/Launch?client_id=DemoModule&patient=` + koppeltaal.DemoPatient + `'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runTestClient(cmd, f) },
	}
	c := &f.cfg
	fl := cmd.Flags()
	fl.StringVar(&c.Server, "server", koppeltaal.DemoRoot, "the Koppeltaal server root")
	fl.StringVar(&c.ClientID, "client-id", koppeltaal.DemoModuleClient, "the module's application id (OAuth client_id)")
	fl.StringVar(&c.ClientSecret, "client-secret", koppeltaal.DemoModuleSecret, "its client secret (empty: a public client)")
	fl.StringVar(&c.RedirectURI, "redirect-uri", koppeltaal.DemoModuleRoot+"/callback", "its registered redirect_uri")
	fl.StringVar(&c.Username, "username", koppeltaal.DemoModuleUser, "its instance's username (to work through its mailbox)")
	fl.StringVar(&c.Password, "password", koppeltaal.DemoModulePassword, "its instance's password")
	fl.StringVar(&c.Activity, "activity", koppeltaal.DemoModuleActivity, "the ActivityDefinition identifier it implements (empty: every activity)")
	fl.StringVar(&c.FailWith, "fail-with", "", "acknowledge every CarePlan message Failed with this exception")
	fl.StringVar(&f.format, "format", "json", "wire format: json or xml")
	fl.StringVar(&f.listen, "listen", strings.TrimPrefix(koppeltaal.DemoModuleRoot, "http://"), "where to serve the launch URL and redirect URI (empty: no pages)")
	fl.StringVar(&f.launch, "launch", "", "run one web launch from this Location (the module's launch URL with iss and launch) and exit")
	fl.StringVar(&f.activationCode, "activation-code", "", "run one mobile launch with this activation code and exit")
	fl.DurationVar(&f.interval, "watch", 0, "also work through its own mailbox (HTTP Basic) this often, e.g. 3s (0: launches only)")
	return cmd
}

func runTestClient(cmd *cobra.Command, f testclientFlags) error {
	switch strings.ToLower(f.format) {
	case "json":
		f.cfg.Format = dstu1.FormatJSON
	case "xml":
		f.cfg.Format = dstu1.FormatXML
	default:
		return fmt.Errorf("--format %q: want json or xml", f.format)
	}
	f.cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil))
	m, err := testclient.New(f.cfg)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if f.launch != "" || f.activationCode != "" {
		var s *testclient.Session
		if f.launch != "" {
			s, err = m.Launch(ctx, f.launch)
		} else {
			s, err = m.Activate(ctx, "", f.activationCode)
		}
		if err != nil {
			return err
		}
		done, err := s.Work(ctx)
		if done == nil && err == nil {
			// A second launch for the same patient: its CarePlan was claimed by the first (it printed null).
			f.cfg.Logger.Info("testclient: nothing was waiting in the mailbox for this launch's patient")
			done = []testclient.Handled{}
		}
		enc := json.NewEncoder(cmd.OutOrStdout())
		enc.SetIndent("", "  ")
		_ = enc.Encode(done)
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	if f.listen != "" {
		ln, err := net.Listen("tcp", f.listen)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", f.listen, err)
		}
		srv := &http.Server{Handler: m.Handler(), ReadHeaderTimeout: 10 * time.Second}
		f.cfg.Logger.Info("testclient: serving the launch URL", "url", "http://"+ln.Addr().String()+testclient.LaunchPath, "client_id", f.cfg.ClientID)
		g.Go(func() error {
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	if f.interval > 0 && f.cfg.Username != "" {
		f.cfg.Logger.Info("testclient: working through its mailbox", "username", f.cfg.Username, "every", f.interval)
		g.Go(func() error { return m.Watch(gctx, f.interval) })
	}
	return g.Wait()
}

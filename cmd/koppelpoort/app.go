package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	_ "github.com/koppelpoort/koppelpoort/adapters/all" // the built-in adapters
	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/console"
	"github.com/koppelpoort/koppelpoort/admin/supportapi"
	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/internal/buildinfo"
	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/loginlimit"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/koppeltaal/oauth"
	"github.com/koppelpoort/koppelpoort/koppeltaal/storage"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/prometheus/client_golang/prometheus"
)

// app is what serve runs: HTTP handlers to mount and background workers.
type app struct {
	mounts  []server.Mounter
	workers []func(ctx context.Context) error
	closers []func() error
	// checks are readiness checks besides the store's (/readyz).
	checks []server.Check
	// reload re-reads the route files (SIGHUP); nil when there is nothing to reload.
	reload func(ctx context.Context) error
	// requestLog is the HTTP request log's middleware (server.Options.RequestLog).
	requestLog func(http.Handler) http.Handler
}

// close releases what buildApp opened, last opened first.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		_ = a.closers[i]()
	}
}

// buildApp provisions the Koppeltaal configuration and assembles the API and
// the gateway routes (loaded and checked by the caller) on the open store;
// public is the server's public URL (config.ServerConfig.Public).
func buildApp(ctx context.Context, cfg *config.Config, public string, st *store.Store, rs []*routes.Route, logger *slog.Logger, reg prometheus.Registerer) (*app, error) {
	a := &app{}
	limiter := newLoginLimiter(cfg.Server.FailedLogins, reg) // instances, OAuth clients and administrators
	var portal console.Portal                                // the console's Test Portal uses the Koppeltaal server in process
	var ktService *koppeltaal.Service                        // the Koppeltaal server, for local Koppeltaal adapters (nil: none)
	var acts *activity.Registry
	var notifier *notify.Notifier // webhooks, the built-in Koppeltaal route's output (nil: no Koppeltaal)
	fhirBase := strings.TrimSuffix(public, "/") + api.Prefix
	trail, err := audit.New(audit.Options{Store: st, Logger: logger, Key: []byte(cfg.Audit.Key), RetentionDays: cfg.Audit.RetentionDays})
	if err != nil {
		return nil, fmt.Errorf("audit trail: %w", err)
	}
	a.closers = append(a.closers, trail.Close)
	a.workers = append(a.workers, trail.Run) // the sealer of the hash chain, one process at a time
	requests, err := httplog.New(httplog.Options{Store: st, Config: cfg.HTTPLog, Logger: logger, Registerer: reg})
	if err != nil {
		return nil, fmt.Errorf("http request log: %w", err)
	}
	a.closers = append(a.closers, requests.Close)
	a.requestLog = requests.Middleware
	if cfg.Koppeltaal != nil {
		cfg.Koppeltaal.PublicURL = public // every link the Koppeltaal server writes
		if cfg.Path == "" {
			cfg.Koppeltaal.WithDemoRoot(public) // the demo game lives on this server
		}
		if _, err := koppeltaal.Apply(ctx, *cfg.Koppeltaal, st, logger); err != nil {
			return nil, fmt.Errorf("provision koppeltaal configuration: %w", err)
		}
		// SSO, activity definitions and push notifications (issue 4).
		sso, err := oauth.New(oauth.Options{Store: st, Config: *cfg.Koppeltaal, Logger: logger, Registerer: reg, Limiter: limiter, Audit: trail})
		if err != nil {
			return nil, fmt.Errorf("koppeltaal oauth: %w", err)
		}
		push, err := notify.New(notify.Options{Store: st, Logger: logger})
		if err != nil {
			return nil, fmt.Errorf("koppeltaal notifications: %w", err)
		}
		notifier = push
		ads, err := activity.New(activity.Options{Store: st, Logger: logger, MaxBodyBytes: cfg.Koppeltaal.MaxBodyBytes, OnPublish: push.Wake})
		if err != nil {
			return nil, fmt.Errorf("koppeltaal activity definitions: %w", err)
		}
		stor, err := storage.New(storage.Options{Store: st, Config: cfg.Koppeltaal.Storage, Logger: logger, Audit: trail})
		if err != nil {
			return nil, fmt.Errorf("koppeltaal storage service: %w", err)
		}
		kt, err := api.New(ctx, api.Options{
			Store:      st,
			Config:     *cfg.Koppeltaal,
			Logger:     logger,
			Registerer: reg,
			SkipApply:  true,
			Bearer:     sso,
			Limiter:    sso.Limiter(),
			Audit:      trail,
			// Middleware first (CORS, notifier wake-up), then routes.
			Extensions: []func(*api.Server, chi.Router){sso.Extension, push.Extension, ads.Extension, stor.Extension},
		})
		if err != nil {
			return nil, fmt.Errorf("koppeltaal api: %w", err)
		}
		if _, err := ads.Seed(ctx, *cfg.Koppeltaal, public+api.Prefix); err != nil {
			return nil, fmt.Errorf("seed activity definitions: %w", err)
		}
		ktService = kt.Service()
		ktService.AddRemover(requests) // old request log rows go with the removal job (SPEC.md §10.1)
		a.mounts = append(a.mounts, kt, sso)
		a.workers = append(a.workers, kt.Run, push.Run, sso.Run)
		acts = ads
		portal = console.Portal{Service: kt.Service(), Activities: ads, OAuth: sso, PublicURL: public}
		reg.MustRegister(koppeltaal.NewBacklogCollector(st, logger))
		if cfg.Path == "" {
			a.mounts = append(a.mounts, server.MountFunc(func(r chi.Router) {
				r.Handle(koppeltaal.DemoGamePath, oauth.DemoGamePage())
			}))
			seedDemoCarePlan(ctx, kt.Service(), public+api.Prefix, logger)
		}
	}
	// Administrators after the Koppeltaal objects: their scopes name domains and applications.
	// Administrative actions and the administrators' reads of patient data go into the audit trail.
	accounts, err := admin.New(admin.Options{Store: st, Config: cfg.Admin, Logger: logger, Limiter: limiter,
		Auditor: admin.TrailAuditor{Recorder: trail}})
	if err != nil {
		return nil, fmt.Errorf("administrators: %w", err)
	}
	if err := accounts.ApplyConfig(ctx); err != nil {
		return nil, fmt.Errorf("provision administrators: %w", err)
	}
	kcfg := koppeltaal.Config{}
	if cfg.Koppeltaal != nil {
		kcfg = *cfg.Koppeltaal
	}
	support, err := supportapi.New(supportapi.Options{Accounts: accounts, Koppeltaal: kcfg, Logger: logger, Version: buildinfo.Version(),
		Activities: acts, FHIRBase: fhirBase})
	if err != nil {
		return nil, fmt.Errorf("support api: %w", err)
	}
	var gatherer prometheus.Gatherer
	if g, ok := reg.(prometheus.Gatherer); ok {
		gatherer = g
	}
	web, err := console.New(console.Options{Accounts: accounts, Support: support, Gatherer: gatherer, Portal: portal, Logger: logger})
	if err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	a.mounts = append(a.mounts, accounts, support, web)
	a.workers = append(a.workers, accounts.Run)
	if ktService == nil {
		a.workers = append(a.workers, requests.RunRetention) // no Koppeltaal removal job to share
	}
	if err := a.startRoutes(ctx, cfg, rs, st, ktService, notifier, logger, reg); err != nil {
		return nil, err
	}
	return a, nil
}

// printDemoBanner tells a newcomer how to reach the demo domain. The demo
// credentials are public by design (they only exist without a config file);
// the store is named by store.Where, which never shows a password.
func printDemoBanner(w io.Writer, cfg *config.Config, base, where string) {
	var b strings.Builder
	fmt.Fprintf(&b, "\nKoppelpoort is running on %s with a demo domain (no --config file).\n", where)
	fmt.Fprintf(&b, "Koppeltaal FHIR base: %s/FHIR/Koppeltaal   (demo domain %q)\n", base, koppeltaal.DemoDomain)
	fmt.Fprintf(&b, "Demo application instances (HTTP Basic username:password):\n")
	for _, in := range cfg.Koppeltaal.Instances {
		fmt.Fprintf(&b, "  %-16s %s:%s   subscribed to %s\n", in.Application, in.Username, in.Password, strings.Join(in.Subscriptions, ", "))
	}
	fmt.Fprintf(&b, "Try: curl -u %s:%s %s/FHIR/Koppeltaal/metadata\n", koppeltaal.DemoPortalUser, koppeltaal.DemoPortalPassword, base)
	fmt.Fprintf(&b, "SSO: curl -i -u %s:%s '%s/OAuth2/Koppeltaal/Launch?client_id=DemoGame&patient=%s'\n",
		koppeltaal.DemoPortalUser, koppeltaal.DemoPortalPassword, base, koppeltaal.DemoPatient)
	fmt.Fprintf(&b, "     and open its Location in a browser: the demo game (%s%s) signs in and claims the demo patient's CarePlan.\n",
		base, koppeltaal.DemoGamePath)
	testclient := "koppelpoort testclient"
	if base != koppeltaal.DemoRoot { // its default server
		testclient += " --server " + base
	}
	fmt.Fprintf(&b, "A module at work: %s   (the demo module %s on %s: it works on its activity in that CarePlan)\n",
		testclient, koppeltaal.DemoModuleClient, koppeltaal.DemoModuleRoot)
	fmt.Fprintf(&b, "Regression Test: koppelpoort regress %s\n", base)
	fmt.Fprintf(&b, "Console: %s/console/   (administrator %s:%s)\n", base, admin.DemoUser, admin.DemoPassword)
	fmt.Fprintf(&b, "These credentials are for trying Koppelpoort out; use a --config file for anything else.\n\n")
	_, _ = io.WriteString(w, b.String())
}

// newLoginLimiter is the one failed-login limiter of the process, counting its refusals in
// koppelpoort_logins_throttled_total{reason}.
func newLoginLimiter(cfg loginlimit.Config, reg prometheus.Registerer) *loginlimit.Limiter {
	l := loginlimit.New(cfg)
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "koppelpoort_logins_throttled_total",
		Help: "Logins refused unchecked under the failed-login limits, by the limit that refused them."}, []string{"reason"})
	if reg != nil {
		_ = reg.Register(refused)
	}
	l.OnRefuse = func(r loginlimit.Reason) { refused.WithLabelValues(string(r)).Inc() }
	return l
}

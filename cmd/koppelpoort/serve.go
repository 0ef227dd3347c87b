package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/buildinfo"
	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

type serveFlags struct {
	configPath string
	addr       string
	dsn        string
	publicURL  string
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the Koppeltaal server and the gateway routes",
		Long: `Run Koppelpoort.

Without --config it runs on the embedded default: SQLite in ./koppelpoort-data/,
HTTP on 127.0.0.1:8080 and a demo Koppeltaal domain whose credentials are printed
at start. Settings are taken from, in rising priority: defaults, the --config file,
the environment (KOPPELPOORT_ADDR, KOPPELPOORT_DSN, KOPPELPOORT_PUBLIC_URL), and the flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f, os.Getenv)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			return serve(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr(), hup)
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.addr, "addr", "", "listen address (default 127.0.0.1:8080; env KOPPELPOORT_ADDR)")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().StringVar(&f.publicURL, "public-url", "", "URL clients reach this server at (default http://<addr>, https://<addr> with server.tls; env KOPPELPOORT_PUBLIC_URL)")
	return cmd
}

// loadConfig applies defaults < file < environment < flags and validates the result.
func loadConfig(f serveFlags, getenv func(string) string) (*config.Config, error) {
	var cfg *config.Config
	if f.configPath == "" {
		cfg = config.Default()
	} else {
		var err error
		if cfg, err = config.Load(f.configPath, getenv); err != nil {
			return nil, err
		}
	}
	cfg.ApplyEnv(getenv)
	if f.addr != "" {
		cfg.Server.Addr = f.addr
	}
	if f.dsn != "" {
		cfg.Store.DSN = f.dsn
	}
	if f.publicURL != "" {
		cfg.Server.PublicURL = f.publicURL
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(cfg config.LogConfig, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.Level))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.Format == "text" {
		return slog.New(tracing.LogHandler(slog.NewTextHandler(w, opts)))
	}
	return slog.New(tracing.LogHandler(slog.NewJSONHandler(w, opts))) // trace_id and span_id inside a trace
}

// serve runs everything until ctx is cancelled (SIGINT/SIGTERM); reload receives SIGHUP.
//
// Everything that can be checked without changing anything is checked first — the configuration (by
// loadConfig), every route file, the listen address — so a broken route or a busy port stops serve before it
// migrates the database or applies the configuration (issue 14, defects 1 and 25).
func serve(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer, reload <-chan os.Signal) error {
	logger := newLogger(cfg.Log, stderr)
	slog.SetDefault(logger)
	b := buildinfo.Current()
	gc := tuneGC(os.Getenv, cfg)
	if b.Commit == "" { // go build / go run: nothing stamped (deploy/build.sh stamps both)
		logger.Info("koppelpoort starting", "version", b.Version, "gc", gc)
	} else {
		logger.Info("koppelpoort starting", "version", b.Version, "commit", b.Commit, "gc", gc)
	}
	rs, err := loadRoutes(cfg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Server.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Server.Addr, err)
	}
	defer ln.Close()
	cfg.Server.Addr = ln.Addr().String() // the real port when the address asked for port 0
	public, err := cfg.Server.Public()
	if err != nil {
		return err
	}
	proxies, err := cfg.Server.Proxies()
	if err != nil {
		return err
	}
	certs, err := loadTLS(cfg.Server.TLS, logger)
	if err != nil {
		return err
	}
	stopTracing, err := tracing.Setup(cfg.Tracing, b.Version, logger)
	if err != nil {
		return err
	}
	defer func() { // the spans still queued go out before serve returns
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := stopTracing(sctx); err != nil {
			logger.Warn("tracing: the last spans were not exported", "error", err.Error())
		}
	}()
	st, err := openStore(ctx, cfg, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	reg := server.NewRegistry()
	registerBuildInfo(reg)
	registerStoreMetrics(reg, st)
	app, err := buildApp(ctx, cfg, public, st, rs, logger, reg)
	if err != nil {
		return err
	}
	defer app.close()
	srv := server.New(server.Options{
		Logger:          logger,
		Registry:        reg,
		Ready:           st.Ready,
		Checks:          app.checks,
		Mounts:          app.mounts,
		ReadTimeout:     cfg.Server.ReadTimeout,
		WriteTimeout:    cfg.Server.WriteTimeout,
		ShutdownTimeout: cfg.Server.ShutdownTimeout,
		TrustedProxies:  proxies,
		MetricsAddr:     cfg.Server.Metrics.Addr,
		MetricsToken:    cfg.Server.Metrics.Token,
		RequestLog:      app.requestLog,
		TLS:             certs,
		HSTS:            strings.HasPrefix(public, "https://"), // behind a TLS proxy the browser sees HTTPS
		Tracing:         cfg.Tracing.Enabled(),
	})
	if cfg.Server.Metrics == (config.MetricsConfig{}) && !loopback(cfg.Server.Addr) {
		logger.Warn("/metrics is open to everyone who reaches "+cfg.Server.Addr+"; set server.metrics.addr or server.metrics.token",
			"addr", cfg.Server.Addr)
	}
	if cfg.Path == "" {
		// Only now: the address is bound and every part has started, so "running" is true.
		printDemoBanner(stdout, cfg, public, st.Where())
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, run := range app.workers {
		g.Go(func() error { return run(gctx) })
	}
	g.Go(func() error { return srv.Serve(gctx, ln, nil) })
	g.Go(func() error { return handleReloads(gctx, reload, certs, app, logger) })
	err = g.Wait()
	logger.Info("stopped")
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// loadRoutes loads and checks the route files the configuration names, before anything is opened.
func loadRoutes(cfg *config.Config) ([]*routes.Route, error) {
	if len(cfg.Routes) == 0 {
		return nil, nil
	}
	rs, err := routes.LoadFiles(cfg.RoutePatterns()...)
	if err != nil {
		return nil, fmt.Errorf("routes are not valid:\n%w", err)
	}
	if len(rs) == 0 {
		return nil, fmt.Errorf("routes: %v match no route files", cfg.Routes)
	}
	return rs, nil
}

// loadTLS reads the certificate serve terminates TLS with; nil when server.tls is not set.
func loadTLS(c config.TLSConfig, logger *slog.Logger) (*server.TLS, error) {
	if !c.Enabled() {
		return nil, nil
	}
	certs, err := server.NewTLS(server.TLSFiles{CertFile: c.CertFile, KeyFile: c.KeyFile, ClientCAFile: c.ClientCAFile,
		ClientAuth: c.ClientAuth}, logger)
	if err != nil {
		return nil, fmt.Errorf("server.tls: %w", err)
	}
	return certs, nil
}

// handleReloads answers SIGHUP: it reads the TLS certificate again (certs, nil without TLS) and the route
// files (a.reload, nil without routes). A SIGHUP must never end serve (its default action would): with
// nothing to reload it is logged and ignored.
func handleReloads(ctx context.Context, reload <-chan os.Signal, certs *server.TLS, a *app, logger *slog.Logger) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case sig := <-reload:
			if certs == nil && a.reload == nil {
				logger.Info("signal received; nothing to reload", "signal", sig.String())
				continue
			}
			if certs != nil {
				logger.Info("signal received; reloading the TLS certificate", "signal", sig.String())
				_ = certs.Reload("SIGHUP") // a refusal is logged; the running certificate stays
			}
			if a.reload == nil {
				continue
			}
			logger.Info("signal received; reloading routes", "signal", sig.String())
			if err := a.reload(ctx); err != nil {
				logger.Error("reload failed; the running routes are unchanged", "error", err)
			}
		}
	}
}

// openStore opens (and migrates) the configured store.
func openStore(ctx context.Context, cfg *config.Config, logger *slog.Logger) (*store.Store, error) {
	return store.Open(ctx, storeConfig(cfg), logger)
}

func storeConfig(cfg *config.Config) store.Config {
	return store.Config{
		DSN:               cfg.Store.DSN,
		SQLiteSynchronous: cfg.Store.SQLiteSynchronous,
		BusyTimeout:       cfg.Store.BusyTimeout,
		MaxOpenConns:      cfg.Store.MaxOpenConns,
	}
}

// openExistingStore is openStore for a command that works on what serve left (replay, forget-sent): a
// SQLite file that is not there is an error saying so, not a new empty database made as a side effect
// (replay without --config once created ./koppelpoort-data/koppelpoort.db in the examples' checkout).
func openExistingStore(ctx context.Context, cfg *config.Config, f serveFlags) (*store.Store, error) {
	c := storeConfig(cfg)
	c.Existing = true
	st, err := store.Open(ctx, c, slog.New(slog.DiscardHandler))
	if errors.Is(err, store.ErrNoStore) {
		return nil, fmt.Errorf("%w%s", err, embeddedDefaultNote(f))
	}
	return st, err
}

// loopback reports whether a listen address only accepts local connections.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/spf13/cobra"
	"golang.org/x/sync/errgroup"
)

type serveFlags struct {
	configPath string
	addr       string
	dsn        string
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
the environment (KOPPELPOORT_ADDR, KOPPELPOORT_DSN), and the flags.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := loadConfig(f, os.Getenv)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, cfg, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML)")
	cmd.Flags().StringVar(&f.addr, "addr", "", "listen address (default 127.0.0.1:8080; env KOPPELPOORT_ADDR)")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
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
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// serve runs everything until ctx is cancelled (SIGINT/SIGTERM).
func serve(ctx context.Context, cfg *config.Config, stdout, stderr io.Writer) error {
	logger := newLogger(cfg.Log, stderr)
	slog.SetDefault(logger)

	st, err := store.Open(ctx, store.Config{
		DSN:               cfg.Store.DSN,
		SQLiteSynchronous: cfg.Store.SQLiteSynchronous,
		BusyTimeout:       cfg.Store.BusyTimeout,
		MaxOpenConns:      cfg.Store.MaxOpenConns,
	}, logger)
	if err != nil {
		return err
	}
	defer st.Close()
	logger.Info("store ready", "dialect", string(st.Dialect()), "dsn", redactDSN(cfg.Store.DSN))

	reg := server.NewRegistry()
	registerStoreMetrics(reg, st)
	app, err := buildApp(ctx, cfg, st, logger, reg, stdout)
	if err != nil {
		return err
	}
	defer app.close()

	srv := server.New(server.Options{
		Addr:            cfg.Server.Addr,
		Logger:          logger,
		Registry:        reg,
		Ready:           st.Ready,
		Mounts:          app.mounts,
		ReadTimeout:     cfg.Server.ReadTimeout,
		WriteTimeout:    cfg.Server.WriteTimeout,
		ShutdownTimeout: cfg.Server.ShutdownTimeout,
	})

	g, gctx := errgroup.WithContext(ctx)
	for _, run := range app.workers {
		g.Go(func() error { return run(gctx) })
	}
	g.Go(func() error {
		return srv.Run(gctx, nil)
	})
	err = g.Wait()
	logger.Info("stopped")
	if err != nil && ctx.Err() == nil {
		return err
	}
	return nil
}

// redactDSN hides the password of a postgres:// URL for logs.
func redactDSN(dsn string) string {
	if !strings.Contains(dsn, "://") {
		return dsn
	}
	scheme, rest, _ := strings.Cut(dsn, "://")
	creds, host, ok := strings.Cut(rest, "@")
	if !ok {
		return dsn
	}
	user, _, _ := strings.Cut(creds, ":")
	return fmt.Sprintf("%s://%s:***@%s", scheme, user, host)
}

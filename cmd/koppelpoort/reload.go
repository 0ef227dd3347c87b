package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/notify"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
)

// watchInterval is how often the route files are looked at; a change is applied once the files have stayed
// the same for one more look (an editor that writes a file in steps is not caught half-way).
var watchInterval = time.Second

// startRoutes provisions the routes (a busy listen port fails serve here) and adds them to the app, with
// reload (SIGHUP) and a watcher that reloads when a route file changes.
func (a *app) startRoutes(ctx context.Context, cfg *config.Config, rs []*routes.Route, st *store.Store, kt *koppeltaal.Service,
	push *notify.Notifier, logger *slog.Logger, reg prometheus.Registerer) error {
	base := runtime.Config{Store: st, Koppeltaal: kt, Logger: logger, Registerer: reg, RequestLog: a.requestLog}
	// The built-in Koppeltaal route runs beside the gateway routes (a reload leaves it alone): its webhook
	// output is delivered by the same worker, retries and dead letters as theirs.
	var builtin []*routes.Route
	if push != nil {
		brt, err := runtime.NewKoppeltaal(ctx, base, push.Input(), push.Webhook(),
			routes.RetryPolicy{MaxAttempts: notify.MaxAttempts, Backoff: notify.Backoff, MaxBackoff: notify.MaxBackoff})
		if err != nil {
			return fmt.Errorf("the built-in koppeltaal route: %w", err)
		}
		a.closers = append(a.closers, brt.Close)
		a.workers = append(a.workers, brt.Run)
		builtin = brt.Routes()
	}
	set, err := runtime.NewSet(ctx, base, rs)
	if err != nil {
		return err // strictyaml.Diagnostics: every problem with file:line:col
	}
	// The routes this server runs, the Koppeltaal server's own first: in the log and on /metrics.
	announce := func(rs []*routes.Route) error { return runtime.Announce(logger, reg, runtime.Describe(kt != nil, rs)) }
	if err := announce(rs); err != nil {
		set.Close()
		return fmt.Errorf("announce routes: %w", err)
	}
	a.closers = append(a.closers, set.Close)
	// Backlog and failing outputs of the running routes: gauges on /metrics and the /readyz check "routes".
	health := runtime.NewHealth(st, func() []*routes.Route { return append(slices.Clone(builtin), set.Routes()...) }, logger)
	if err := reg.Register(health); err != nil {
		return fmt.Errorf("route health metrics: %w", err)
	}
	a.checks = append(a.checks, server.Check{Name: "routes", Fn: health.Check})
	if len(cfg.Routes) == 0 {
		return nil
	}
	rl := &reloader{patterns: cfg.RoutePatterns(), set: set, log: logger, announce: announce}
	rl.applied, _ = fingerprint(rl.patterns)
	a.mounts = append(a.mounts, set)
	// `koppelpoort replay` asks this server to replay (the one holding the lease, among those on the store):
	// the route files are applied first, so a fix saved a moment ago is what the records run on.
	serveReplays := func(ctx context.Context) error {
		return runtime.ServeReplayRequests(ctx, st, logger, 0, rl.reloadIfChanged)
	}
	a.workers = append(a.workers, set.Run, rl.watch, serveReplays)
	a.reload = rl.reload
	return nil
}

// reloadIfChanged reloads when the route files differ from those last applied (the watcher may not have
// looked yet).
func (rl *reloader) reloadIfChanged(ctx context.Context) error {
	fp, err := fingerprint(rl.patterns)
	rl.mu.Lock()
	applied := rl.applied
	rl.mu.Unlock()
	if err == nil && fp == applied {
		return nil
	}
	rl.log.Info("route files changed; reloading before a replay")
	return rl.reload(ctx)
}

// reloader re-reads the route files and applies them to the running set: the whole new set is loaded and
// checked first, and a set with any problem changes nothing (every problem is logged with its position).
type reloader struct {
	mu       sync.Mutex // one reload at a time (SIGHUP and the watcher)
	patterns []string
	set      *runtime.Set
	log      *slog.Logger
	applied  string // fingerprint of the files last applied (or found broken)
	announce func([]*routes.Route) error
}

func (rl *reloader) reload(ctx context.Context) error {
	rl.mu.Lock()
	defer rl.mu.Unlock()
	fp, _ := fingerprint(rl.patterns)
	rl.applied = fp
	rs, err := routes.LoadFiles(rl.patterns...)
	if err != nil {
		var ds strictyaml.Diagnostics
		if errors.As(err, &ds) {
			for _, d := range ds {
				if d.Severity == strictyaml.SevError {
					rl.log.Error("route reload refused: a route file has a problem; the running routes are unchanged",
						"file", d.File, "line", d.Line, "column", d.Column, "problem", d.Message)
				}
			}
		}
		return fmt.Errorf("route files not valid; nothing changed:\n%w", err)
	}
	if len(rs) == 0 {
		return fmt.Errorf("routes: %v match no route files; nothing changed", rl.patterns)
	}
	ch, err := rl.set.Apply(ctx, rs)
	revs := rl.set.Revisions()
	for _, name := range append(append([]string{}, ch.Started...), ch.Replaced...) {
		rl.log.Info("route running", "route", name, "revision", revs[name])
	}
	for _, name := range ch.Stopped {
		rl.log.Info("route stopped: no longer in the route files", "route", name)
	}
	rl.log.Info("routes reloaded", "change", ch.String())
	if aerr := rl.announce(rl.set.Routes()); aerr != nil {
		rl.log.Warn("route info not updated", "error", aerr)
	}
	return err
}

// watch reloads when the route files change: a file edited, added or removed.
func (rl *reloader) watch(ctx context.Context) error {
	t := time.NewTicker(watchInterval)
	defer t.Stop()
	pending := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		fp, err := fingerprint(rl.patterns)
		rl.mu.Lock()
		applied := rl.applied
		rl.mu.Unlock()
		if err != nil || fp == applied {
			pending = ""
			continue
		}
		if fp != pending { // changed since the last look: wait until it holds still
			pending = fp
			continue
		}
		pending = ""
		rl.log.Info("route files changed; reloading")
		if err := rl.reload(ctx); err != nil {
			rl.log.Error("reload failed", "error", err)
		}
	}
}

// fingerprint hashes the names and contents of the files the patterns match.
func fingerprint(patterns []string) (string, error) {
	files, _ := routes.MatchFiles(patterns...)
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s\x00%d\x00", f, len(b))
		h.Write(b)
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

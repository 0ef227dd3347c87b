package main

import (
	"context"
	"io"
	"log/slog"

	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/server"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/prometheus/client_golang/prometheus"
)

// app is what serve runs: HTTP handlers to mount and background workers.
type app struct {
	mounts  []server.Mounter
	workers []func(ctx context.Context) error
}

// buildApp provisions the Koppeltaal configuration and assembles the API and
// the gateway routes on the open store.
func buildApp(ctx context.Context, cfg *config.Config, st *store.Store, logger *slog.Logger, reg prometheus.Registerer, stdout io.Writer) (*app, error) {
	a := &app{}
	return a, nil
}

package runtime

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/store"
)

// RouteInfo describes a route as `koppelpoort serve` lists it at start and on /metrics
// (koppelpoort_route_info).
type RouteInfo struct {
	Name     string
	Revision string
	// Input, Rule and Outputs say where records come from, what decides and where they go.
	Input   string
	Rule    string
	Outputs []string
	// Builtin marks the Koppeltaal server's own route.
	Builtin bool
}

// KoppeltaalInfo is the built-in route as serve lists it: the Koppeltaal server is one of the routes.
//
//   - inbound: the Mailbox API — POST /FHIR/Koppeltaal/Mailbox (koppeltaal/api) and the gateway's local
//     Koppeltaal outputs (adapters/koppeltaal, in their routing transaction) — both through the mailbox
//     port koppeltaal.Service: Check (no writes) → Accept on a store transaction → Reply;
//   - rule: deliver to every application instance of the sender's domain subscribed to the event
//     (store.Tx.Subscribers, inside Accept);
//   - outbound: the per-instance mailboxes — one queue row per subscriber, written in the same
//     transaction as the message (store.Tx.Accept), read by GetNextNewAndClaim (koppeltaal.Service.Claim)
//     and by local Koppeltaal inputs (koppeltaal.Service.TakeTx) — the live stream (koppeltaal/notify), and
//     the output "webhook": a delivery per queue row of an instance with a webhook, made by this package's
//     delivery worker like any route output (NewKoppeltaal).
var KoppeltaalInfo = RouteInfo{
	Name:     store.KoppeltaalRoute,
	Revision: routes.BuiltinRevision,
	Input:    "koppeltaal.mailbox (POST /FHIR/Koppeltaal/Mailbox; local koppeltaal outputs)",
	Rule:     "every instance of the sender's domain subscribed to the event",
	Outputs: []string{"koppeltaal.mailboxes (per-instance queues)", "koppeltaal.stream (live stream)",
		store.WebhookOutput + "=" + webhookID},
	Builtin: true,
}

// Registration ids of the built-in route's parts (not in the adapter registry: route files cannot name them).
const (
	mailboxID = "inbound.koppeltaal.mailbox"
	webhookID = "outbound.koppeltaal.webhook"
)

// NewKoppeltaal returns the Runtime of the built-in Koppeltaal route (cfg.Routes is ignored; the route's
// name is reserved for it). Its input is koppeltaal/notify's scan of the mailboxes, which records a delivery
// for the output "webhook" (store.WebhookOutput) per queue row of an instance with a webhook; webhook
// makes the call. The runtime leases, retries per retry (SPEC.md §13.1: at most 5 attempts) and
// dead-letters those deliveries like any route's, so a failing webhook shows in replay, the dead-letter
// views, /readyz and the route gauges; a replayed dead letter comes back through the route's topic and
// becomes a delivery again. Without cfg.Lease a delivery is leased for a minute (a webhook call times out
// after 10 s).
func NewKoppeltaal(ctx context.Context, cfg Config, input adapters.Inbound, webhook adapters.Outbound, retry routes.RetryPolicy) (*Runtime, error) {
	r, err := routes.Builtin(store.KoppeltaalRoute,
		routes.Component{Name: "input", Registration: adapters.Registration{ID: mailboxID}, Adapter: input},
		[]routes.Component{{Name: store.WebhookOutput, Registration: adapters.Registration{ID: webhookID}, Adapter: webhook}},
		retry)
	if err != nil {
		return nil, err
	}
	if cfg.Lease <= 0 {
		cfg.Lease = time.Minute
	}
	cfg.Routes = []*routes.Route{r}
	return New(ctx, cfg)
}

// Describe lists the routes a server runs: the built-in Koppeltaal route when it serves Koppeltaal
// domains, then the gateway routes.
func Describe(koppeltaal bool, rs []*routes.Route) []RouteInfo {
	var out []RouteInfo
	if koppeltaal {
		out = append(out, KoppeltaalInfo)
	}
	for _, r := range rs {
		info := RouteInfo{Name: r.Name, Revision: r.Revision, Input: r.Input.Registration.ID, Rule: "rules of " + r.File}
		for _, o := range r.Outputs {
			info.Outputs = append(info.Outputs, o.Name+"="+o.Registration.ID)
		}
		out = append(out, info)
	}
	return out
}

// Announce logs each route and publishes it as koppelpoort_route_info{route, revision, input, outputs,
// builtin} = 1 on reg (nil: not published).
func Announce(log *slog.Logger, reg prometheus.Registerer, infos []RouteInfo) error {
	var g *prometheus.GaugeVec
	if reg != nil {
		g = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "koppelpoort_route_info",
			Help: "The routes this server runs (value 1): the built-in Koppeltaal route and the gateway routes."},
			[]string{"route", "revision", "input", "outputs", "builtin"})
		if err := reg.Register(g); err != nil {
			var are prometheus.AlreadyRegisteredError
			if !errors.As(err, &are) {
				return err
			}
			// Announced again after a reload: the same series, with the routes as they are now.
			g = are.ExistingCollector.(*prometheus.GaugeVec)
			g.Reset()
		}
	}
	for _, r := range infos {
		outs := strings.Join(r.Outputs, ",")
		builtin := "false"
		if r.Builtin {
			builtin = "true"
		}
		log.Info("route", "route", r.Name, "revision", r.Revision, "input", r.Input, "rule", r.Rule, "outputs", outs, "builtin", r.Builtin)
		if g != nil {
			g.WithLabelValues(r.Name, r.Revision, r.Input, outs, builtin).Set(1)
		}
	}
	return nil
}

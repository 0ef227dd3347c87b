package runtime

import (
	"errors"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/koppelpoort/koppelpoort/routes"
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

// KoppeltaalRoute is the built-in route: the Koppeltaal server is one of the routes.
//
//   - inbound: the Mailbox API — POST /FHIR/Koppeltaal/Mailbox (koppeltaal/api) and the gateway's local
//     Koppeltaal outputs (adapters/koppeltaal, in their routing transaction) — both through the mailbox
//     port koppeltaal.Service: Check (no writes) → Accept on a store transaction → Reply;
//   - rule: deliver to every application instance of the sender's domain subscribed to the event
//     (store.Tx.Subscribers, inside Accept);
//   - outbound: the per-instance mailboxes — one queue row per subscriber, written in the same
//     transaction as the message (store.Tx.Accept), read by GetNextNewAndClaim (koppeltaal.Service.Claim)
//     and by local Koppeltaal inputs (koppeltaal.Service.TakeTx) — and the instances' webhooks and live
//     stream (koppeltaal/notify), fed from those queue rows.
var KoppeltaalRoute = RouteInfo{
	Name:    "koppeltaal",
	Input:   "koppeltaal.mailbox (POST /FHIR/Koppeltaal/Mailbox; local koppeltaal outputs)",
	Rule:    "every instance of the sender's domain subscribed to the event",
	Outputs: []string{"koppeltaal.mailboxes (per-instance queues)", "koppeltaal.notify (webhooks, live stream)"},
	Builtin: true,
}

// Describe lists the routes a server runs: the built-in Koppeltaal route when it serves Koppeltaal
// domains, then the gateway routes.
func Describe(koppeltaal bool, rs []*routes.Route) []RouteInfo {
	var out []RouteInfo
	if koppeltaal {
		out = append(out, KoppeltaalRoute)
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

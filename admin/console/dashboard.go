package console

import (
	"context"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// Window is how far back the dashboard's per-minute charts go.
const Window = 30 * time.Minute

// Dashboard is what /console/api/dashboard answers: per domain and instance
// in the caller's scope the queue depth by status, messages posted, received,
// claimed and failed per minute, webhook health; and, for system
// administrators, each gateway route's state in the store (waiting dead
// letters, the last one's reason, open deliveries) with this process's counters.
//
// Every number is read from what the server recorded: posted from the
// messages, received from the queue entries made in the window, claimed and
// failed from the audit trail's record of each claim and each Failed
// acknowledgement (of any message, however old), queue depth from the queue.
type Dashboard struct {
	Generated string            `json:"generated"`
	Minutes   []int64           `json:"minutes"` // Unix seconds of each minute of the window
	Domains   []DomainDashboard `json:"domains"`
	Routes    []RouteCounters   `json:"routes"`
}

// DomainDashboard is one domain's part.
type DomainDashboard struct {
	Name      string              `json:"name"`
	Phase     string              `json:"phase"`
	Posted    []int               `json:"posted"` // per minute of Minutes
	Instances []InstanceDashboard `json:"instances"`
}

// InstanceDashboard is one instance's part.
type InstanceDashboard struct {
	ID          int64          `json:"id"`
	Username    string         `json:"username"`
	Application string         `json:"application"`
	Active      bool           `json:"active"`
	Queue       map[string]int `json:"queue"`
	Received    []int          `json:"received"`
	Claimed     []int          `json:"claimed"`
	Failed      []int          `json:"failed"`
	Webhook     *WebhookState  `json:"webhook,omitempty"`
}

// WebhookState is an instance's webhook health.
type WebhookState struct {
	URL         string `json:"url"`
	Pending     int    `json:"pending"`
	Failed      int    `json:"failed"`
	LastError   string `json:"last_error,omitempty"`
	LastErrorAt string `json:"last_error_at,omitempty"`
}

// RouteCounters are one gateway route's state: from the store (every process sharing it) the dead letters
// waiting for a replay, the latest one's reason and time, and deliveries not done; and this process's
// counters since it started.
type RouteCounters struct {
	Route       string  `json:"route"`
	In          float64 `json:"in"`
	Delivered   float64 `json:"delivered"`
	Dropped     float64 `json:"dropped"`
	DeadLetters float64 `json:"dead_letters"`
	Retries     float64 `json:"retries"`
	// Waiting is the route's dead letters not replayed yet; LastError the latest one's reason.
	Waiting     int    `json:"waiting"`
	LastError   string `json:"last_error,omitempty"`
	LastErrorAt string `json:"last_error_at,omitempty"`
	// Pending is the deliveries not done yet, Retrying those of them that failed before.
	Pending  int `json:"pending"`
	Retrying int `json:"retrying"`
}

func (c *Console) dashboard(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	now := time.Now()
	start := now.Add(-Window).Truncate(time.Minute)
	d := Dashboard{Generated: now.UTC().Format(time.RFC3339)}
	index := map[int64]int{}
	for i, m := 0, start; !m.After(now); i, m = i+1, m.Add(time.Minute) {
		d.Minutes = append(d.Minutes, m.Unix())
		index[m.Unix()] = i
	}
	series := func() []int { return make([]int, len(d.Minutes)) }
	bump := func(s []int, us int64) {
		if i, ok := index[time.UnixMicro(us).Truncate(time.Minute).Unix()]; ok {
			s[i]++
		}
	}
	err := c.st.View(ctx, func(tx *store.Tx) error {
		domains, insts, err := c.api.Visible(ctx, tx)
		if err != nil {
			return err
		}
		ids := make([]int64, len(insts))
		for i, in := range insts {
			ids[i] = in.ID
		}
		depth, err := tx.QueueDepth(ctx, ids)
		if err != nil {
			return err
		}
		hooks, err := tx.WebhookHealthOf(ctx)
		if err != nil {
			return err
		}
		for _, dom := range domains {
			dd := DomainDashboard{Name: dom.Name, Phase: dom.DTAPPhase, Posted: series()}
			posted, err := tx.PostedPerMinute(ctx, dom.ID, start.UnixMicro())
			if err != nil {
				return err
			}
			for _, p := range posted {
				if i, ok := index[p.Minute]; ok {
					dd.Posted[i] = p.N
				}
			}
			recent, err := tx.RecentEntries(ctx, dom.ID, start.UnixMicro())
			if err != nil {
				return err
			}
			byInst := map[int64]*InstanceDashboard{}
			for _, in := range insts {
				if in.DomainID != dom.ID {
					continue
				}
				id := &InstanceDashboard{ID: in.ID, Username: in.Username, Application: in.AppIdent, Active: !in.Disabled(),
					Queue: depth[in.ID], Received: series(), Claimed: series(), Failed: series()}
				if in.WebhookURL != "" {
					id.Webhook = &WebhookState{URL: in.WebhookURL}
					if h := hooks[in.ID]; h != nil {
						id.Webhook.Pending, id.Webhook.Failed, id.Webhook.LastError = h.Pending, h.Failed, h.LastError
						if h.LastErrorAt > 0 {
							id.Webhook.LastErrorAt = time.UnixMicro(h.LastErrorAt).UTC().Format(time.RFC3339)
						}
					}
				}
				byInst[in.ID] = id
				dd.Instances = append(dd.Instances, *id)
			}
			for _, e := range recent {
				if id := byInst[e.InstanceID]; id != nil { // else not in the caller's scope
					bump(id.Received, e.CreatedAt)
				}
			}
			for _, id := range byInst {
				if err := perMinute(ctx, tx, id.Username, audit.ActionClaim, "", start, index, id.Claimed); err != nil {
					return err
				}
				if err := perMinute(ctx, tx, id.Username, audit.ActionAck, store.StatusFailed, start, index, id.Failed); err != nil {
					return err
				}
			}
			for i := range dd.Instances {
				dd.Instances[i] = *byInst[dd.Instances[i].ID]
			}
			if len(dd.Instances) > 0 || len(domains) == 1 {
				d.Domains = append(d.Domains, dd)
			}
		}
		return nil
	})
	if err != nil {
		c.log.Error("console: dashboard", "err", err)
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "the dashboard could not be read; the error is logged"})
		return
	}
	if p := admin.PrincipalFrom(r.Context()); p != nil && p.Scope().All {
		if d.Routes, err = c.routes(ctx); err != nil {
			c.log.Error("console: dashboard routes", "err", err)
		}
	}
	writeJSON(w, http.StatusOK, d)
}

// perMinute fills series (one slot per minute of index) with the trail's records of action by actor.
func perMinute(ctx context.Context, tx *store.Tx, actor, action, detail string, start time.Time, index map[int64]int, series []int) error {
	counts, err := tx.AuditPerMinute(ctx, actor, action, detail, start.UnixMicro())
	if err != nil {
		return err
	}
	for _, m := range counts {
		if i, ok := index[m.Minute]; ok {
			series[i] = m.N
		}
	}
	return nil
}

// routes merges each route's state in the store with this process's counters.
func (c *Console) routes(ctx context.Context) ([]RouteCounters, error) {
	byRoute := map[string]*RouteCounters{}
	for _, rc := range c.routeCounters() {
		byRoute[rc.Route] = &rc
	}
	var health []store.RouteHealth
	err := c.st.View(ctx, func(tx *store.Tx) error {
		var err error
		health, err = tx.RoutesHealth(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	for _, h := range health {
		rc := byRoute[h.Route]
		if rc == nil {
			rc = &RouteCounters{Route: h.Route}
			byRoute[h.Route] = rc
		}
		rc.Waiting, rc.LastError, rc.Pending, rc.Retrying = h.DeadLetters, h.LastError, h.Pending, h.RetryPending
		if h.LastErrorAt > 0 {
			rc.LastErrorAt = time.UnixMicro(h.LastErrorAt).UTC().Format(time.RFC3339)
		}
	}
	out := make([]RouteCounters, 0, len(byRoute))
	for _, rc := range byRoute {
		out = append(out, *rc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out, nil
}

// routeCounters reads the gateway's koppelpoort_route_* counters of this process.
func (c *Console) routeCounters() []RouteCounters {
	if c.gather == nil {
		return nil
	}
	mfs, err := c.gather.Gather()
	if err != nil {
		return nil
	}
	byRoute := map[string]*RouteCounters{}
	for _, mf := range mfs {
		name := mf.GetName()
		if !strings.HasPrefix(name, "koppelpoort_route_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			route := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "route" {
					route = l.GetValue()
				}
			}
			if route == "" || m.GetCounter() == nil {
				continue
			}
			rc := byRoute[route]
			if rc == nil {
				rc = &RouteCounters{Route: route}
				byRoute[route] = rc
			}
			v := m.GetCounter().GetValue()
			switch name {
			case "koppelpoort_route_records_in_total":
				rc.In += v
			case "koppelpoort_route_deliveries_out_total":
				rc.Delivered += v
			case "koppelpoort_route_records_dropped_total":
				rc.Dropped += v
			case "koppelpoort_route_dead_letters_total":
				rc.DeadLetters += v
			case "koppelpoort_route_delivery_retries_total":
				rc.Retries += v
			}
		}
	}
	out := make([]RouteCounters, 0, len(byRoute))
	for _, rc := range byRoute {
		out = append(out, *rc)
	}
	return out
}

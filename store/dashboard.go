package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
)

// Queue depth statuses: what is still to be done or went wrong (Success and
// ReplacedByNewVersion are history and are not counted).
var depthStatuses = []string{StatusNew, StatusClaimed, StatusFailed, StatusMaximumRetriesExceeded}

// QueueDepth counts the open queue entries per instance and status (index
// queue_claim: one range per instance and status, whatever the history).
func (t *Tx) QueueDepth(ctx context.Context, instanceIDs []int64) (map[int64]map[string]int, error) {
	out := map[int64]map[string]int{}
	if len(instanceIDs) == 0 {
		return out, nil
	}
	var rows []struct {
		Instance int64  `db:"instance_id"`
		Status   string `db:"status"`
		N        int    `db:"n"`
	}
	q, args := inQueryInt(`SELECT instance_id, status, COUNT(*) AS n FROM queue WHERE instance_id IN (?)
		AND status IN ('New', 'Claimed', 'Failed', 'MaximumRetriesExceeded') GROUP BY instance_id, status`, nil, instanceIDs)
	if err := t.sel(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("queue depth: %w", err)
	}
	for _, id := range instanceIDs {
		out[id] = map[string]int{}
		for _, s := range depthStatuses {
			out[id][s] = 0
		}
	}
	for _, r := range rows {
		out[r.Instance][r.Status] = r.N
	}
	return out, nil
}

// MinuteCount is a number of events in the minute starting at Minute (Unix seconds).
type MinuteCount struct {
	Minute int64 `db:"minute"`
	N      int   `db:"n"`
}

// PostedPerMinute counts the messages posted in domainID per minute since
// (Unix µs), from the index messages_domain_created.
func (t *Tx) PostedPerMinute(ctx context.Context, domainID, since int64) ([]MinuteCount, error) {
	var out []MinuteCount
	err := t.sel(ctx, &out, `SELECT (created_at / 60000000) * 60 AS minute, COUNT(*) AS n FROM messages
		WHERE domain_id = ? AND created_at >= ? GROUP BY created_at / 60000000 ORDER BY 1`, domainID, since)
	if err != nil {
		return nil, fmt.Errorf("posted per minute: %w", err)
	}
	return out, nil
}

// RecentEntry is a queue entry of a message posted in a recent window, with its status history.
type RecentEntry struct {
	InstanceID    int64  `db:"instance_id"`
	CreatedAt     int64  `db:"created_at"`
	StatusHistory string `db:"status_history"`
}

// RecentEntries returns the queue entries of the messages posted in domainID
// since (Unix µs): the first such message is one seek in
// messages_domain_created, its entries and the later ones a range of queue_message.
func (t *Tx) RecentEntries(ctx context.Context, domainID, since int64) ([]RecentEntry, error) {
	var first int64
	if err := t.get(ctx, &first, `SELECT COALESCE((SELECT id FROM messages WHERE domain_id = ? AND created_at >= ?
		ORDER BY created_at LIMIT 1), 0)`, domainID, since); err != nil {
		return nil, fmt.Errorf("recent entries: %w", err)
	}
	if first == 0 {
		return nil, nil
	}
	var out []RecentEntry
	if err := t.sel(ctx, &out, `SELECT instance_id, created_at, status_history FROM queue
		WHERE message_id >= ? AND domain_id = ?`, first, domainID); err != nil {
		return nil, fmt.Errorf("recent entries: %w", err)
	}
	return out, nil
}

// WebhookHealth is the state of one instance's webhook deliveries.
type WebhookHealth struct {
	Pending, Failed int
	LastError       string
	LastErrorAt     int64
}

// WebhookHealthOf reports waiting (pending or in flight) and dead deliveries of the built-in route's
// webhook output and the latest error per instance (index route_deliveries_due; the instance is in the
// delivery's record, as koppeltaal/notify writes it).
func (t *Tx) WebhookHealthOf(ctx context.Context) (map[int64]*WebhookHealth, error) {
	var rows []struct {
		Record    string `db:"record"`
		Status    string `db:"status"`
		LastError string `db:"last_error"`
		UpdatedAt int64  `db:"updated_at"`
	}
	if err := t.sel(ctx, &rows, `SELECT record, status, last_error, updated_at FROM route_deliveries
		WHERE route = ? AND status IN ('pending', 'inflight', 'dead') AND output = ?`, KoppeltaalRoute, WebhookOutput); err != nil {
		return nil, fmt.Errorf("webhook health: %w", err)
	}
	out := map[int64]*WebhookHealth{}
	for _, r := range rows {
		var rec struct {
			Fields struct {
				Instance string `json:"instance_id"`
			} `json:"fields"`
		}
		if err := json.Unmarshal([]byte(r.Record), &rec); err != nil {
			continue // not a webhook delivery notify wrote
		}
		instance, err := strconv.ParseInt(rec.Fields.Instance, 10, 64)
		if err != nil {
			continue
		}
		h := out[instance]
		if h == nil {
			h = &WebhookHealth{}
			out[instance] = h
		}
		if r.Status == DeliveryDead {
			h.Failed++
		} else {
			h.Pending++
		}
		if r.LastError != "" && r.UpdatedAt > h.LastErrorAt {
			h.LastError, h.LastErrorAt = r.LastError, r.UpdatedAt
		}
	}
	return out, nil
}

// AuditPerMinute counts the audit trail's successful records of action by actor (an instance user name)
// per minute since (Unix µs), only those with detail when it is not "" (an acknowledgement's status):
// what the dashboard charts as claims and failures, of any message, from the record of each one (index
// audit_events_actor: one range per instance).
func (t *Tx) AuditPerMinute(ctx context.Context, actor, action, detail string, since int64) ([]MinuteCount, error) {
	q := `SELECT (at / 60000000) * 60 AS minute, COUNT(*) AS n FROM audit_events
		WHERE actor = ? AND at >= ? AND action = ? AND result = 'ok'`
	args := []any{actor, since, action}
	if detail != "" {
		q, args = q+` AND detail = ?`, append(args, detail)
	}
	var out []MinuteCount
	if err := t.sel(ctx, &out, q+` GROUP BY at / 60000000 ORDER BY 1`, args...); err != nil {
		return nil, fmt.Errorf("%s per minute of %s: %w", action, actor, err)
	}
	return out, nil
}

// RouteHealth is one gateway route's state in the store: dead letters waiting for a replay, the latest one's
// reason and time, and deliveries not done yet.
type RouteHealth struct {
	Route        string `db:"route"`
	DeadLetters  int    `db:"dead_letters"`
	LastError    string `db:"last_error"`
	LastErrorAt  int64  `db:"last_error_at"`
	Pending      int    `db:"pending"`
	RetryPending int    `db:"retrying"`
}

// RoutesHealth reports every route with waiting dead letters or open deliveries (indexes
// route_dead_letters_route and route_deliveries_due), ordered by route.
func (t *Tx) RoutesHealth(ctx context.Context) ([]RouteHealth, error) {
	var dead []struct {
		Route     string `db:"route"`
		N         int    `db:"n"`
		LastAt    int64  `db:"last_at"`
		LastError string `db:"reason"`
	}
	if err := t.sel(ctx, &dead, `SELECT d.route, c.n, d.created_at AS last_at, d.reason FROM route_dead_letters d
		JOIN (SELECT route, COUNT(*) AS n, MAX(created_at) AS last_at FROM route_dead_letters WHERE replayed_at IS NULL GROUP BY route) c
			ON c.route = d.route AND c.last_at = d.created_at
		WHERE d.replayed_at IS NULL ORDER BY d.route`); err != nil {
		return nil, fmt.Errorf("route dead letters: %w", err)
	}
	var open []struct {
		Route    string `db:"route"`
		Pending  int    `db:"pending"`
		Retrying int    `db:"retrying"`
	}
	if err := t.sel(ctx, &open, `SELECT route, COUNT(*) AS pending, SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) AS retrying
		FROM route_deliveries WHERE status IN ('pending', 'inflight') GROUP BY route`); err != nil {
		return nil, fmt.Errorf("route deliveries: %w", err)
	}
	byRoute := map[string]*RouteHealth{}
	for _, d := range dead {
		if byRoute[d.Route] == nil { // two dead letters at the same time: the first one's reason
			byRoute[d.Route] = &RouteHealth{Route: d.Route, DeadLetters: d.N, LastError: d.LastError, LastErrorAt: d.LastAt}
		}
	}
	for _, o := range open {
		h := byRoute[o.Route]
		if h == nil {
			h = &RouteHealth{Route: o.Route}
			byRoute[o.Route] = h
		}
		h.Pending, h.RetryPending = o.Pending, o.Retrying
	}
	out := make([]RouteHealth, 0, len(byRoute))
	for _, h := range byRoute {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Route < out[j].Route })
	return out, nil
}

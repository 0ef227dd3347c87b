package store

import (
	"context"
	"fmt"
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

// WebhookHealthOf reports pending and failed deliveries and the latest error
// per instance (index webhook_deliveries_due on status).
func (t *Tx) WebhookHealthOf(ctx context.Context) (map[int64]*WebhookHealth, error) {
	var rows []struct {
		Instance  int64  `db:"instance_id"`
		Status    string `db:"status"`
		LastError string `db:"last_error"`
		UpdatedAt int64  `db:"updated_at"`
	}
	if err := t.sel(ctx, &rows, `SELECT instance_id, status, last_error, updated_at FROM webhook_deliveries
		WHERE status IN ('pending', 'failed')`); err != nil {
		return nil, fmt.Errorf("webhook health: %w", err)
	}
	out := map[int64]*WebhookHealth{}
	for _, r := range rows {
		h := out[r.Instance]
		if h == nil {
			h = &WebhookHealth{}
			out[r.Instance] = h
		}
		if r.Status == "failed" {
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

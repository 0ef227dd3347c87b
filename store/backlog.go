package store

import (
	"context"
	"fmt"
)

// MailboxBacklog is what waits in one application instance's mailbox: messages in status New and the time
// the oldest of them was queued (unix microseconds; 0 when nothing waits).
type MailboxBacklog struct {
	Domain   string `db:"domain"`
	Instance string `db:"username"`
	Waiting  int64  `db:"waiting"`
	Oldest   int64  `db:"oldest"`
}

// MailboxBacklogs returns the backlog of every application instance, by domain and user name. The count
// and the oldest row are index range reads on queue_claim (instance_id, status, id).
func (t *Tx) MailboxBacklogs(ctx context.Context) ([]MailboxBacklog, error) {
	var out []MailboxBacklog
	err := t.sel(ctx, &out, `SELECT d.name AS domain, i.username AS username,
		(SELECT COUNT(*) FROM queue q WHERE q.instance_id = i.id AND q.status = ?) AS waiting,
		COALESCE((SELECT q.created_at FROM queue q WHERE q.instance_id = i.id AND q.status = ? ORDER BY q.id LIMIT 1), 0) AS oldest
		FROM app_instances i JOIN domains d ON d.id = i.domain_id ORDER BY d.name, i.username`, StatusNew, StatusNew)
	if err != nil {
		return nil, fmt.Errorf("read mailbox backlogs: %w", err)
	}
	return out, nil
}

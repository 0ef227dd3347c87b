package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// job is one claimed delivery with what the call needs.
type job struct {
	ID         int64  `db:"id"`
	QueueID    int64  `db:"queue_id"`
	Attempts   int    `db:"attempts"`
	URL        string `db:"webhook_url"`
	Headers    string `db:"webhook_headers"`
	Username   string `db:"username"`
	Domain     string `db:"domain"`
	Identifier string `db:"message_identifier"`
}

const batch = 16

// deliverDue claims up to batch due deliveries (a lease keeps other processes
// off them), calls the webhooks in parallel and records the outcomes.
func (n *Notifier) deliverDue(ctx context.Context) (int, error) {
	now := time.Now()
	lease := now.Add(2 * n.o.Client.Timeout)
	if n.o.Client.Timeout == 0 {
		lease = now.Add(time.Minute)
	}
	var jobs []job
	err := n.st.Update(ctx, func(tx *store.Tx) error {
		lock := ""
		if tx.Dialect() == store.Postgres {
			lock = " FOR UPDATE SKIP LOCKED"
		}
		var ids []int64
		if err := tx.Select(ctx, &ids, `SELECT id FROM webhook_deliveries WHERE status = 'pending' AND next_attempt_at <= ?
			AND lease_until <= ? ORDER BY id LIMIT ?`+lock, now.UnixMicro(), now.UnixMicro(), batch); err != nil {
			return fmt.Errorf("find due deliveries: %w", err)
		}
		for _, id := range ids {
			var j job
			if _, err := tx.Exec(ctx, "UPDATE webhook_deliveries SET lease_until = ?, attempts = attempts + 1, updated_at = ? WHERE id = ?",
				lease.UnixMicro(), now.UnixMicro(), id); err != nil {
				return fmt.Errorf("lease delivery %d: %w", id, err)
			}
			if err := tx.Get(ctx, &j, `SELECT d.id, d.queue_id, d.attempts, i.webhook_url, i.webhook_headers, i.username,
				dm.name AS domain, COALESCE(m.message_identifier, '') AS message_identifier
				FROM webhook_deliveries d JOIN app_instances i ON i.id = d.instance_id JOIN domains dm ON dm.id = i.domain_id
				LEFT JOIN queue q ON q.id = d.queue_id LEFT JOIN messages m ON m.id = q.message_id WHERE d.id = ?`, id); err != nil {
				return fmt.Errorf("read delivery %d: %w", id, err)
			}
			jobs = append(jobs, j)
		}
		return nil
	})
	if err != nil || len(jobs) == 0 {
		return 0, err
	}
	var wg sync.WaitGroup
	results := make([]error, len(jobs))
	for i := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = n.call(ctx, jobs[i])
		}()
	}
	wg.Wait()
	done := time.Now()
	stopping := ctx.Err() != nil
	// Record the outcomes even when ctx ended (shutdown): otherwise the leases
	// would hold the notifications back until they expire.
	dbctx := context.WithoutCancel(ctx)
	err = n.st.Update(dbctx, func(tx *store.Tx) error {
		for i, j := range jobs {
			var q string
			var args []any
			switch {
			case results[i] != nil && stopping:
				// Interrupted by shutdown: not an attempt; the next process retries at once.
				q, args = "UPDATE webhook_deliveries SET attempts = attempts - 1, lease_until = 0, updated_at = ? WHERE id = ?",
					[]any{done.UnixMicro(), j.ID}
			case results[i] == nil:
				q, args = "UPDATE webhook_deliveries SET status = 'delivered', lease_until = 0, last_error = '', updated_at = ? WHERE id = ?",
					[]any{done.UnixMicro(), j.ID}
			case j.Attempts >= n.o.MaxAttempts:
				q, args = "UPDATE webhook_deliveries SET status = 'failed', lease_until = 0, last_error = ?, updated_at = ? WHERE id = ?",
					[]any{results[i].Error(), done.UnixMicro(), j.ID}
			default:
				q, args = "UPDATE webhook_deliveries SET next_attempt_at = ?, lease_until = 0, last_error = ?, updated_at = ? WHERE id = ?",
					[]any{done.Add(n.backoff(j.Attempts)).UnixMicro(), results[i].Error(), done.UnixMicro(), j.ID}
			}
			if _, err := tx.Exec(dbctx, q, args...); err != nil {
				return fmt.Errorf("record outcome of delivery %d: %w", j.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	for i, j := range jobs {
		switch {
		case results[i] != nil && stopping:
			n.log.Info("notify: webhook call interrupted by shutdown; it will be retried", "instance", j.Username, "queue_id", j.QueueID)
		case results[i] == nil:
			n.metrics.deliveries.WithLabelValues("delivered").Inc()
			n.log.Info("notify: webhook delivered", "instance", j.Username, "queue_id", j.QueueID, "attempt", j.Attempts)
		case j.Attempts >= n.o.MaxAttempts:
			n.metrics.deliveries.WithLabelValues("failed").Inc()
			n.log.Error("notify: webhook failed, giving up", "instance", j.Username, "queue_id", j.QueueID,
				"attempts", j.Attempts, "err", results[i])
		default:
			n.metrics.deliveries.WithLabelValues("retry").Inc()
			n.log.Warn("notify: webhook failed, will retry", "instance", j.Username, "queue_id", j.QueueID,
				"attempt", j.Attempts, "retry_in", n.backoff(j.Attempts).String(), "err", results[i])
		}
	}
	return len(jobs), nil
}

// backoff is the delay after failed attempt number attempt (1-based).
func (n *Notifier) backoff(attempt int) time.Duration {
	d := n.o.Backoff
	for i := 1; i < attempt && d < n.o.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, n.o.MaxBackoff)
}

// Category is the webhook Category header (SPEC.md §13.1) in the FHIR tag
// syntax: the domain's security tag. The spec's printed form is garbled
// (§17 item 30); this is the well-formed reading of it.
func Category(domain string) string {
	return fmt.Sprintf(`http://ggz.koppeltaal.nl/fhir/Koppeltaal/Domain#%s; scheme="http://hl7.org/fhir/tag/security"; label="%s"`, domain, domain)
}

// call makes one webhook call: POST, no body, the headers of SPEC.md §13.1.
// Any 2xx is success.
func (n *Notifier) call(ctx context.Context, j job) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.URL, http.NoBody)
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Category", Category(j.Domain))
	req.Header.Set("KoppeltaalMessageIdentifier", j.Identifier)
	req.Header.Set("User-Agent", "Koppelpoort-Webhook/1")
	if j.Headers != "" {
		var hs map[string]string
		if err := json.Unmarshal([]byte(j.Headers), &hs); err != nil {
			return fmt.Errorf("webhook headers of %s: %w", j.Username, err)
		}
		for k, v := range hs {
			req.Header.Set(k, v)
		}
	}
	start := time.Now()
	resp, err := n.o.Client.Do(req)
	n.metrics.latency.Observe(time.Since(start).Seconds())
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL: it may carry a secret in its query
		}
		return fmt.Errorf("webhook call to %s: %w", req.URL.Host, err)
	}
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered %s", resp.Status)
	}
	return nil
}

package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/store"
)

// Webhook is the built-in route's output "webhook": one call per delivery the scan recorded (or a replay
// brought back). Every failed call is transient: the route worker retries it per the route's policy
// (MaxAttempts) and then parks it as a dead letter.
func (n *Notifier) Webhook() adapters.Outbound { return webhook{n} }

type webhook struct{ n *Notifier }

// target is what one call needs, read when it is made (a changed URL or header applies to the next attempt).
type target struct {
	URL        string `db:"webhook_url"`
	Headers    string `db:"webhook_headers"`
	Username   string `db:"username"`
	Domain     string `db:"domain"`
	Identifier string `db:"message_identifier"`
}

// Deliver calls the webhook of the delivery's instance for its queue row. An instance whose webhook was
// removed meanwhile is not called (nothing to deliver); one that no longer exists dead-letters the delivery.
func (w webhook) Deliver(ctx context.Context, d adapters.Delivery) error {
	queueID, err1 := strconv.ParseInt(fmt.Sprint(d.Fields["queue_id"]), 10, 64)
	instance, err2 := strconv.ParseInt(fmt.Sprint(d.Fields["instance_id"]), 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("webhook delivery %s names no queue row and instance: %w", d.IdempotencyKey, err)
	}
	var t target
	err := w.n.st.View(ctx, func(tx *store.Tx) error {
		// The queue row may be gone (retention): the call is made without its identifier, as before.
		return tx.Get(ctx, &t, `SELECT i.webhook_url, i.webhook_headers, i.username, dm.name AS domain,
			COALESCE((SELECT m.message_identifier FROM queue q JOIN messages m ON m.id = q.message_id WHERE q.id = ?), '') AS message_identifier
			FROM app_instances i JOIN domains dm ON dm.id = i.domain_id WHERE i.id = ?`, queueID, instance)
	})
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("webhook of instance %d: the instance no longer exists", instance)
	case err != nil:
		return adapters.Transient(fmt.Errorf("webhook of instance %d: %w", instance, err))
	case t.URL == "":
		w.n.log.Info("notify: webhook removed before the call; nothing to notify", "instance", t.Username, "queue_id", queueID)
		return nil
	}
	if err := w.n.call(ctx, t); err != nil {
		return adapters.Transient(fmt.Errorf("webhook of %s: %w", t.Username, err))
	}
	return nil
}

// Category is the webhook Category header (SPEC.md §13.1) in the FHIR tag
// syntax: the domain's security tag. The spec's printed form is garbled
// (§17 item 30); this is the well-formed reading of it.
func Category(domain string) string {
	return fmt.Sprintf(`http://ggz.koppeltaal.nl/fhir/Koppeltaal/Domain#%s; scheme="http://hl7.org/fhir/tag/security"; label="%s"`, domain, domain)
}

// call makes one webhook call: POST, no body, the headers of SPEC.md §13.1.
// Any 2xx is success.
func (n *Notifier) call(ctx context.Context, t target) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, http.NoBody)
	if err != nil {
		return fmt.Errorf("webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Category", Category(t.Domain))
	req.Header.Set("KoppeltaalMessageIdentifier", t.Identifier)
	req.Header.Set("User-Agent", "Koppelpoort-Webhook/1")
	if t.Headers != "" {
		var hs map[string]string
		if err := json.Unmarshal([]byte(t.Headers), &hs); err != nil {
			return fmt.Errorf("webhook headers of %s: %w", t.Username, err)
		}
		for k, v := range hs {
			req.Header.Set(k, v)
		}
	}
	resp, err := n.o.Client.Do(req)
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

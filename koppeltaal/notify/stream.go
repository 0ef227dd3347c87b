package notify

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
)

// StreamPath is the live stream under the FHIR base.
const StreamPath = "/_stream"

// Extension wakes the notifier after every accepted write in the FHIR API and
// serves the live stream. It adds middleware, so pass it in
// api.Options.Extensions before extensions that add routes.
func (n *Notifier) Extension(s *api.Server, r chi.Router) {
	r.Use(n.wakeAfterWrites)
	r.Get(StreamPath, s.Auth(n.stream(s)))
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (n *Notifier) wakeAfterWrites(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost && r.Method != http.MethodPut {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 || sw.status < 300 {
			n.Wake()
		}
	})
}

// Announcement is the data of a NewMessage event on the stream.
type Announcement struct {
	ID         int64  `json:"id"`         // queue entry: [base]/MessageHeader/<id>
	Event      string `json:"event"`      // message event code
	Identifier string `json:"identifier"` // MessageHeader.identifier
	Patient    string `json:"patient,omitempty"`
}

// stream serves Server-Sent Events: "NewMessage" for every message queued for
// the caller (only the token's patient for a Bearer caller) after the
// connection opened, or after Last-Event-ID when the client reconnects. The
// event carries no message: the client claims it with GetNextNewAndClaim.
func (n *Notifier) stream(s *api.Server) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		c := api.CallerFrom(r)
		ctx := r.Context()
		rc := http.NewResponseController(w)
		_ = rc.SetWriteDeadline(time.Time{}) // a stream outlives the server's write timeout
		cursor, err := n.cursor(r, c)
		if err != nil {
			s.WriteError(w, r, err)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store") // announcements name patients
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		fmt.Fprintf(w, "retry: 2000\nevent: ready\ndata: {\"instance\":%q}\n\n", c.Username)
		_ = rc.Flush()
		poll := time.NewTicker(n.o.PollInterval)
		defer poll.Stop()
		beat := time.NewTicker(25 * time.Second)
		defer beat.Stop()
		recheck := time.NewTicker(n.o.RecheckInterval)
		defer recheck.Stop()
		var expired <-chan time.Time
		if !c.TokenExpiresAt.IsZero() {
			t := time.NewTimer(time.Until(c.TokenExpiresAt))
			defer t.Stop()
			expired = t.C
		}
		epoch := n.st.Epoch()
		for {
			changed := n.changed()
			var anns []Announcement
			anns, cursor, err = n.since(r, c, cursor)
			if err != nil {
				n.log.Error("notify: stream query failed", "instance", c.Username, "err", err)
				return
			}
			for _, a := range anns {
				b, _ := json.Marshal(a)
				fmt.Fprintf(w, "id: %d\nevent: NewMessage\ndata: %s\n\n", a.ID, b)
			}
			if len(anns) > 0 {
				if err := rc.Flush(); err != nil {
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-n.stopped:
				return
			case <-changed:
			case <-expired:
				closeStream(w, rc, "The access token expired.")
				return
			case <-recheck.C:
				if reason := n.stillValid(s, r, c, epoch); reason != "" {
					n.log.Info("notify: stream closed", "instance", c.Username, "reason", reason)
					closeStream(w, rc, reason)
					return
				}
			case <-poll.C:
			case <-beat.C:
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return
				}
				if err := rc.Flush(); err != nil {
					return
				}
			}
		}
	}
}

// stillValid re-checks the caller of an open stream (issue 16 item 5): its
// credentials must still stand for the same instance and patient, and the
// database must be the one the cursor counts in (store.Epoch). It returns why
// the stream must end, or "".
func (n *Notifier) stillValid(s *api.Server, r *http.Request, c *koppeltaal.Caller, epoch uint64) string {
	now, err := s.Recheck(r)
	var expired *api.TokenExpiredError
	switch {
	case errors.As(err, &expired):
		return "The access token expired."
	case errors.Is(err, koppeltaal.ErrUnauthorized):
		return "The credentials are no longer valid (token replaced or revoked, instance removed or password changed)."
	case err != nil:
		n.log.Warn("notify: stream re-check failed; trying again", "instance", c.Username, "err", err)
		return ""
	case now.ID != c.ID || now.Patient != c.Patient:
		return "The credentials now stand for another caller."
	case n.st.Epoch() != epoch:
		return "The database changed; reconnect."
	}
	return ""
}

// closeStream tells the client why the stream ends (an EventSource reconnects
// by itself and then gets the 401 of its credentials).
func closeStream(w http.ResponseWriter, rc *http.ResponseController, reason string) {
	b, _ := json.Marshal(map[string]string{"reason": reason})
	fmt.Fprintf(w, "event: closed\ndata: %s\n\n", b)
	_ = rc.Flush()
}

// cursor is where the stream starts: Last-Event-ID, or the caller's newest
// queue row — also when Last-Event-ID is beyond it: a database that lost its
// last rows (failover, restore) hands those ids out again, and they must be
// announced.
func (n *Notifier) cursor(r *http.Request, c *koppeltaal.Caller) (int64, error) {
	var last int64
	err := n.st.View(r.Context(), func(tx *store.Tx) error {
		return tx.Get(r.Context(), &last, "SELECT COALESCE(MAX(id), 0) FROM queue WHERE instance_id = ?", c.ID)
	})
	if err != nil {
		return 0, fmt.Errorf("stream cursor for %s: %w", c.Username, err)
	}
	if v := r.Header.Get("Last-Event-ID"); v != "" {
		if id, err := strconv.ParseInt(v, 10, 64); err == nil && id >= 0 {
			return min(id, last), nil
		}
	}
	return last, nil
}

// since returns the caller's New entries after cursor and the new cursor.
func (n *Notifier) since(r *http.Request, c *koppeltaal.Caller, cursor int64) ([]Announcement, int64, error) {
	var rows []struct {
		ID         int64  `db:"id"`
		Event      string `db:"event"`
		Identifier string `db:"message_identifier"`
		Patient    string `db:"patient_ref"`
	}
	q := `SELECT q.id, q.event, m.message_identifier, q.patient_ref FROM queue q JOIN messages m ON m.id = q.message_id
		WHERE q.instance_id = ? AND q.id > ? AND q.status = 'New'`
	args := []any{c.ID, cursor}
	if c.Patient != "" {
		q += " AND q.patient_ref = ?"
		args = append(args, c.Patient)
	}
	err := n.st.View(r.Context(), func(tx *store.Tx) error {
		return tx.Select(r.Context(), &rows, q+" ORDER BY q.id LIMIT 500", args...)
	})
	if err != nil {
		return nil, cursor, fmt.Errorf("stream query for %s: %w", c.Username, err)
	}
	out := make([]Announcement, len(rows))
	for i, row := range rows {
		out[i] = Announcement{ID: row.ID, Event: row.Event, Identifier: row.Identifier, Patient: row.Patient}
		cursor = row.ID
	}
	return out, cursor, nil
}

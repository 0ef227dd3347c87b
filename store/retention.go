package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// Automatic data removal (SPEC.md §10): message settings, expiring a message
// (its body goes, its row and queue entries stay, marked expired), keeping the
// resource store's contents, and finding what is due.

// DomainMessageSetting is DomainMessageSettings for one domain and event.
type DomainMessageSetting struct {
	Event           string `db:"event"`
	MaxAgeDays      int    `db:"max_age_days"` // 0: the global maximum
	RetainOnSuccess bool   `db:"retain_on_success"`
}

// ApplicationMessageSetting is ApplicationMessageSettings for one application and event.
type ApplicationMessageSetting struct {
	Event              string `db:"event"`
	RetainmentRequired bool   `db:"retainment_required"`
}

// SetDomainMessageSettings replaces the settings of domainID.
func (t *Tx) SetDomainMessageSettings(ctx context.Context, domainID int64, settings []DomainMessageSetting) error {
	if _, err := t.exec(ctx, "DELETE FROM domain_message_settings WHERE domain_id = ?", domainID); err != nil {
		return fmt.Errorf("replace message settings of domain %d: %w", domainID, err)
	}
	for _, st := range settings {
		if _, err := t.exec(ctx, `INSERT INTO domain_message_settings (domain_id, event, max_age_days, retain_on_success)
			VALUES (?, ?, ?, ?)`, domainID, st.Event, st.MaxAgeDays, st.RetainOnSuccess); err != nil {
			return fmt.Errorf("store message setting %s of domain %d: %w", st.Event, domainID, err)
		}
	}
	return nil
}

// SetApplicationMessageSettings replaces the settings of applicationID.
func (t *Tx) SetApplicationMessageSettings(ctx context.Context, applicationID int64, settings []ApplicationMessageSetting) error {
	if _, err := t.exec(ctx, "DELETE FROM application_message_settings WHERE application_id = ?", applicationID); err != nil {
		return fmt.Errorf("replace message settings of application %d: %w", applicationID, err)
	}
	for _, st := range settings {
		if _, err := t.exec(ctx, `INSERT INTO application_message_settings (application_id, event, retainment_required)
			VALUES (?, ?, ?)`, applicationID, st.Event, st.RetainmentRequired); err != nil {
			return fmt.Errorf("store message setting %s of application %d: %w", st.Event, applicationID, err)
		}
	}
	return nil
}

// DomainMessageSettings lists every domain's settings (the removal job's per-domain passes).
func (t *Tx) DomainMessageSettings(ctx context.Context) (map[int64][]DomainMessageSetting, error) {
	var rows []struct {
		DomainID int64 `db:"domain_id"`
		DomainMessageSetting
	}
	if err := t.sel(ctx, &rows, "SELECT domain_id, event, max_age_days, retain_on_success FROM domain_message_settings ORDER BY domain_id, event"); err != nil {
		return nil, fmt.Errorf("read domain message settings: %w", err)
	}
	out := map[int64][]DomainMessageSetting{}
	for _, r := range rows {
		out[r.DomainID] = append(out[r.DomainID], r.DomainMessageSetting)
	}
	return out, nil
}

// ApplicationMessageSettings lists every application's settings, by application id.
func (t *Tx) ApplicationMessageSettings(ctx context.Context) (map[int64][]ApplicationMessageSetting, error) {
	var rows []struct {
		ApplicationID int64 `db:"application_id"`
		ApplicationMessageSetting
	}
	if err := t.sel(ctx, &rows, "SELECT application_id, event, retainment_required FROM application_message_settings ORDER BY application_id, event"); err != nil {
		return nil, fmt.Errorf("read application message settings: %w", err)
	}
	out := map[int64][]ApplicationMessageSetting{}
	for _, r := range rows {
		out[r.ApplicationID] = append(out[r.ApplicationID], r.ApplicationMessageSetting)
	}
	return out, nil
}

// TouchDomain bumps the row version of domain id if it is still version (a change of its message
// settings alone is a change of the domain for optimistic locking); otherwise ErrStaleVersion.
func (t *Tx) TouchDomain(ctx context.Context, id, version int64) error {
	return t.touch(ctx, "domains", id, version)
}

// TouchApplication is TouchDomain for an application.
func (t *Tx) TouchApplication(ctx context.Context, id, version int64) error {
	return t.touch(ctx, "applications", id, version)
}

func (t *Tx) touch(ctx context.Context, table string, id, version int64) error {
	res, err := t.exec(ctx, "UPDATE "+table+" SET row_version = row_version + 1, updated_at = ? WHERE id = ? AND row_version = ?",
		micros(time.Now()), id, version)
	if err != nil {
		return fmt.Errorf("update %s %d: %w", table, id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("%s %d: %w", table, id, ErrStaleVersion)
	}
	return nil
}

// appRetainsSQL is true when an application with an instance in the message's
// domain must keep messages of its event (SPEC.md §10.2, first step of both procedures).
const appRetainsSQL = `EXISTS (SELECT 1 FROM application_message_settings ams
	JOIN app_instances i ON i.application_id = ams.application_id
	WHERE i.domain_id = m.domain_id AND ams.event = m.event AND ams.retainment_required)`

// Retirement is what an acknowledgement needs to decide whether the body of
// its message goes now (SPEC.md §10.2, on a status change).
type Retirement struct {
	Removable bool // every recipient has Success and no setting retains the message
	Message   Message
	Format    string // the body, when Removable
	Body      []byte
}

// CheckRetirement reads, for an acknowledgement that just set one entry of
// message id to Success, whether every recipient has Success now, no
// application in the domain retains the event and the domain does not keep
// fully retrieved messages of the event — and if so the body, whose resources
// the resource store must keep (KeepResourceContent) before ExpireMessage. On
// PostgreSQL the message row is locked first (sent with the check, no round
// trip of its own), so the last two concurrent acknowledgements of a message
// do not each miss the other's Success.
func (t *Tx) CheckRetirement(ctx context.Context, id int64) (Retirement, error) {
	if t.dialect == Postgres {
		if err := t.queue(ctx, "SELECT 1 FROM messages WHERE id = ? FOR NO KEY UPDATE", id); err != nil {
			return Retirement{}, err
		}
	}
	var row struct {
		Message
		Removable bool   `db:"removable"`
		Format    string `db:"format"`
		Body      []byte `db:"body"`
	}
	err := t.get(ctx, &row, `SELECT x.*, COALESCE(b.format, '') AS format, b.body FROM (
		SELECT `+messageCols+`, (NOT m.is_expired
			AND NOT EXISTS (SELECT 1 FROM queue q WHERE q.message_id = m.id AND q.status <> 'Success')
			AND NOT EXISTS (SELECT 1 FROM domain_message_settings d WHERE d.domain_id = m.domain_id AND d.event = m.event AND d.retain_on_success)
			AND NOT `+appRetainsSQL+`) AS removable
		FROM messages m WHERE m.id = ?) x
		LEFT JOIN message_bodies b ON b.id = x.body_id AND x.removable`, id)
	if err != nil {
		return Retirement{}, fmt.Errorf("retention check of message %d: %w", id, err)
	}
	body, err := decodeBody(row.Body)
	if err != nil {
		return Retirement{}, fmt.Errorf("retention check of message %d: %w", id, err)
	}
	return Retirement{Removable: row.Removable, Message: row.Message, Format: row.Format, Body: body}, nil
}

// ExpireMessage removes body bodyID of message id and marks the message and
// all its queue entries expired; a message already expired is left as it is.
// The caller keeps the resource contents first (KeepResourceContent), in the
// same transaction. The statements need no answer: on PostgreSQL they go with
// the transaction's next statement or COMMIT.
func (t *Tx) ExpireMessage(ctx context.Context, id, bodyID int64) error {
	if err := t.queue(ctx, "UPDATE messages SET is_expired = TRUE, body_id = NULL WHERE id = ? AND is_expired = FALSE", id); err != nil {
		return fmt.Errorf("expire message %d: %w", id, err)
	}
	if bodyID != 0 {
		if err := t.queue(ctx, "DELETE FROM message_bodies WHERE id = ?", bodyID); err != nil {
			return fmt.Errorf("remove body of message %d: %w", id, err)
		}
	}
	if err := t.queue(ctx, "UPDATE queue SET is_expired = TRUE WHERE message_id = ? AND is_expired = FALSE", id); err != nil {
		return fmt.Errorf("expire queue entries of message %d: %w", id, err)
	}
	return nil
}

// ResourceContent is a resource as a message body holds it.
type ResourceContent struct {
	URL     string // unversioned
	Version string
	Content []byte // the resource as DSTU1 JSON
}

// KeepResourceContent copies the content of each resource whose current
// version is rc.Version into the resource store (resources.content), so the
// resource outlives the body that held it (SPEC.md §10.1). A resource that has
// moved on to a newer version is left alone: a newer body holds it.
func (t *Tx) KeepResourceContent(ctx context.Context, domainID int64, rcs []ResourceContent) error {
	for _, rc := range rcs {
		if err := t.queue(ctx, "UPDATE resources SET content = ? WHERE domain_id = ? AND url = ? AND current_version = ?",
			rc.Content, domainID, rc.URL, rc.Version); err != nil {
			return fmt.Errorf("keep content of %s: %w", rc.URL, err)
		}
	}
	return nil
}

// StoredResourceContent returns the content the resource store keeps for url
// (nil while the issuing message's body still holds it).
func (t *Tx) StoredResourceContent(ctx context.Context, domainID int64, url string) (version string, content []byte, err error) {
	var row struct {
		Version string `db:"current_version"`
		Content []byte `db:"content"`
	}
	err = t.get(ctx, &row, "SELECT current_version, content FROM resources WHERE domain_id = ? AND url = ?", domainID, url)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil, fmt.Errorf("resource %s: %w", url, ErrNotFound)
	}
	return row.Version, row.Content, err
}

// DueMessage is a message the removal job may expire, with its body.
type DueMessage struct {
	ID        int64  `db:"id"`
	BodyID    int64  `db:"body_id"`
	DomainID  int64  `db:"domain_id"`
	Event     string `db:"event"`
	CreatedAt int64  `db:"created_at"`
	Format    string `db:"format"`
	Body      []byte `db:"body"`
}

// DueQuery selects messages still holding a body, created before Before, in
// (created_at, id) order after the cursor, and not retained by an application
// setting. DomainID/Event narrow it to one domain setting (0/"": all).
type DueQuery struct {
	Before       int64
	AfterCreated int64
	AfterID      int64
	DomainID     int64
	Event        string
	Limit        int
}

// DueMessages reads a batch for the removal job from the read pool (the
// bodies are parsed outside the writer).
func (s *Store) DueMessages(ctx context.Context, q DueQuery) ([]DueMessage, error) {
	where := "m.is_expired = FALSE AND m.created_at < ? AND (m.created_at > ? OR (m.created_at = ? AND m.id > ?))"
	args := []any{q.Before, q.AfterCreated, q.AfterCreated, q.AfterID}
	if q.DomainID != 0 {
		where += " AND m.domain_id = ? AND m.event = ?"
		args = append(args, q.DomainID, q.Event)
	}
	args = append(args, q.Limit)
	var out []DueMessage
	err := s.View(ctx, func(tx *Tx) error {
		return tx.sel(ctx, &out, `SELECT m.id, COALESCE(m.body_id, 0) AS body_id, m.domain_id, m.event, m.created_at, COALESCE(b.format, '') AS format, b.body
			FROM messages m LEFT JOIN message_bodies b ON b.id = m.body_id
			WHERE `+where+` AND NOT `+appRetainsSQL+` ORDER BY m.created_at, m.id LIMIT ?`, args...)
	})
	if err != nil {
		return nil, fmt.Errorf("find messages due for removal: %w", err)
	}
	for i := range out {
		if out[i].Body, err = decodeBody(out[i].Body); err != nil {
			return nil, fmt.Errorf("find messages due for removal: message %d: %w", out[i].ID, err)
		}
	}
	return out, nil
}

// OldestRetainedBody returns the creation time (Unix µs) of the oldest message
// that still has its body; ok is false when there is none.
func (s *Store) OldestRetainedBody(ctx context.Context) (createdAt int64, ok bool, err error) {
	var v sql.NullInt64
	err = s.View(ctx, func(tx *Tx) error {
		return tx.get(ctx, &v, "SELECT MIN(created_at) FROM messages WHERE is_expired = FALSE")
	})
	return v.Int64, v.Valid, err
}

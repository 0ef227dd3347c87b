package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Processing statuses of a queue entry (SPEC.md §5.1).
const (
	StatusNew                    = "New"
	StatusClaimed                = "Claimed"
	StatusSuccess                = "Success"
	StatusFailed                 = "Failed"
	StatusReplacedByNewVersion   = "ReplacedByNewVersion"
	StatusMaximumRetriesExceeded = "MaximumRetriesExceeded"
)

// LockDomainVersion locks the domain row for the rest of the transaction and
// returns the last version issued in it. Versions are issued under this lock,
// so they increase strictly even with several processes on PostgreSQL. POSTs
// use LockForPost instead (no domain-wide lock on PostgreSQL); this lock is for
// ActivityDefinitions.
func (t *Tx) LockDomainVersion(ctx context.Context, domainID int64) (string, error) {
	q := "SELECT last_version FROM domains WHERE id = ?"
	if t.dialect == Postgres {
		// NO KEY UPDATE: serialises version writers like FOR UPDATE, but does not
		// conflict with the KEY SHARE locks that concurrent POSTs' foreign keys
		// (messages, queue, resources → domains) take on the same row.
		q += " FOR NO KEY UPDATE"
	}
	var v string
	if err := t.get(ctx, &v, q, domainID); err != nil {
		return "", fmt.Errorf("lock domain %d version: %w", domainID, err)
	}
	return v, nil
}

// SetDomainVersion records the last version issued in the domain.
func (t *Tx) SetDomainVersion(ctx context.Context, domainID int64, v string) error {
	if _, err := t.exec(ctx, "UPDATE domains SET last_version = ? WHERE id = ?", v, domainID); err != nil {
		return fmt.Errorf("set domain %d version: %w", domainID, err)
	}
	return nil
}

// Resource is the current state of one versioned resource in a domain.
type Resource struct {
	ID             int64  `db:"id"`
	URL            string `db:"url"`
	ResourceType   string `db:"resource_type"`
	CurrentVersion string `db:"current_version"`
	ContentHash    string `db:"content_hash"`
}

// Resources returns the known resources of domainID among urls, keyed by URL.
func (t *Tx) Resources(ctx context.Context, domainID int64, urls []string) (map[string]Resource, error) {
	out := make(map[string]Resource, len(urls))
	if len(urls) == 0 {
		return out, nil
	}
	for _, c := range chunks(len(urls), 1, 1) {
		q, args, err := inQuery("SELECT id, url, resource_type, current_version, content_hash FROM resources WHERE domain_id = ? AND url IN (?)",
			domainID, urls[c[0]:c[1]])
		if err != nil {
			return nil, err
		}
		var rs []Resource
		if err := t.sel(ctx, &rs, q, args...); err != nil {
			return nil, fmt.Errorf("look up resources: %w", err)
		}
		for _, r := range rs {
			out[r.URL] = r
		}
	}
	return out, nil
}

// resourcesSQLPG is Resources on PostgreSQL: one statement text whatever the number of URLs.
const resourcesSQLPG = `SELECT id, url, resource_type, current_version, content_hash FROM resources
	WHERE domain_id = $1 AND url = ANY($2::text[])`

// ResourceVersion is a new version of a resource to store.
type ResourceVersion struct {
	DomainID     int64
	URL          string
	ResourceType string
	Version      string
	ContentHash  string
	InstanceID   int64
	MessageID    int64 // the message that issued the version; its body holds the resource as routed
}

// PutResourceVersion stores a new version and makes it current (one upsert
// plus one insert: this runs for every resource of every posted message).
func (t *Tx) PutResourceVersion(ctx context.Context, rv ResourceVersion) error {
	now := micros(time.Now())
	id, err := t.insertID(ctx, `INSERT INTO resources (domain_id, url, resource_type, current_version, content_hash,
		created_at, updated_at, last_modified_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (domain_id, url) DO UPDATE SET current_version = excluded.current_version,
		content_hash = excluded.content_hash, updated_at = excluded.updated_at, last_modified_by = excluded.last_modified_by,
		content = NULL`,
		rv.DomainID, rv.URL, rv.ResourceType, rv.Version, rv.ContentHash, now, now, nullID(rv.InstanceID))
	if err != nil {
		return fmt.Errorf("store resource %s: %w", rv.URL, err)
	}
	if _, err := t.exec(ctx, `INSERT INTO resource_versions (resource_id, version, message_id, created_at)
		VALUES (?, ?, ?, ?)`, id, rv.Version, nullID(rv.MessageID), now); err != nil {
		return fmt.Errorf("store version %s of %s: %w", rv.Version, rv.URL, err)
	}
	return nil
}

// PutResourceVersions is PutResourceVersion for several resources of one
// message: one upsert and one insert however many resources (URLs must be
// distinct). This runs for every posted message.
func (t *Tx) PutResourceVersions(ctx context.Context, rvs []ResourceVersion) error {
	switch len(rvs) {
	case 0:
		return nil
	case 1:
		return t.PutResourceVersion(ctx, rvs[0])
	}
	now := micros(time.Now())
	for _, c := range chunks(len(rvs), 8, 0) { // thousands of resources: several statements (maxBinds)
		if err := t.putResourceVersions(ctx, rvs[c[0]:c[1]], now); err != nil {
			return err
		}
	}
	return nil
}

func (t *Tx) putResourceVersions(ctx context.Context, rvs []ResourceVersion, now int64) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO resources (domain_id, url, resource_type, current_version, content_hash,
		created_at, updated_at, last_modified_by) VALUES `)
	args := make([]any, 0, 8*len(rvs))
	for i, rv := range rvs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?)")
		args = append(args, rv.DomainID, rv.URL, rv.ResourceType, rv.Version, rv.ContentHash, now, now, nullID(rv.InstanceID))
	}
	b.WriteString(` ON CONFLICT (domain_id, url) DO UPDATE SET current_version = excluded.current_version,
		content_hash = excluded.content_hash, updated_at = excluded.updated_at, last_modified_by = excluded.last_modified_by,
		content = NULL
		RETURNING id, url`)
	var rows []struct {
		ID  int64  `db:"id"`
		URL string `db:"url"`
	}
	if err := t.sel(ctx, &rows, b.String(), args...); err != nil {
		return fmt.Errorf("store %d resources: %w", len(rvs), err)
	}
	ids := make(map[string]int64, len(rows))
	for _, r := range rows {
		ids[r.URL] = r.ID
	}
	b.Reset()
	b.WriteString(`INSERT INTO resource_versions (resource_id, version, message_id, created_at) VALUES `)
	args = args[:0]
	for i, rv := range rvs {
		id, ok := ids[rv.URL]
		if !ok {
			return fmt.Errorf("store resource %s: no id returned", rv.URL)
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?)")
		args = append(args, id, rv.Version, nullID(rv.MessageID), now)
	}
	if _, err := t.exec(ctx, b.String(), args...); err != nil {
		return fmt.Errorf("store versions of %d resources: %w", len(rvs), err)
	}
	return nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// Message is the metadata of one posted message.
type Message struct {
	ID                int64  `db:"id"`
	DomainID          int64  `db:"domain_id"`
	SenderInstanceID  int64  `db:"sender_instance_id"`
	Event             string `db:"event"`
	MessageIdentifier string `db:"message_identifier"`
	FeedID            string `db:"feed_id"`
	PatientRef        string `db:"patient_ref"`
	FocalRef          string `db:"focal_ref"`
	FocalVersion      string `db:"focal_version"`
	Version           string `db:"version"`
	BodyID            int64  `db:"body_id"`
	IsExpired         bool   `db:"is_expired"`
	CreatedAt         int64  `db:"created_at"`
}

// InsertBody stores a message body and returns its id.
func (t *Tx) InsertBody(ctx context.Context, format string, body []byte) (int64, error) {
	id, err := t.insertID(ctx, "INSERT INTO message_bodies (format, body) VALUES (?, ?)", format, t.encodeBody(body))
	if err != nil {
		return 0, fmt.Errorf("store message body: %w", err)
	}
	return id, nil
}

// Body returns a stored body and its format.
func (t *Tx) Body(ctx context.Context, id int64) (format string, body []byte, err error) {
	var row struct {
		Format string `db:"format"`
		Body   []byte `db:"body"`
	}
	if err := t.get(ctx, &row, "SELECT format, body FROM message_bodies WHERE id = ?", id); err != nil {
		return "", nil, fmt.Errorf("read message body %d: %w", id, err)
	}
	if row.Body, err = decodeBody(row.Body); err != nil {
		return "", nil, fmt.Errorf("read message body %d: %w", id, err)
	}
	return row.Format, row.Body, nil
}

// UpdateBody replaces a stored body (used right after insert, once the message id is known).
func (t *Tx) UpdateBody(ctx context.Context, id int64, body []byte) error {
	if _, err := t.exec(ctx, "UPDATE message_bodies SET body = ? WHERE id = ?", t.encodeBody(body), id); err != nil {
		return fmt.Errorf("update message body %d: %w", id, err)
	}
	return nil
}

// InsertMessage stores message metadata and returns its id.
func (t *Tx) InsertMessage(ctx context.Context, m Message) (int64, error) {
	if m.CreatedAt == 0 {
		m.CreatedAt = micros(time.Now())
	}
	id, err := t.insertID(ctx, `INSERT INTO messages (domain_id, sender_instance_id, event, message_identifier, feed_id,
		patient_ref, focal_ref, focal_version, version, body_id, is_expired, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		m.DomainID, nullID(m.SenderInstanceID), m.Event, m.MessageIdentifier, m.FeedID, m.PatientRef, m.FocalRef,
		m.FocalVersion, m.Version, nullID(m.BodyID), m.IsExpired, m.CreatedAt)
	if err != nil {
		return 0, fmt.Errorf("store message %s: %w", m.MessageIdentifier, err)
	}
	return id, nil
}

// messageCols are the columns of a Message, from messages m.
const messageCols = `m.id, m.domain_id, COALESCE(m.sender_instance_id, 0) AS sender_instance_id, m.event,
	m.message_identifier, m.feed_id, m.patient_ref, m.focal_ref, m.focal_version, m.version, COALESCE(m.body_id, 0) AS body_id,
	m.is_expired, m.created_at`

// MessageByID returns the message metadata.
func (t *Tx) MessageByID(ctx context.Context, id int64) (Message, error) {
	var m Message
	err := t.get(ctx, &m, `SELECT `+messageCols+` FROM messages m WHERE m.id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return m, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	return m, err
}

// CountMessages returns the number of stored messages (all domains).
func (t *Tx) CountMessages(ctx context.Context) (int64, error) {
	var n int64
	err := t.get(ctx, &n, "SELECT COUNT(*) FROM messages")
	return n, err
}

// inQuery expands "IN (?)" for a slice of strings.
func inQuery(q string, first any, list []string) (string, []any, error) {
	if !strings.Contains(q, "IN (?)") {
		return "", nil, errors.New("inQuery: no IN (?)")
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(list)), ", ")
	args := make([]any, 0, len(list)+1)
	args = append(args, first)
	for _, s := range list {
		args = append(args, s)
	}
	return strings.Replace(q, "IN (?)", "IN ("+marks+")", 1), args, nil
}

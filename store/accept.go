package store

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Accepted is everything one accepted POST /Mailbox writes: its body, the
// message, the new resource versions, one New queue entry per recipient (older
// open entries of the same focal resource and event replaced) and the receipt.
type Accepted struct {
	Format string
	Body   []byte
	// Message is stored with its BodyID set to the stored body.
	Message Message
	// Versions get MessageID set to the stored message; URLs must be distinct.
	Versions []ResourceVersion
	// Recipients are the instances that get a queue entry: Message's domain,
	// identifier, event, patient, focal resource and version, created at Message.CreatedAt.
	Recipients []int64
	// Receipt, unless nil, is stored with MessageID set and created at Message.CreatedAt (decision 18).
	Receipt *Receipt
}

// Accept stores a. It returns the message id and the new queue entries' ids in
// the order of a.Recipients.
//
// On PostgreSQL it is one statement — data-modifying CTEs that pass the new
// ids along — so a POST's writes are one round trip whatever the number of
// resources and recipients (arrays keep the statement text, and so its
// prepared plan, the same). On SQLite (in process, no round trips) it runs
// InsertBody, InsertMessage, PutResourceVersions, QueueForAll and InsertReceipt.
func (t *Tx) Accept(ctx context.Context, a Accepted) (messageID int64, entries []int64, err error) {
	if a.Message.CreatedAt == 0 {
		a.Message.CreatedAt = micros(time.Now())
	}
	if t.pg == nil {
		return t.acceptSQLite(ctx, a)
	}
	m := a.Message
	n := len(a.Versions)
	vDomain, vURL, vType, vVersion, vHash, vInst := make([]int64, n), make([]string, n), make([]string, n),
		make([]string, n), make([]string, n), make([]int64, n)
	for i, rv := range a.Versions {
		vDomain[i], vURL[i], vType[i], vVersion[i], vHash[i], vInst[i] = rv.DomainID, rv.URL, rv.ResourceType, rv.Version, rv.ContentHash, rv.InstanceID
	}
	var rcptHash, rcptData string
	if a.Receipt != nil {
		if a.Receipt.RequestHash == "" {
			return 0, nil, fmt.Errorf("accept message %s: receipt without request hash", m.MessageIdentifier)
		}
		rcptHash, rcptData = a.Receipt.RequestHash, strings.Join(a.Receipt.Data, "\n")
	}
	recipients := a.Recipients
	if recipients == nil {
		recipients = []int64{}
	}
	args := []any{
		a.Format, a.Body, // $1, $2
		m.DomainID, nullID(m.SenderInstanceID), m.Event, m.MessageIdentifier, m.FeedID, m.PatientRef, // $3-$8
		m.FocalRef, m.FocalVersion, m.Version, m.IsExpired, m.CreatedAt, // $9-$13
		vDomain, vURL, vType, vVersion, vHash, vInst, // $14-$19
		recipients, rcptHash, rcptData, // $20-$22
	}
	var row struct {
		ID      int64   `db:"id"`
		Entries []int64 `db:"entries"`
	}
	if err := t.pg.query(ctx, acceptSQLPG, args, func(rows pgx.Rows) error { return scanOne(rows, &row) }); err != nil {
		return 0, nil, fmt.Errorf("store message %s: %w", m.MessageIdentifier, err)
	}
	if len(row.Entries) != len(a.Recipients) {
		return 0, nil, fmt.Errorf("store message %s: %d queue entries for %d recipients", m.MessageIdentifier, len(row.Entries), len(a.Recipients))
	}
	return row.ID, row.Entries, nil
}

// acceptSQLPG is Accept's statement. Every sub-statement sees the tables as
// they were before it: the replacement (o) cannot touch the entries q adds.
// Foreign keys are checked at the end of the statement, when all rows exist.
const acceptSQLPG = `WITH
b AS (INSERT INTO message_bodies (format, body) VALUES ($1, $2) RETURNING id),
m AS (INSERT INTO messages (domain_id, sender_instance_id, event, message_identifier, feed_id, patient_ref,
		focal_ref, focal_version, version, body_id, is_expired, created_at)
	SELECT $3, $4, $5, $6, $7, $8, $9, $10, $11, b.id, $12, $13 FROM b RETURNING id),
r AS (INSERT INTO resources (domain_id, url, resource_type, current_version, content_hash, created_at, updated_at,
		last_modified_by)
	SELECT v.domain_id, v.url, v.typ, v.version, v.hash, $13, $13, NULLIF(v.inst, 0)
	FROM unnest($14::bigint[], $15::text[], $16::text[], $17::text[], $18::text[], $19::bigint[])
		AS v(domain_id, url, typ, version, hash, inst)
	ON CONFLICT (domain_id, url) DO UPDATE SET current_version = excluded.current_version,
		content_hash = excluded.content_hash, updated_at = excluded.updated_at, last_modified_by = excluded.last_modified_by,
		content = NULL
	RETURNING id, current_version),
v AS (INSERT INTO resource_versions (resource_id, version, message_id, created_at)
	SELECT r.id, r.current_version, m.id, $13 FROM r, m),
o AS (UPDATE queue SET status = '` + StatusReplacedByNewVersion + `', status_changed_at = $13, claim_deadline = NULL, version = $11
	WHERE $9 <> '' AND focal_ref = $9 AND event = $5 AND instance_id = ANY($20::bigint[])
	AND status NOT IN ('` + StatusSuccess + `', '` + StatusReplacedByNewVersion + `')),
q AS (INSERT INTO queue (domain_id, instance_id, message_id, message_identifier, event, patient_ref, focal_ref, status,
		status_changed_at, version, retry_count, exception, fetched_api_version, created_at)
	SELECT $3, i.id, m.id, $6, $5, $8, $9, '` + StatusNew + `', $13, $11, 0, '', '', $13
	FROM m, unnest($20::bigint[]) WITH ORDINALITY AS i(id, n) ORDER BY i.n
	RETURNING id),
c AS (INSERT INTO post_receipts (sender_instance_id, message_identifier, request_hash, message_id, response_data, created_at)
	SELECT $4, $6, $21, m.id, $22, $13 FROM m WHERE $21 <> '')
SELECT m.id, COALESCE((SELECT array_agg(id ORDER BY id) FROM q), '{}') AS entries FROM m`

func (t *Tx) acceptSQLite(ctx context.Context, a Accepted) (int64, []int64, error) {
	m := a.Message
	bodyID, err := t.InsertBody(ctx, a.Format, a.Body)
	if err != nil {
		return 0, nil, err
	}
	m.BodyID = bodyID
	msgID, err := t.InsertMessage(ctx, m)
	if err != nil {
		return 0, nil, err
	}
	rvs := slices.Clone(a.Versions)
	for i := range rvs {
		rvs[i].MessageID = msgID
	}
	if err := t.PutResourceVersions(ctx, rvs); err != nil {
		return 0, nil, err
	}
	entries, err := t.QueueForAll(ctx, Entry{DomainID: m.DomainID, MessageID: msgID, MessageIdentifier: m.MessageIdentifier,
		Event: m.Event, PatientRef: m.PatientRef, FocalRef: m.FocalRef, Status: StatusNew, StatusChangedAt: m.CreatedAt,
		Version: m.Version, CreatedAt: m.CreatedAt}, a.Recipients)
	if err != nil {
		return 0, nil, err
	}
	if a.Receipt != nil {
		r := *a.Receipt
		r.MessageID, r.CreatedAt = msgID, m.CreatedAt
		if err := t.InsertReceipt(ctx, r); err != nil {
			return 0, nil, err
		}
	}
	return msgID, entries, nil
}

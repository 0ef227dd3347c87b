package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
)

// Entry is one row of an instance's mailbox (SPEC.md §14 ApplicationMessages).
// The message's domain, identifier, event, patient, focal resource and
// created_at are copied into it when it is queued: with them a reader can tell
// the entry's message from another one under a reused message id (issue 15).
type Entry struct {
	ID                int64  `db:"id"`
	DomainID          int64  `db:"domain_id"`
	InstanceID        int64  `db:"instance_id"`
	MessageID         int64  `db:"message_id"`
	MessageIdentifier string `db:"message_identifier"` // the message's MessageHeader.identifier ('' if queued before migration 0027)
	Event             string `db:"event"`
	PatientRef        string `db:"patient_ref"`
	FocalRef          string `db:"focal_ref"`
	Status            string `db:"status"`
	StatusChangedAt   int64  `db:"status_changed_at"`
	Version           string `db:"version"`
	ClaimDeadline     int64  `db:"claim_deadline"`
	RetryCount        int    `db:"retry_count"`
	Exception         string `db:"exception"`
	FetchedAPIVersion string `db:"fetched_api_version"`
	CreatedAt         int64  `db:"created_at"`
	IsExpired         bool   `db:"is_expired"` // the message's body was removed (SPEC.md §10)
}

const entryCols = `id, domain_id, instance_id, message_id, message_identifier, event, patient_ref, focal_ref, status,
	status_changed_at, version, COALESCE(claim_deadline, 0) AS claim_deadline, retry_count, exception, fetched_api_version, created_at, is_expired`

// InsertEntry queues a message for one instance and returns the entry id.
func (t *Tx) InsertEntry(ctx context.Context, e Entry) (int64, error) {
	id, err := t.insertID(ctx, `INSERT INTO queue (domain_id, instance_id, message_id, message_identifier, event,
		patient_ref, focal_ref, status, status_changed_at, version, retry_count, exception, fetched_api_version, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', '', ?)`,
		e.DomainID, e.InstanceID, e.MessageID, e.MessageIdentifier, e.Event, e.PatientRef, e.FocalRef, e.Status,
		e.StatusChangedAt, e.Version, e.CreatedAt)
	if err != nil {
		return 0, fmt.Errorf("queue message %d for instance %d: %w", e.MessageID, e.InstanceID, err)
	}
	return id, nil
}

// replaceOlderSQL: the status list is literal so the planners can use the
// partial index queue_replace_open (migration 0005).
const replaceOlderSQL = `UPDATE queue SET status = ?, status_changed_at = ?, claim_deadline = NULL, version = ?,
	status_history = status_history || ? WHERE instance_id = ? AND focal_ref = ? AND event = ? AND id < ?
	AND status NOT IN ('` + StatusSuccess + `', '` + StatusReplacedByNewVersion + `')`

// ReplaceOlder marks the instance's older entries for the same focal resource
// and event as ReplacedByNewVersion, unless they are already Success (or replaced).
func (t *Tx) ReplaceOlder(ctx context.Context, instanceID int64, focalRef, event string, newerID, now int64, version string) (int64, error) {
	if focalRef == "" {
		return 0, nil
	}
	res, err := t.exec(ctx, replaceOlderSQL, StatusReplacedByNewVersion, now, version, historyEntry(StatusReplacedByNewVersion, now),
		instanceID, focalRef, event, newerID)
	if err != nil {
		return 0, fmt.Errorf("replace older entries of %s: %w", focalRef, err)
	}
	return res.RowsAffected()
}

// Filter narrows claims and searches to one patient, event, status or message identifier.
// Entries of expired messages are left out unless IncludeExpired (SPEC.md §10.2).
type Filter struct {
	Patient string
	Event   string
	Status  string
	// Identifier is the MessageHeader.identifier of the message (indexed, migration 0012).
	Identifier     string
	IncludeExpired bool
}

func (f Filter) where(args []any) (string, []any) {
	var b strings.Builder
	if !f.IncludeExpired {
		b.WriteString(" AND is_expired = FALSE") // a literal, for the partial index queue_claim_live
	}
	if f.Identifier != "" {
		// Written as a set of queue ids so that SQLite looks the few rows up (queue_message) instead of
		// walking the instance's mailbox (queue_instance, which it prefers for the ORDER BY id).
		b.WriteString(" AND id IN (SELECT q.id FROM queue q WHERE q.message_id IN (SELECT m.id FROM messages m WHERE m.message_identifier = ?))")
		args = append(args, f.Identifier)
	}
	if f.Patient != "" {
		b.WriteString(" AND patient_ref = ?")
		args = append(args, f.Patient)
	}
	if f.Event != "" {
		b.WriteString(" AND event = ?")
		args = append(args, f.Event)
	}
	if f.Status != "" {
		b.WriteString(" AND status = ?")
		args = append(args, f.Status)
	}
	return b.String(), args
}

// waitingLook is the start of the WHERE of a look for an instance's waiting entries (its arguments: the
// instance id twice). The instance is a range of one, not an equality: PostgreSQL caches a generic plan for
// a prepared statement, and for "instance_id = $1 AND status = 'New' ... LIMIT 1" that plan walks the
// primary key or the table and filters — every row for an instance with nothing waiting, every consumed
// row before the first New one otherwise: 0.1–0.2 s a look with 600,000 rows, seconds with 1,000,000. A
// range leaves (instance_id, id) order to an index on both, and queue_claim_live is the one that matches;
// order by "instance_id, id" for the same reason.
const waitingLook = "instance_id BETWEEN ? AND ? AND status = 'New'"

// waitingFrom is the FROM of a look for waiting entries: on SQLite, without
// expired entries, the partial index queue_claim_live by name — its planner,
// without statistics, prefers queue_claim's two equalities and would then walk
// an offline instance's expired entries on every claim.
func waitingFrom(d Dialect, f Filter) string {
	if d == SQLite && !f.IncludeExpired {
		return "queue INDEXED BY queue_claim_live"
	}
	return "queue"
}

// nextWaitingSQL selects the id of the instance's oldest waiting entry matching cond (f.where's). status =
// 'New' (and is_expired = FALSE from the filter) are literals so the planners can use the partial index
// queue_claim_live.
func nextWaitingSQL(d Dialect, f Filter, cond string) string {
	return `SELECT id FROM ` + waitingFrom(d, f) + ` WHERE ` + waitingLook + cond + ` ORDER BY instance_id, id LIMIT 1`
}

// Claim is what ClaimNext sets on the claimed entry.
type Claim struct {
	Now        int64  // status-last-changed, Unix µs
	Deadline   int64  // claim expires at, Unix µs
	Version    string // new entry version
	APIVersion string // api-version the message is fetched as
}

// ClaimNext atomically moves the instance's oldest New entry matching f to
// Claimed and returns it, or ErrNotFound when nothing is waiting. On
// PostgreSQL concurrent claimers skip each other's rows (FOR UPDATE SKIP
// LOCKED); on SQLite the single writer serialises them.
func (t *Tx) ClaimNext(ctx context.Context, instanceID int64, f Filter, c Claim) (Entry, error) {
	f.Status = ""
	cond, fargs := f.where(nil)
	lock := ""
	if t.dialect == Postgres {
		lock = " FOR UPDATE SKIP LOCKED"
	}
	args := []any{StatusClaimed, c.Now, c.Deadline, c.Version, c.APIVersion, historyEntry(StatusClaimed, c.Now), instanceID, instanceID}
	args = append(args, fargs...)
	q := `UPDATE queue SET status = ?, status_changed_at = ?, claim_deadline = ?, version = ?,
		retry_count = retry_count + 1, fetched_api_version = ?, status_history = status_history || ?
		WHERE id = (` + nextWaitingSQL(t.dialect, f, cond) + lock + `)
		AND status = 'New' RETURNING ` + entryCols
	var e Entry
	err := t.get(ctx, &e, q, args...)
	if errors.Is(err, sql.ErrNoRows) {
		return e, ErrNotFound
	}
	if err != nil {
		return e, fmt.Errorf("claim next for instance %d: %w", instanceID, err)
	}
	return e, nil
}

// EntryForInstance returns entry id if it belongs to instanceID; otherwise ErrNotFound
// (an instance cannot tell other instances' entries from missing ones).
func (t *Tx) EntryForInstance(ctx context.Context, instanceID, id int64) (Entry, error) {
	var e Entry
	q := "SELECT " + entryCols + " FROM queue WHERE id = ? AND instance_id = ?"
	err := t.get(ctx, &e, q, id, instanceID)
	if errors.Is(err, sql.ErrNoRows) {
		return e, fmt.Errorf("entry %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("read entry %d: %w", id, err)
	}
	return e, nil
}

// StatusChange is a conditional status update.
type StatusChange struct {
	From      string // the status the entry must still have
	To        string
	Exception string
	Now       int64
	Version   string
}

// SetStatus applies ch to entry id if it still has status ch.From; ok is false otherwise.
func (t *Tx) SetStatus(ctx context.Context, id int64, ch StatusChange) (ok bool, err error) {
	res, err := t.exec(ctx, `UPDATE queue SET status = ?, exception = ?, status_changed_at = ?, version = ?,
		claim_deadline = NULL, status_history = status_history || ? WHERE id = ? AND status = ?`,
		ch.To, ch.Exception, ch.Now, ch.Version, historyEntry(ch.To, ch.Now), id, ch.From)
	if err != nil {
		return false, fmt.Errorf("set entry %d to %s: %w", id, ch.To, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// Search returns a page of the instance's entries matching f, oldest first, and the total count.
func (t *Tx) Search(ctx context.Context, instanceID int64, f Filter, offset, limit int) ([]Entry, int, error) {
	cond, args := f.where([]any{instanceID})
	var total int
	if err := t.get(ctx, &total, "SELECT COUNT(*) FROM queue WHERE instance_id = ?"+cond, args...); err != nil {
		return nil, 0, fmt.Errorf("count entries: %w", err)
	}
	var es []Entry
	args = append(args, limit, offset)
	if err := t.sel(ctx, &es, "SELECT "+entryCols+" FROM queue WHERE instance_id = ?"+cond+
		" ORDER BY id LIMIT ? OFFSET ?", args...); err != nil {
		return nil, 0, fmt.Errorf("search entries: %w", err)
	}
	return es, total, nil
}

// SweepResult counts what a sweep changed.
type SweepResult struct {
	Requeued   int64 // claims that timed out and went back to New
	MaxRetries int64 // entries moved to MaximumRetriesExceeded
}

// Sweep returns Claimed entries whose deadline passed to New, or moves them to
// MaximumRetriesExceeded once they were claimed maxRetries times.
func (t *Tx) Sweep(ctx context.Context, now int64, maxRetries int, version string) (SweepResult, error) {
	var r SweepResult
	res, err := t.exec(ctx, `UPDATE queue SET status = ?, status_changed_at = ?, claim_deadline = NULL, version = ?,
		status_history = status_history || ? WHERE status = ? AND claim_deadline < ? AND retry_count >= ?`,
		StatusMaximumRetriesExceeded, now, version, historyEntry(StatusMaximumRetriesExceeded, now), StatusClaimed, now, maxRetries)
	if err != nil {
		return r, fmt.Errorf("sweep: max retries: %w", err)
	}
	r.MaxRetries, _ = res.RowsAffected()
	res, err = t.exec(ctx, `UPDATE queue SET status = ?, status_changed_at = ?, claim_deadline = NULL, version = ?,
		status_history = status_history || ? WHERE status = ? AND claim_deadline < ?`,
		StatusNew, now, version, historyEntry(StatusNew, now), StatusClaimed, now)
	if err != nil {
		return r, fmt.Errorf("sweep: requeue: %w", err)
	}
	r.Requeued, _ = res.RowsAffected()
	return r, nil
}

// EntriesOfMessage lists the queue entries of one message (all recipients), ordered by id.
func (t *Tx) EntriesOfMessage(ctx context.Context, messageID int64) ([]Entry, error) {
	var es []Entry
	err := t.sel(ctx, &es, "SELECT "+entryCols+" FROM queue WHERE message_id = ? ORDER BY id", messageID)
	return es, err
}

// replaceOlderAllSQL is replaceOlderSQL for several instances at once, before
// the new entries exist (so every open entry it finds is older). The "IN (?)"
// is expanded by inQuery; the status list is literal for queue_replace_open.
const replaceOlderAllSQL = `UPDATE queue SET status = ?, status_changed_at = ?, claim_deadline = NULL, version = ?,
	status_history = status_history || ? WHERE focal_ref = ? AND event = ? AND instance_id IN (?)
	AND status NOT IN ('` + StatusSuccess + `', '` + StatusReplacedByNewVersion + `')`

// QueueForAll queues one message for every instance in instanceIDs: it marks
// their open entries for the same focal resource and event (e.FocalRef,
// e.Event) as ReplacedByNewVersion, then inserts one entry per instance (e
// with InstanceID set) in one statement. It returns the new entry ids in the
// order of instanceIDs. Two statements however many subscribers (more only
// beyond maxBinds): this runs for every posted message.
func (t *Tx) QueueForAll(ctx context.Context, e Entry, instanceIDs []int64) ([]int64, error) {
	if len(instanceIDs) == 0 {
		return nil, nil
	}
	if e.FocalRef != "" {
		for _, c := range chunks(len(instanceIDs), 1, 6) {
			q, args := inQueryInt(replaceOlderAllSQL, []any{StatusReplacedByNewVersion, e.StatusChangedAt, e.Version,
				historyEntry(StatusReplacedByNewVersion, e.StatusChangedAt), e.FocalRef, e.Event}, instanceIDs[c[0]:c[1]])
			if _, err := t.exec(ctx, q, args...); err != nil {
				return nil, fmt.Errorf("replace older entries of %s: %w", e.FocalRef, err)
			}
		}
	}
	var ids []int64
	for _, c := range chunks(len(instanceIDs), 11, 0) { // below every database's bind limit (maxBinds)
		part, err := t.insertEntries(ctx, e, instanceIDs[c[0]:c[1]])
		if err != nil {
			return nil, err
		}
		ids = append(ids, part...) // a later statement's rows get higher ids
	}
	return ids, nil
}

// insertEntries is QueueForAll's insert of one chunk of instances.
func (t *Tx) insertEntries(ctx context.Context, e Entry, instanceIDs []int64) ([]int64, error) {
	var b strings.Builder
	b.WriteString(`INSERT INTO queue (domain_id, instance_id, message_id, message_identifier, event, patient_ref,
		focal_ref, status, status_changed_at, version, retry_count, exception, fetched_api_version, created_at) VALUES `)
	args := make([]any, 0, 11*len(instanceIDs))
	for i, inst := range instanceIDs {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', '', ?)")
		args = append(args, e.DomainID, inst, e.MessageID, e.MessageIdentifier, e.Event, e.PatientRef, e.FocalRef,
			e.Status, e.StatusChangedAt, e.Version, e.CreatedAt)
	}
	b.WriteString(" RETURNING id")
	var ids []int64
	if err := t.sel(ctx, &ids, b.String(), args...); err != nil {
		return nil, fmt.Errorf("queue message %d for %d instances: %w", e.MessageID, len(instanceIDs), err)
	}
	if len(ids) != len(instanceIDs) {
		return nil, fmt.Errorf("queue message %d: %d ids returned for %d instances", e.MessageID, len(ids), len(instanceIDs))
	}
	// Rows of one INSERT get increasing ids in VALUES order; RETURNING's order is not promised.
	slices.Sort(ids)
	return ids, nil
}

// historyEntry is one status change as appended to queue.status_history.
func historyEntry(status string, at int64) string { return fmt.Sprintf("%d %s;", at, status) }

// StatusChangeAt is one entry of a queue entry's status history.
type StatusChangeAt struct {
	At     int64 // Unix µs
	Status string
}

// ParseStatusHistory reads queue.status_history; the entry's creation (status
// New at created_at) is not in it.
func ParseStatusHistory(h string) []StatusChangeAt {
	var out []StatusChangeAt
	for _, part := range strings.Split(h, ";") {
		at, status, ok := strings.Cut(strings.TrimSpace(part), " ")
		if !ok {
			continue
		}
		var us int64
		if _, err := fmt.Sscan(at, &us); err == nil {
			out = append(out, StatusChangeAt{At: us, Status: status})
		}
	}
	return out
}

// inQueryInt expands the "IN (?)" of q for ids, after the leading args.
func inQueryInt(q string, leading []any, ids []int64) (string, []any) {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")
	args := append(leading, make([]any, 0, len(ids))...)
	for _, id := range ids {
		args = append(args, id)
	}
	return strings.Replace(q, "IN (?)", "IN ("+marks+")", 1), args
}

// TakeNew moves up to limit of the instance's New entries (oldest first; only event when not empty) to
// Claimed without a claim deadline (the sweeper leaves them) and returns them: an in-process consumer's
// take, whose transaction also records what it does with them.
func (t *Tx) TakeNew(ctx context.Context, instanceID int64, event string, limit int, c Claim) ([]Entry, error) {
	cond, fargs := Filter{Event: event}.where(nil)
	args := append([]any{instanceID}, fargs...)
	var ids []int64
	if err := t.sel(ctx, &ids, `SELECT id FROM queue WHERE instance_id = ? AND status = 'New'`+cond+` ORDER BY id LIMIT ?`,
		append(args, limit)...); err != nil {
		return nil, fmt.Errorf("take new entries of instance %d: %w", instanceID, err)
	}
	out := make([]Entry, 0, len(ids))
	for _, id := range ids {
		var e Entry
		err := t.get(ctx, &e, `UPDATE queue SET status = ?, status_changed_at = ?, claim_deadline = NULL, version = ?,
			retry_count = retry_count + 1, fetched_api_version = ? WHERE id = ? AND status = 'New' RETURNING `+entryCols,
			StatusClaimed, c.Now, c.Version, c.APIVersion, id)
		if errors.Is(err, sql.ErrNoRows) {
			continue // replaced or claimed meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("take entry %d: %w", id, err)
		}
		out = append(out, e)
	}
	return out, nil
}

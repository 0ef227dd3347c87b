package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// The gateway's route tables (migration 0016): deliveries waiting for an outbound adapter, dead letters,
// inbound checkpoints, record outcomes an inbound wants reported, and the versions a remote Koppeltaal
// output was issued. The route runtime (routes/runtime) is their only writer; it runs these on the
// store's transactions, so the SQLite file keeps one writer.

// Delivery statuses.
const (
	DeliveryPending  = "pending"
	DeliveryInflight = "inflight"
	DeliveryDone     = "done"
	DeliveryDead     = "dead"
)

// The built-in Koppeltaal route (routes/runtime.NewKoppeltaal) and its webhook output: koppeltaal/notify
// records a delivery for it per queue row of an instance with a webhook (id "webhook-<queue id>"), and the
// route worker makes the calls.
const (
	KoppeltaalRoute = "koppeltaal"
	WebhookOutput   = "webhook"
)

// Delivery is one route_deliveries row: a message for one output of a route.
type Delivery struct {
	// ID is the delivery's idempotency key.
	ID        string `db:"id"`
	Route     string `db:"route"`
	Output    string `db:"output"`
	RecordKey string `db:"record_key"`
	// Payload is what the output gets (JSON); Record the inbound record it came from (JSON, for dead letters).
	Payload       string `db:"payload"`
	Record        string `db:"record"`
	Status        string `db:"status"`
	Attempts      int    `db:"attempts"`
	NextAttemptAt int64  `db:"next_attempt_at"`
	LastError     string `db:"last_error"`
	// Revision is the route revision that made the delivery.
	Revision string `db:"revision"`
	// AttemptLog is the history of failed attempts (JSON list of {"at": Unix µs, "error": "..."}).
	AttemptLog string `db:"attempt_log"`
	CreatedAt  int64  `db:"created_at"`
	UpdatedAt  int64  `db:"updated_at"`
}

// InsertDeliveries records new pending deliveries. A delivery whose id exists is left alone unless it is
// dead: then it is armed again (a replayed record that produces the same delivery).
func (t *Tx) InsertDeliveries(ctx context.Context, ds []Delivery) error {
	for _, d := range ds {
		_, err := t.exec(ctx, `INSERT INTO route_deliveries (id, route, output, record_key, payload, record, status,
			attempts, next_attempt_at, last_error, revision, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, '', ?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET status = 'pending', attempts = 0, next_attempt_at = excluded.next_attempt_at,
				last_error = '', failed_since = 0, attempt_log = '[]', revision = excluded.revision, updated_at = excluded.updated_at
			WHERE route_deliveries.status = 'dead'`,
			d.ID, d.Route, d.Output, d.RecordKey, d.Payload, d.Record, d.NextAttemptAt, d.Revision, d.CreatedAt, d.UpdatedAt)
		if err != nil {
			return fmt.Errorf("record delivery %s of route %s: %w", d.ID, d.Route, err)
		}
	}
	return nil
}

const deliveryCols = `id, route, output, record_key, payload, record, status, attempts, next_attempt_at, last_error, revision, attempt_log, created_at, updated_at`

// ClaimDeliveries leases up to limit due deliveries of route (pending, or in flight with an expired lease)
// until leaseUntil: a worker that dies mid-call leaves them due again when the lease ends. On PostgreSQL
// several processes claim different rows (FOR UPDATE SKIP LOCKED).
func (t *Tx) ClaimDeliveries(ctx context.Context, route string, now, leaseUntil int64, limit int) ([]Delivery, error) {
	q := `SELECT ` + deliveryCols + ` FROM route_deliveries WHERE route = ? AND status IN ('pending', 'inflight')
		AND next_attempt_at <= ? ORDER BY created_at, id LIMIT ?`
	if t.dialect == Postgres {
		q += ` FOR UPDATE SKIP LOCKED`
	}
	var ds []Delivery
	if err := t.sel(ctx, &ds, q, route, now, limit); err != nil {
		return nil, fmt.Errorf("select due deliveries of %s: %w", route, err)
	}
	for _, d := range ds {
		if _, err := t.exec(ctx, `UPDATE route_deliveries SET status = 'inflight', next_attempt_at = ?, updated_at = ? WHERE id = ?`,
			leaseUntil, now, d.ID); err != nil {
			return nil, fmt.Errorf("lease delivery %s: %w", d.ID, err)
		}
	}
	return ds, nil
}

// HasDueDeliveries reports whether route has a delivery due at now (read only: a worker polling an idle
// route takes no write transaction, which on SQLite every other write would wait behind).
func (t *Tx) HasDueDeliveries(ctx context.Context, route string, now int64) (bool, error) {
	var due bool
	err := t.get(ctx, &due, `SELECT EXISTS (SELECT 1 FROM route_deliveries WHERE route = ? AND status IN ('pending', 'inflight')
		AND next_attempt_at <= ?)`, route, now)
	if err != nil {
		return false, fmt.Errorf("look for due deliveries of %s: %w", route, err)
	}
	return due, nil
}

// DeliveryResult is how one attempt ended: Status done, pending (retry at NextAttemptAt) or dead.
type DeliveryResult struct {
	Status        string
	Attempts      int
	NextAttemptAt int64
	LastError     string
	// AttemptLog replaces the delivery's attempt history (Delivery.AttemptLog); "" keeps it.
	AttemptLog string
	Now        int64
}

// FinishDelivery records the outcome of an attempt on delivery id; a delivery waiting for a retry keeps the
// time of its first failure (failed_since).
func (t *Tx) FinishDelivery(ctx context.Context, id string, r DeliveryResult) error {
	_, err := t.exec(ctx, `UPDATE route_deliveries SET status = ?, attempts = ?, next_attempt_at = CASE WHEN ? = 'pending' THEN ? ELSE next_attempt_at END,
		failed_since = CASE WHEN ? = 'pending' AND failed_since = 0 THEN ? ELSE failed_since END,
		attempt_log = CASE WHEN ? = '' THEN attempt_log ELSE ? END,
		last_error = ?, updated_at = ? WHERE id = ?`, r.Status, r.Attempts, r.Status, r.NextAttemptAt, r.Status, r.Now,
		r.AttemptLog, r.AttemptLog, r.LastError, r.Now, id)
	if err != nil {
		return fmt.Errorf("record result of delivery %s: %w", id, err)
	}
	return nil
}

// ReleaseDeliveries gives the in-flight deliveries ids back, due at now with their attempts unchanged: a
// worker that stops mid-call (shutdown) does not count the call as an attempt, and the next worker need not
// wait for the lease to end.
func (t *Tx) ReleaseDeliveries(ctx context.Context, ids []string, now int64) error {
	if len(ids) == 0 {
		return nil
	}
	q, args := inQueryStrings(`UPDATE route_deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ?
		WHERE status = 'inflight' AND id IN (?)`, []any{now, now}, ids)
	if _, err := t.exec(ctx, q, args...); err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	return nil
}

// PurgeDeliveries deletes route's finished deliveries (done or dead; a dead one's dead letter stays) last
// changed before before (Unix µs), and returns how many.
func (t *Tx) PurgeDeliveries(ctx context.Context, route string, before int64) (int64, error) {
	res, err := t.exec(ctx, `DELETE FROM route_deliveries WHERE route = ? AND status IN ('done', 'dead') AND updated_at < ?`, route, before)
	if err != nil {
		return 0, fmt.Errorf("purge deliveries of %s: %w", route, err)
	}
	return res.RowsAffected()
}

// DeliveryByID returns delivery id, or ErrNotFound.
func (t *Tx) DeliveryByID(ctx context.Context, id string) (Delivery, error) {
	var d Delivery
	err := t.get(ctx, &d, `SELECT `+deliveryCols+` FROM route_deliveries WHERE id = ?`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fmt.Errorf("delivery %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return d, fmt.Errorf("read delivery %s: %w", id, err)
	}
	return d, nil
}

// OutputBacklog is what waits for one output of a route: deliveries pending or in flight, when the oldest of
// them was made, and when the oldest that has failed failed first (Unix µs; 0 when none).
type OutputBacklog struct {
	Route        string `db:"route"`
	Output       string `db:"output"`
	Waiting      int64  `db:"waiting"`
	Oldest       int64  `db:"oldest"`
	FailingSince int64  `db:"failing_since"`
}

// OutputBacklogs returns the backlog of every output that has deliveries waiting.
func (t *Tx) OutputBacklogs(ctx context.Context) ([]OutputBacklog, error) {
	var out []OutputBacklog
	err := t.sel(ctx, &out, `SELECT route, output, COUNT(*) AS waiting, MIN(created_at) AS oldest,
		COALESCE(MIN(CASE WHEN failed_since > 0 THEN failed_since END), 0) AS failing_since
		FROM route_deliveries WHERE status IN ('pending', 'inflight') GROUP BY route, output ORDER BY route, output`)
	if err != nil {
		return nil, fmt.Errorf("read output backlogs: %w", err)
	}
	return out, nil
}

// DeliveryStatus is the status and last error of a delivery.
type DeliveryStatus struct {
	ID        string `db:"id"`
	Status    string `db:"status"`
	LastError string `db:"last_error"`
}

// DeliveryStatuses returns the status of each of ids that exists.
func (t *Tx) DeliveryStatuses(ctx context.Context, ids []string) ([]DeliveryStatus, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	q, args := inQueryStrings(`SELECT id, status, last_error FROM route_deliveries WHERE id IN (?)`, nil, ids)
	var out []DeliveryStatus
	if err := t.sel(ctx, &out, q, args...); err != nil {
		return nil, fmt.Errorf("read delivery statuses: %w", err)
	}
	return out, nil
}

// DeadLetter is a record (stage "input", "rules" or "transform": where the route refused it) or delivery (stage "output") parked for a person to look at.
type DeadLetter struct {
	ID        string `db:"id"`
	Route     string `db:"route"`
	Stage     string `db:"stage"`
	Output    string `db:"output"`
	RecordKey string `db:"record_key"`
	// Record is the inbound record (JSON).
	Record     string        `db:"record"`
	Reason     string        `db:"reason"`
	Attempts   int           `db:"attempts"`
	Revision   string        `db:"revision"`
	CreatedAt  int64         `db:"created_at"`
	ReplayedAt sql.NullInt64 `db:"replayed_at"`
	// AttemptLog is the delivery's attempt history (Delivery.AttemptLog); "" or "[]" for a record.
	AttemptLog string `db:"attempt_log"`
}

// PutDeadLetter parks d; one with the same id (the same record from the same source, dead-lettered
// again) is replaced and counts as not replayed.
func (t *Tx) PutDeadLetter(ctx context.Context, d DeadLetter) error {
	if d.AttemptLog == "" {
		d.AttemptLog = "[]"
	}
	_, err := t.exec(ctx, `INSERT INTO route_dead_letters (id, route, stage, output, record_key, record, reason, attempts, revision, attempt_log, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET reason = excluded.reason, attempts = excluded.attempts, revision = excluded.revision,
			attempt_log = excluded.attempt_log, stage = excluded.stage,
			created_at = excluded.created_at, replayed_at = NULL, replay_requested_at = NULL`,
		d.ID, d.Route, d.Stage, d.Output, d.RecordKey, d.Record, d.Reason, d.Attempts, d.Revision, d.AttemptLog, d.CreatedAt)
	if err != nil {
		return fmt.Errorf("record dead letter %s of route %s: %w", d.ID, d.Route, err)
	}
	return nil
}

// DeadLetterFilter selects dead letters: by ids, by route, or all. Replayed ones are left out unless
// IncludeReplayed.
type DeadLetterFilter struct {
	IDs             []string
	Route           string
	IncludeReplayed bool
}

// DeadLetters returns the dead letters matching f, oldest first.
func (t *Tx) DeadLetters(ctx context.Context, f DeadLetterFilter) ([]DeadLetter, error) {
	q := `SELECT id, route, stage, output, record_key, record, reason, attempts, revision, created_at, replayed_at, attempt_log
		FROM route_dead_letters WHERE 1 = 1`
	var args []any
	if f.Route != "" {
		q += ` AND route = ?`
		args = append(args, f.Route)
	}
	if len(f.IDs) > 0 {
		q, args = inQueryStrings(q+` AND id IN (?)`, args, f.IDs)
	}
	if !f.IncludeReplayed {
		q += ` AND replayed_at IS NULL`
	}
	var out []DeadLetter
	if err := t.sel(ctx, &out, q+` ORDER BY created_at, id`, args...); err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	return out, nil
}

// MarkReplayed records that dead letter id was replayed at now; false when it was already.
func (t *Tx) MarkReplayed(ctx context.Context, id string, now int64) (bool, error) {
	res, err := t.exec(ctx, `UPDATE route_dead_letters SET replayed_at = ?, replay_requested_at = NULL WHERE id = ? AND replayed_at IS NULL`, now, id)
	if err != nil {
		return false, fmt.Errorf("mark dead letter %s replayed: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// RequestReplay asks the server that replays dead letters (the route-replay lease holder) to replay ids; it
// returns how many unreplayed dead letters it marked.
func (t *Tx) RequestReplay(ctx context.Context, ids []string, now int64) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	q, args := inQueryStrings(`UPDATE route_dead_letters SET replay_requested_at = ? WHERE replayed_at IS NULL AND id IN (?)`, []any{now}, ids)
	res, err := t.exec(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("request replay: %w", err)
	}
	n, err := res.RowsAffected()
	return int(n), err
}

// ReplayRequests returns the ids of up to limit dead letters whose replay was requested (RequestReplay) and
// not done yet, oldest request first; with ids, only those among ids.
func (t *Tx) ReplayRequests(ctx context.Context, ids []string, limit int) ([]string, error) {
	q := `SELECT id FROM route_dead_letters WHERE replay_requested_at IS NOT NULL AND replayed_at IS NULL`
	var args []any
	if len(ids) > 0 {
		q, args = inQueryStrings(q+` AND id IN (?)`, nil, ids)
	}
	var out []string
	if err := t.sel(ctx, &out, q+` ORDER BY replay_requested_at, id LIMIT ?`, append(args, limit)...); err != nil {
		return nil, fmt.Errorf("read replay requests: %w", err)
	}
	return out, nil
}

// Checkpoint returns an inbound's stored source position (route, name); ok is false when none is stored.
func (t *Tx) Checkpoint(ctx context.Context, route, name string) (value string, ok bool, err error) {
	err = t.get(ctx, &value, `SELECT value FROM route_checkpoints WHERE route = ? AND name = ?`, route, name)
	if errors.Is(err, sql.ErrNoRows) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("read checkpoint %s/%s: %w", route, name, err)
	}
	return value, true, nil
}

// SentHash is the content hash last accepted for output of route for the record key (change detection,
// a route's skip_unchanged; migration 0025), "" when none is known.
func (t *Tx) SentHash(ctx context.Context, route, output, recordKey string) (string, error) {
	var h string
	err := t.get(ctx, &h, `SELECT hash FROM route_sent_hashes WHERE route = ? AND output = ? AND record_key = ?`, route, output, recordKey)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read sent hash %s/%s/%s: %w", route, output, recordKey, err)
	}
	return h, nil
}

// PutSentHash records hash as the content last accepted for output of route for the record key.
func (t *Tx) PutSentHash(ctx context.Context, route, output, recordKey, hash string, now int64) error {
	_, err := t.exec(ctx, `INSERT INTO route_sent_hashes (route, output, record_key, hash, updated_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (route, output, record_key) DO UPDATE SET hash = excluded.hash, updated_at = excluded.updated_at`,
		route, output, recordKey, hash, now)
	if err != nil {
		return fmt.Errorf("write sent hash %s/%s/%s: %w", route, output, recordKey, err)
	}
	return nil
}

// SentHashes counts the content hashes kept for route (change detection), of output only when output is
// not "" — what ForgetSentHashes would remove.
func (t *Tx) SentHashes(ctx context.Context, route, output string) (int, error) {
	var n int
	where, args := sentHashesOf(route, output)
	if err := t.get(ctx, &n, `SELECT COUNT(*) FROM route_sent_hashes WHERE `+where, args...); err != nil {
		return 0, fmt.Errorf("count sent hashes of route %s: %w", route, err)
	}
	return n, nil
}

// ForgetSentHashes removes every content hash kept for route (of output only when output is not ""), so
// the route's next records are all sent again, changed or not: an operator's full resend. It returns how
// many were removed.
func (t *Tx) ForgetSentHashes(ctx context.Context, route, output string) (int, error) {
	where, args := sentHashesOf(route, output)
	res, err := t.exec(ctx, `DELETE FROM route_sent_hashes WHERE `+where, args...)
	if err != nil {
		return 0, fmt.Errorf("forget sent hashes of route %s: %w", route, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("forget sent hashes of route %s: %w", route, err)
	}
	return int(n), nil
}

// sentHashesOf selects the hashes of route, of one output when output is not "".
func sentHashesOf(route, output string) (string, []any) {
	if output == "" {
		return "route = ?", []any{route}
	}
	return "route = ? AND output = ?", []any{route, output}
}

// ForgetSentHash removes the record's hash if it is still hash: its delivery became a dead letter, so the
// same content must be sent again when it comes again. A newer hash (a later change) stays.
func (t *Tx) ForgetSentHash(ctx context.Context, route, output, recordKey, hash string) error {
	_, err := t.exec(ctx, `DELETE FROM route_sent_hashes WHERE route = ? AND output = ? AND record_key = ? AND hash = ?`,
		route, output, recordKey, hash)
	if err != nil {
		return fmt.Errorf("forget sent hash %s/%s/%s: %w", route, output, recordKey, err)
	}
	return nil
}

// SetCheckpoint stores an inbound's source position.
func (t *Tx) SetCheckpoint(ctx context.Context, route, name, value string, now int64) error {
	_, err := t.exec(ctx, `INSERT INTO route_checkpoints (route, name, value, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (route, name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`, route, name, value, now)
	if err != nil {
		return fmt.Errorf("write checkpoint %s/%s: %w", route, name, err)
	}
	return nil
}

// Outcome states: waiting for deliveries, ready to report, sent to the inbound.
const (
	OutcomeWaiting = "waiting"
	OutcomeReady   = "ready"
	OutcomeSent    = "sent"
)

// Outcome is a record's final result that its inbound wants reported (a Koppeltaal mailbox acknowledges
// the message it came from).
type Outcome struct {
	ID    string `db:"id"`
	Route string `db:"route"`
	// Record is the inbound record (JSON); DeliveryIDs the deliveries it waits for (JSON list).
	Record      string `db:"record"`
	DeliveryIDs string `db:"delivery_ids"`
	State       string `db:"state"`
	OK          bool   `db:"ok"`
	Reason      string `db:"reason"`
	CreatedAt   int64  `db:"created_at"`
}

// PutOutcome records an outcome once (a record consumed twice keeps the first).
func (t *Tx) PutOutcome(ctx context.Context, o Outcome) error {
	_, err := t.exec(ctx, `INSERT INTO route_outcomes (id, route, record, delivery_ids, state, ok, reason, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`,
		o.ID, o.Route, o.Record, o.DeliveryIDs, o.State, boolInt(o.OK), o.Reason, o.CreatedAt)
	if err != nil {
		return fmt.Errorf("record outcome %s of route %s: %w", o.ID, o.Route, err)
	}
	return nil
}

// Outcomes returns up to limit outcomes of route in state, oldest first.
func (t *Tx) Outcomes(ctx context.Context, route, state string, limit int) ([]Outcome, error) {
	var rows []struct {
		Outcome
		OKInt int `db:"ok_int"`
	}
	if err := t.sel(ctx, &rows, `SELECT id, route, record, delivery_ids, state, ok AS ok_int, reason, created_at
		FROM route_outcomes WHERE route = ? AND state = ? ORDER BY created_at LIMIT ?`, route, state, limit); err != nil {
		return nil, fmt.Errorf("read %s outcomes of %s: %w", state, route, err)
	}
	out := make([]Outcome, len(rows))
	for i, r := range rows {
		out[i] = r.Outcome
		out[i].OK = r.OKInt != 0
	}
	return out, nil
}

// SetOutcome moves outcome id from state from to to (with ok and reason when it becomes ready).
func (t *Tx) SetOutcome(ctx context.Context, id, from, to string, ok bool, reason string) error {
	_, err := t.exec(ctx, `UPDATE route_outcomes SET state = ?, ok = CASE WHEN ? = 'ready' THEN ? ELSE ok END,
		reason = CASE WHEN ? = 'ready' THEN ? ELSE reason END WHERE id = ? AND state = ?`,
		to, to, boolInt(ok), to, reason, id, from)
	if err != nil {
		return fmt.Errorf("set outcome %s to %s: %w", id, to, err)
	}
	return nil
}

// RemoteVersions returns the versions a remote Koppeltaal server issued for urls, within scope (server and
// domain), as far as they are known.
func (t *Tx) RemoteVersions(ctx context.Context, scope string, urls []string) (map[string]string, error) {
	out := map[string]string{}
	if len(urls) == 0 {
		return out, nil
	}
	var rows []struct {
		URL     string `db:"url"`
		Version string `db:"version"`
	}
	q, args := inQueryStrings(`SELECT url, version FROM route_remote_versions WHERE scope = ? AND url IN (?)`, []any{scope}, urls)
	if err := t.sel(ctx, &rows, q, args...); err != nil {
		return nil, fmt.Errorf("read remote resource versions: %w", err)
	}
	for _, r := range rows {
		out[r.URL] = r.Version
	}
	return out, nil
}

// PutRemoteVersions records versions a remote Koppeltaal server issued.
func (t *Tx) PutRemoteVersions(ctx context.Context, scope string, versions map[string]string, now int64) error {
	for u, v := range versions {
		if _, err := t.exec(ctx, `INSERT INTO route_remote_versions (scope, url, version, updated_at) VALUES (?, ?, ?, ?)
			ON CONFLICT (scope, url) DO UPDATE SET version = excluded.version, updated_at = excluded.updated_at`, scope, u, v, now); err != nil {
			return fmt.Errorf("record remote resource version of %s: %w", u, err)
		}
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// inQueryStrings expands the "IN (?)" of q for vals, after the leading args.
func inQueryStrings(q string, leading []any, vals []string) (string, []any) {
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(vals)), ", ")
	args := append(leading, make([]any, 0, len(vals))...)
	for _, v := range vals {
		args = append(args, v)
	}
	return strings.Replace(q, "IN (?)", "IN ("+marks+")", 1), args
}

package store

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"
)

// BrowseQuery selects messages for the message browser, newest first. The
// scope is whole domains (DomainIDs) and/or the messages that instances sent
// or received (InstanceIDs); the rest are filters. Every query is an index
// seek per domain or instance (migrations 0012, 0013), never a scan of all messages.
type BrowseQuery struct {
	DomainIDs   []int64
	InstanceIDs []int64

	Patient     string // MessageHeader patient reference, exact
	Event       string
	Identifier  string // MessageHeader.identifier
	SenderID    int64
	RecipientID int64
	Status      string // a recipient's processing status (that recipient's, with RecipientID)
	From, To    int64  // created_at range in Unix µs, To exclusive; 0 = open
	BeforeID    int64  // keyset paging: only messages with a smaller id
	Limit       int
}

// idOrderSlack is how far (µs) a message's creation time may be out of id
// order: the longest a POST transaction can take, with a wide margin.
const idOrderSlack = int64(60 * time.Second / time.Microsecond)

// MaxBrowseRows bounds what one browse reads per stream (offset + page).
const MaxBrowseRows = 10000

// BrowsedMessage is a message row of the browser with its sender's username.
type BrowsedMessage struct {
	Message
	DomainName     string `db:"domain_name"`
	SenderUsername string `db:"sender_username"`
}

// browseCols: one table per statement (the names are looked up after), so
// the planner's only choice is the index that drives the stream.
const browseCols = `m.id, m.domain_id, COALESCE(m.sender_instance_id, 0) AS sender_instance_id, m.event,
	m.message_identifier, m.feed_id, m.patient_ref, m.focal_ref, m.focal_version, m.version,
	COALESCE(m.body_id, 0) AS body_id, m.is_expired, m.created_at`

// stream is one index-driven part of a browse: a condition on m, or a
// recipient's queue (recipient != 0).
type stream struct {
	cond      string
	args      []any
	recipient int64
}

// streams lists the parts of q: the most selective driver it has (a recipient,
// a sender), else one per domain — or, with a status filter, one per instance
// of the domain (queue_claim: instance, status, id) — and two per instance of
// the scope. domainInstances are the instances of q.DomainIDs.
func (q BrowseQuery) streams(domainInstances []int64) []stream {
	switch {
	case q.RecipientID != 0:
		return []stream{{recipient: q.RecipientID}}
	case q.SenderID != 0:
		return []stream{{cond: "m.sender_instance_id = ?", args: []any{q.SenderID}}}
	}
	var out []stream
	if q.Status != "" {
		for _, in := range domainInstances {
			out = append(out, stream{recipient: in})
		}
	} else {
		for _, d := range q.DomainIDs {
			out = append(out, stream{cond: "m.domain_id = ?", args: []any{d}})
		}
	}
	for _, in := range q.InstanceIDs {
		out = append(out, stream{cond: "m.sender_instance_id = ?", args: []any{in}}, stream{recipient: in})
	}
	return out
}

// BrowseMessages returns up to q.Limit messages matching q, newest first, and
// whether there are more. Each stream is read through its index with a limit
// and the streams are merged.
func (t *Tx) BrowseMessages(ctx context.Context, q BrowseQuery) ([]BrowsedMessage, bool, error) {
	if q.Limit <= 0 || q.Limit > MaxBrowseRows {
		return nil, false, fmt.Errorf("browse messages: limit %d outside 1..%d", q.Limit, MaxBrowseRows)
	}
	if len(q.DomainIDs) == 0 && len(q.InstanceIDs) == 0 {
		return nil, false, nil
	}
	insts, err := t.instancesOfDomains(ctx, q)
	if err != nil {
		return nil, false, err
	}
	seen := map[int64]bool{}
	var all []BrowsedMessage
	for _, s := range q.streams(insts) {
		query, args := q.sql(s, t.dialect)
		var rows []BrowsedMessage
		if err := t.sel(ctx, &rows, query, args...); err != nil {
			return nil, false, fmt.Errorf("browse messages: %w", err)
		}
		for _, r := range rows {
			if !seen[r.ID] {
				seen[r.ID] = true
				all = append(all, r)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i].ID > all[j].ID })
	more := len(all) > q.Limit
	if more {
		all = all[:q.Limit]
	}
	return all, more, t.nameBrowsed(ctx, all)
}

// nameBrowsed fills in the domain and sender names of rows.
func (t *Tx) nameBrowsed(ctx context.Context, rows []BrowsedMessage) error {
	if len(rows) == 0 {
		return nil
	}
	var ds []struct {
		ID   int64  `db:"id"`
		Name string `db:"name"`
	}
	if err := t.sel(ctx, &ds, "SELECT id, name FROM domains"); err != nil {
		return fmt.Errorf("browse: domain names: %w", err)
	}
	dn := map[int64]string{}
	for _, d := range ds {
		dn[d.ID] = d.Name
	}
	var ids []int64
	for _, r := range rows {
		if r.SenderInstanceID != 0 {
			ids = append(ids, r.SenderInstanceID)
		}
	}
	un := map[int64]string{}
	if len(ids) > 0 {
		var us []struct {
			ID   int64  `db:"id"`
			Name string `db:"username"`
		}
		q, args := inQueryInt("SELECT id, username FROM app_instances WHERE id IN (?)", nil, dedupIDs(ids))
		if err := t.sel(ctx, &us, q, args...); err != nil {
			return fmt.Errorf("browse: sender names: %w", err)
		}
		for _, u := range us {
			un[u.ID] = u.Name
		}
	}
	for i := range rows {
		rows[i].DomainName, rows[i].SenderUsername = dn[rows[i].DomainID], un[rows[i].SenderInstanceID]
	}
	return nil
}

// instancesOfDomains lists the instances of q.DomainIDs when a status filter needs them.
func (t *Tx) instancesOfDomains(ctx context.Context, q BrowseQuery) ([]int64, error) {
	if q.Status == "" || len(q.DomainIDs) == 0 || q.RecipientID != 0 || q.SenderID != 0 {
		return nil, nil
	}
	var ids []int64
	query, args := inQueryInt("SELECT id FROM app_instances WHERE domain_id IN (?) ORDER BY id", nil, q.DomainIDs)
	if err := t.sel(ctx, &ids, query, args...); err != nil {
		return nil, fmt.Errorf("instances of domains: %w", err)
	}
	return ids, nil
}

// sql is the statement of one stream.
func (q BrowseQuery) sql(s stream, d Dialect) (string, []any) {
	var from, order string
	var where []string
	var args []any
	add := func(cond string, v ...any) {
		where = append(where, cond)
		args = append(args, v...)
	}
	if s.recipient != 0 {
		// The recipient's queue drives: SQLite's CROSS JOIN keeps that join order (its planner
		// would otherwise walk all messages when the recipient gets most of them).
		from = "queue q JOIN messages m ON m.id = q.message_id"
		if d == SQLite {
			from = "queue q CROSS JOIN messages m ON m.id = q.message_id"
		}
		add("q.instance_id = ?", s.recipient)
		if q.Status != "" && (q.RecipientID == 0 || q.RecipientID == s.recipient) {
			add("q.status = ?", q.Status)
		}
		order = "q.id DESC" // queue rows are written with their message: the same order
		if q.BeforeID > 0 {
			add("q.message_id < ?", q.BeforeID)
		}
	} else {
		from = "messages m"
		add(s.cond, s.args...)
		order = "m.id DESC"
		if q.BeforeID > 0 {
			add("m.id < ?", q.BeforeID)
		}
	}
	if q.Patient != "" {
		add("m.patient_ref = ?", q.Patient)
	}
	if q.Event != "" {
		add("m.event = ?", q.Event)
	}
	if q.Identifier != "" {
		add("m.message_identifier = ?", q.Identifier)
	}
	if q.SenderID != 0 && s.cond != "m.sender_instance_id = ?" {
		add("m.sender_instance_id = ?", q.SenderID)
	}
	if q.From > 0 {
		add("m.created_at >= ?", q.From)
	}
	if q.To > 0 {
		add("m.created_at < ?", q.To)
	}
	if s.cond == "m.domain_id = ?" && (q.From > 0 || q.To > 0) {
		// Bound the ids by the date range with one seek each in messages_domain_created, so a
		// range far back does not walk the domain's newer messages. Ids follow creation times
		// except between transactions that overlap; idOrderSlack covers that with room to spare,
		// and the exact created_at conditions above still apply.
		// A message created more than idOrderSlack before From has a smaller id than every
		// message of the range, and one created idOrderSlack after To a larger one.
		if q.From > 0 {
			add(`m.id > COALESCE((SELECT x.id FROM messages x WHERE x.domain_id = ? AND x.created_at < ?
				ORDER BY x.created_at DESC LIMIT 1), 0)`, s.args[0], q.From-idOrderSlack)
		}
		if q.To > 0 {
			add(`m.id < COALESCE((SELECT x.id FROM messages x WHERE x.domain_id = ? AND x.created_at >= ?
				ORDER BY x.created_at LIMIT 1), ?)`, s.args[0], q.To+idOrderSlack, int64(1)<<62)
		}
	}
	if q.Status != "" && s.recipient == 0 {
		add("EXISTS (SELECT 1 FROM queue qs WHERE qs.message_id = m.id AND qs.status = ?)", q.Status)
	}
	if q.RecipientID != 0 && s.recipient == 0 {
		add("EXISTS (SELECT 1 FROM queue qr WHERE qr.message_id = m.id AND qr.instance_id = ?)", q.RecipientID)
	}
	// The scope, on every stream: a filter must never widen it.
	scope, sargs := browseScope(q)
	add(scope, sargs...)
	args = append(args, q.Limit+1)
	return "SELECT " + browseCols + " FROM " + from + " WHERE " + strings.Join(where, " AND ") +
		" ORDER BY " + order + " LIMIT ?", args
}

// browseScope is the condition "m is in q's scope".
func browseScope(q BrowseQuery) (string, []any) {
	var parts []string
	var args []any
	if len(q.DomainIDs) > 0 {
		parts = append(parts, "m.domain_id IN ("+marks(len(q.DomainIDs))+")")
		for _, d := range q.DomainIDs {
			args = append(args, d)
		}
	}
	if len(q.InstanceIDs) > 0 {
		parts = append(parts, "m.sender_instance_id IN ("+marks(len(q.InstanceIDs))+")")
		for _, in := range q.InstanceIDs {
			args = append(args, in)
		}
		parts = append(parts, "EXISTS (SELECT 1 FROM queue qi WHERE qi.message_id = m.id AND qi.instance_id IN ("+marks(len(q.InstanceIDs))+"))")
		for _, in := range q.InstanceIDs {
			args = append(args, in)
		}
	}
	return "(" + strings.Join(parts, " OR ") + ")", args
}

func marks(n int) string { return strings.TrimSuffix(strings.Repeat("?, ", n), ", ") }

// Recipient is one queue entry of a message with its instance and status history.
type Recipient struct {
	Entry
	Username      string `db:"username"`
	AppIdent      string `db:"app_ident"`
	StatusHistory string `db:"status_history"`
}

// RecipientsOf returns the queue entries of the messages ids (queue_message index), ordered by message and id.
func (t *Tx) RecipientsOf(ctx context.Context, ids []int64) ([]Recipient, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	var rs []Recipient
	q, args := inQueryInt(`SELECT q.id, q.domain_id, q.instance_id, q.message_id, q.message_identifier, q.event, q.patient_ref, q.focal_ref, q.status,
		q.status_changed_at, q.version, COALESCE(q.claim_deadline, 0) AS claim_deadline, q.retry_count, q.exception,
		q.fetched_api_version, q.created_at, i.username, a.ident AS app_ident, q.status_history
		FROM queue q JOIN app_instances i ON i.id = q.instance_id JOIN applications a ON a.id = i.application_id
		WHERE q.message_id IN (?) ORDER BY q.message_id, q.id`, nil, ids)
	if err := t.sel(ctx, &rs, q, args...); err != nil {
		return nil, fmt.Errorf("recipients of %d messages: %w", len(ids), err)
	}
	return rs, nil
}

// BrowsedMessageByID returns one message with its domain and sender names, or ErrNotFound.
func (t *Tx) BrowsedMessageByID(ctx context.Context, id int64) (BrowsedMessage, error) {
	var rows []BrowsedMessage
	if err := t.sel(ctx, &rows, "SELECT "+browseCols+" FROM messages m WHERE m.id = ?", id); err != nil {
		return BrowsedMessage{}, fmt.Errorf("read message %d: %w", id, err)
	}
	if len(rows) == 0 {
		return BrowsedMessage{}, fmt.Errorf("message %d: %w", id, ErrNotFound)
	}
	return rows[0], t.nameBrowsed(ctx, rows)
}

// ExplainBrowse returns the query plan of each stream of q, as the database
// prints it (tests prove that every search is an index seek).
func (t *Tx) ExplainBrowse(ctx context.Context, q BrowseQuery) ([]string, error) {
	insts, err := t.instancesOfDomains(ctx, q)
	if err != nil {
		return nil, err
	}
	var plans []string
	for _, s := range q.streams(insts) {
		query, args := q.sql(s, t.dialect)
		var lines []string
		if t.dialect == SQLite {
			var rows []struct {
				ID     int    `db:"id"`
				Parent int    `db:"parent"`
				NotUse int    `db:"notused"`
				Detail string `db:"detail"`
			}
			if err := t.sel(ctx, &rows, "EXPLAIN QUERY PLAN "+query, args...); err != nil {
				return nil, fmt.Errorf("explain: %w", err)
			}
			for _, r := range rows {
				lines = append(lines, r.Detail)
			}
		} else if err := t.sel(ctx, &lines, "EXPLAIN "+query, args...); err != nil {
			return nil, fmt.Errorf("explain: %w", err)
		}
		plans = append(plans, strings.Join(lines, "\n"))
	}
	return plans, nil
}

package store

import (
	"context"
	"fmt"
	"strconv"
	"strings"
)

// AuditRow is one row of the audit trail (package audit gives it meaning).
type AuditRow struct {
	ID           int64  `db:"id"`
	At           int64  `db:"at"`
	Action       string `db:"action"`
	Result       string `db:"result"`
	Status       int    `db:"status"`
	ActorKind    string `db:"actor_kind"`
	Actor        string `db:"actor"`
	Application  string `db:"application"`
	Domain       string `db:"domain"`
	Client       string `db:"client"`
	LaunchUser   string `db:"launch_user"`
	TokenPatient string `db:"token_patient"`
	SourceIP     string `db:"source_ip"`
	RequestID    string `db:"request_id"`
	Patient      string `db:"patient"`
	Object       string `db:"object"`
	Detail       string `db:"detail"`
	Seq          int64  `db:"seq"`
	Hash         string `db:"hash"`
}

const auditDataCols = `at, action, result, status, actor_kind, actor, application, domain, client, launch_user,
	token_patient, source_ip, request_id, patient, object, detail`

const auditCols = `id, ` + auditDataCols + `, COALESCE(seq, 0) AS seq, COALESCE(hash, '') AS hash`

func (r AuditRow) args() []any {
	return []any{r.At, r.Action, r.Result, r.Status, r.ActorKind, r.Actor, r.Application, r.Domain, r.Client,
		r.LaunchUser, r.TokenPatient, r.SourceIP, r.RequestID, r.Patient, r.Object, r.Detail}
}

const insertAuditSQL = `INSERT INTO audit_events (` + auditDataCols + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

// InsertAudit appends one audit row in the transaction. It needs no answer:
// on PostgreSQL it goes with the transaction's next statement or COMMIT.
func (t *Tx) InsertAudit(ctx context.Context, r AuditRow) error {
	if err := t.queue(ctx, insertAuditSQL, r.args()...); err != nil {
		return fmt.Errorf("audit %s by %s: %w", r.Action, r.Actor, err)
	}
	return nil
}

// InsertAudits appends rows in one write transaction.
func (s *Store) InsertAudits(ctx context.Context, rows []AuditRow) error {
	return s.Update(ctx, func(tx *Tx) error {
		for _, r := range rows {
			if err := tx.InsertAudit(ctx, r); err != nil {
				return err
			}
		}
		return nil
	})
}

// AuditSeal is the state of the chain (the one row of audit_seal): its head
// (position and hash of the last record, or since migration 0026 of the last
// seal), its anchor (what retention removed: records up to position AnchorSeq,
// the chain's hash there AnchorHash), where the per-record chain of the
// records sealed before 0026 ends (LegacySeq, LegacyHash), the last seal and
// the last one removed by retention, the highest record id sealed and the ids
// below it that were not committed yet when the sealer passed (Gaps,
// "from-to@first seen µs,...").
type AuditSeal struct {
	HeadSeq        int64  `db:"head_seq"`
	HeadHash       string `db:"head_hash"`
	AnchorSeq      int64  `db:"anchor_seq"`
	AnchorHash     string `db:"anchor_hash"`
	LegacySeq      int64  `db:"legacy_seq"`
	LegacyHash     string `db:"legacy_hash"`
	SealSeq        int64  `db:"seal_seq"`
	SealAnchorSeq  int64  `db:"seal_anchor_seq"`
	SealAnchorHash string `db:"seal_anchor_hash"`
	SealedTo       int64  `db:"sealed_to"`
	Gaps           string `db:"gaps"`
}

// AuditBatch is one seal (a row of audit_seals): records IDs (ranges, see
// FormatAuditIDs), the last at chain position LastPos, Digests 16 bytes per
// record in that order, Hash the chain's hash after it.
type AuditBatch struct {
	Seq      int64  `db:"seq"`
	LastPos  int64  `db:"last_pos"`
	IDs      string `db:"ids"`
	Digests  []byte `db:"digests"`
	Hash     string `db:"hash"`
	SealedAt int64  `db:"sealed_at"`
}

// AuditIDRange is a run of record ids, From to To inclusive.
type AuditIDRange struct{ From, To int64 }

// FormatAuditIDs writes ascending ids as ranges: 7-9,12.
func FormatAuditIDs(ids []int64) string {
	var b strings.Builder
	for i := 0; i < len(ids); {
		j := i
		for j+1 < len(ids) && ids[j+1] == ids[j]+1 {
			j++
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatInt(ids[i], 10))
		if j > i {
			b.WriteByte('-')
			b.WriteString(strconv.FormatInt(ids[j], 10))
		}
		i = j + 1
	}
	return b.String()
}

// ParseAuditIDs reads what FormatAuditIDs wrote.
func ParseAuditIDs(s string) ([]AuditIDRange, error) {
	if s == "" {
		return nil, nil
	}
	var out []AuditIDRange
	for _, part := range strings.Split(s, ",") {
		from, to, isRange := strings.Cut(part, "-")
		if !isRange {
			to = from
		}
		f, err1 := strconv.ParseInt(from, 10, 64)
		t, err2 := strconv.ParseInt(to, 10, 64)
		if err1 != nil || err2 != nil || t < f || (len(out) > 0 && f <= out[len(out)-1].To) {
			return nil, fmt.Errorf("audit record ids %q: bad range %q", s, part)
		}
		out = append(out, AuditIDRange{f, t})
	}
	return out, nil
}

// AuditSealState reads the chain's state.
func (t *Tx) AuditSealState(ctx context.Context) (AuditSeal, error) {
	var s AuditSeal
	err := t.get(ctx, &s, `SELECT head_seq, head_hash, anchor_seq, anchor_hash, legacy_seq, legacy_hash, seal_seq,
		seal_anchor_seq, seal_anchor_hash, sealed_to, gaps FROM audit_seal WHERE id = 1`)
	if err != nil {
		return s, fmt.Errorf("read audit seal: %w", err)
	}
	return s, nil
}

// AuditAfter returns up to limit records with an id above afterID, in id order.
func (t *Tx) AuditAfter(ctx context.Context, afterID int64, limit int) ([]AuditRow, error) {
	var rows []AuditRow
	if err := t.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE id > ? ORDER BY id LIMIT ?", afterID, limit); err != nil {
		return nil, fmt.Errorf("read audit records after %d: %w", afterID, err)
	}
	return rows, nil
}

// AuditRanges returns the records with ids in rs (ascending), in id order.
func (t *Tx) AuditRanges(ctx context.Context, rs []AuditIDRange) ([]AuditRow, error) {
	var out []AuditRow
	const chunk = 100 // ranges a statement
	for len(rs) > 0 {
		n := min(len(rs), chunk)
		conds, args := make([]string, n), make([]any, 0, 2*n)
		for i, r := range rs[:n] {
			conds[i] = "id BETWEEN ? AND ?"
			args = append(args, r.From, r.To)
		}
		var rows []AuditRow
		if err := t.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE "+strings.Join(conds, " OR ")+" ORDER BY id", args...); err != nil {
			return nil, fmt.Errorf("read audit records %d-%d: %w", rs[0].From, rs[n-1].To, err)
		}
		out, rs = append(out, rows...), rs[n:]
	}
	return out, nil
}

// InsertAuditSeal appends seal b and moves the head to it; sealedTo and gaps
// are the state after it (see AuditSeal).
func (t *Tx) InsertAuditSeal(ctx context.Context, b AuditBatch, sealedTo int64, gaps string) error {
	if err := t.queue(ctx, "INSERT INTO audit_seals (seq, last_pos, ids, digests, hash, sealed_at) VALUES (?, ?, ?, ?, ?, ?)",
		b.Seq, b.LastPos, b.IDs, b.Digests, b.Hash, b.SealedAt); err != nil {
		return fmt.Errorf("write audit seal %d: %w", b.Seq, err)
	}
	if _, err := t.exec(ctx, `UPDATE audit_seal SET head_seq = ?, head_hash = ?, seal_seq = ?, sealed_to = ?, gaps = ?,
		updated_at = ? WHERE id = 1`, b.LastPos, b.Hash, b.Seq, sealedTo, gaps, b.SealedAt); err != nil {
		return fmt.Errorf("move audit head: %w", err)
	}
	return nil
}

// SetAuditGaps replaces the ids the sealer waits for.
func (t *Tx) SetAuditGaps(ctx context.Context, gaps string) error {
	if _, err := t.exec(ctx, "UPDATE audit_seal SET gaps = ? WHERE id = 1", gaps); err != nil {
		return fmt.Errorf("write audit gaps: %w", err)
	}
	return nil
}

// AuditChain returns up to limit records sealed before migration 0026 (the
// per-record chain) after position seq, in chain order.
func (s *Store) AuditChain(ctx context.Context, afterSeq int64, limit int) ([]AuditRow, error) {
	var rows []AuditRow
	err := s.View(ctx, func(tx *Tx) error {
		return tx.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE seq > ? ORDER BY seq LIMIT ?", afterSeq, limit)
	})
	if err != nil {
		return nil, fmt.Errorf("read audit chain: %w", err)
	}
	return rows, nil
}

// AuditSeals returns up to limit seals after seal seq, in chain order.
func (s *Store) AuditSeals(ctx context.Context, afterSeq int64, limit int) ([]AuditBatch, error) {
	var bs []AuditBatch
	err := s.View(ctx, func(tx *Tx) error {
		return tx.sel(ctx, &bs, "SELECT seq, last_pos, ids, digests, hash, sealed_at FROM audit_seals WHERE seq > ? ORDER BY seq LIMIT ?", afterSeq, limit)
	})
	if err != nil {
		return nil, fmt.Errorf("read audit seals: %w", err)
	}
	return bs, nil
}

// AuditRanges is Tx.AuditRanges in a read transaction of its own.
func (s *Store) AuditRanges(ctx context.Context, rs []AuditIDRange) ([]AuditRow, error) {
	var rows []AuditRow
	err := s.View(ctx, func(tx *Tx) error {
		var err error
		rows, err = tx.AuditRanges(ctx, rs)
		return err
	})
	return rows, err
}

// AuditAbove counts the records with an id above id and returns the first (ok false: none).
func (s *Store) AuditAbove(ctx context.Context, id int64) (n int64, first AuditRow, ok bool, err error) {
	err = s.View(ctx, func(tx *Tx) error {
		if err := tx.get(ctx, &n, "SELECT COUNT(*) FROM audit_events WHERE id > ?", id); err != nil {
			return err
		}
		rows, err := tx.AuditAfter(ctx, id, 1)
		if len(rows) > 0 {
			first, ok = rows[0], true
		}
		return err
	})
	if err != nil {
		err = fmt.Errorf("read unsealed audit records: %w", err)
	}
	return n, first, ok, err
}

// CountUnchainedAudit counts the records without a per-record chain position (all since migration 0026) up to id upTo.
func (s *Store) CountUnchainedAudit(ctx context.Context, upTo int64) (int64, error) {
	var n int64
	err := s.View(ctx, func(tx *Tx) error {
		return tx.get(ctx, &n, "SELECT COUNT(*) FROM audit_events WHERE seq IS NULL AND id <= ?", upTo)
	})
	if err != nil {
		return 0, fmt.Errorf("count audit records: %w", err)
	}
	return n, nil
}

// UnchainedAuditIDs returns up to limit ids of records without a per-record
// chain position (all since migration 0026) in afterID < id <= upTo, in order.
func (s *Store) UnchainedAuditIDs(ctx context.Context, afterID, upTo int64, limit int) ([]int64, error) {
	var ids []int64
	err := s.View(ctx, func(tx *Tx) error {
		return tx.sel(ctx, &ids, "SELECT id FROM audit_events WHERE seq IS NULL AND id > ? AND id <= ? ORDER BY id LIMIT ?", afterID, upTo, limit)
	})
	if err != nil {
		return nil, fmt.Errorf("read audit record ids: %w", err)
	}
	return ids, nil
}

// AuditFilter selects audit rows; zero fields do not filter.
type AuditFilter struct {
	Patient string
	Actor   string // instance, administrator or client name
	Action  string
	From    int64 // at >= From (Unix µs)
	To      int64 // at < To
	AfterID int64 // keyset paging: rows with a larger id
	Limit   int
}

// QueryAudit returns rows matching f in id (= time) order.
func (s *Store) QueryAudit(ctx context.Context, f AuditFilter) ([]AuditRow, error) {
	var where []string
	var args []any
	add := func(cond string, v any) { where = append(where, cond); args = append(args, v) }
	if f.Patient != "" {
		add("patient = ?", f.Patient)
	}
	if f.Actor != "" {
		where = append(where, "(actor = ? OR client = ?)")
		args = append(args, f.Actor, f.Actor)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.From != 0 {
		add("at >= ?", f.From)
	}
	if f.To != 0 {
		add("at < ?", f.To)
	}
	add("id > ?", f.AfterID)
	if f.Limit <= 0 {
		f.Limit = 1000
	}
	args = append(args, f.Limit)
	var rows []AuditRow
	err := s.View(ctx, func(tx *Tx) error {
		return tx.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE "+strings.Join(where, " AND ")+" ORDER BY id LIMIT ?", args...)
	})
	if err != nil {
		return nil, fmt.Errorf("query audit trail: %w", err)
	}
	return rows, nil
}

// PurgeAudit removes the oldest records recorded before before (Unix µs), in
// chain order, and moves the chain's anchor past them so that the rest still
// verifies: up to limit records of the per-record chain (sealed before
// migration 0026) while there are any, else the records of the oldest seal
// when all of them are old enough, and that seal. It returns how many records
// it removed (0: none is due).
func (t *Tx) PurgeAudit(ctx context.Context, before int64, limit int) (int64, error) {
	st, err := t.AuditSealState(ctx)
	if err != nil {
		return 0, err
	}
	if st.AnchorSeq < st.LegacySeq {
		return t.purgeLegacyAudit(ctx, before, limit, st.LegacySeq)
	}
	var bs []AuditBatch
	if err := t.sel(ctx, &bs, "SELECT seq, last_pos, ids, digests, hash, sealed_at FROM audit_seals WHERE seq > ? ORDER BY seq LIMIT 1", st.SealAnchorSeq); err != nil {
		return 0, fmt.Errorf("read oldest audit seal: %w", err)
	}
	if len(bs) == 0 {
		return 0, nil
	}
	b := bs[0]
	ranges, err := ParseAuditIDs(b.IDs)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, r := range ranges {
		var young int64
		if err := t.get(ctx, &young, "SELECT COUNT(*) FROM audit_events WHERE id BETWEEN ? AND ? AND at >= ?", r.From, r.To, before); err != nil {
			return 0, fmt.Errorf("read oldest audit records: %w", err)
		}
		if young > 0 {
			return 0, nil
		}
		n += r.To - r.From + 1
	}
	for _, r := range ranges {
		if err := t.queue(ctx, "DELETE FROM audit_events WHERE id BETWEEN ? AND ?", r.From, r.To); err != nil {
			return 0, fmt.Errorf("purge audit records: %w", err)
		}
	}
	if err := t.queue(ctx, "DELETE FROM audit_seals WHERE seq = ?", b.Seq); err != nil {
		return 0, fmt.Errorf("purge audit seal %d: %w", b.Seq, err)
	}
	if _, err := t.exec(ctx, `UPDATE audit_seal SET anchor_seq = ?, anchor_hash = ?, seal_anchor_seq = ?, seal_anchor_hash = ?
		WHERE id = 1`, b.LastPos, b.Hash, b.Seq, b.Hash); err != nil {
		return 0, fmt.Errorf("move audit anchor: %w", err)
	}
	return n, nil
}

// purgeLegacyAudit is PurgeAudit for the records of the per-record chain (up to position legacySeq).
func (t *Tx) purgeLegacyAudit(ctx context.Context, before int64, limit int, legacySeq int64) (int64, error) {
	var rows []AuditRow
	if err := t.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE seq IS NOT NULL AND seq <= ? ORDER BY seq LIMIT ?", legacySeq, limit); err != nil {
		return 0, fmt.Errorf("read oldest audit rows: %w", err)
	}
	n := 0
	for n < len(rows) && rows[n].At < before {
		n++
	}
	if n == 0 {
		return 0, nil
	}
	last := rows[n-1]
	if _, err := t.exec(ctx, "DELETE FROM audit_events WHERE seq IS NOT NULL AND seq <= ?", last.Seq); err != nil {
		return 0, fmt.Errorf("purge audit rows: %w", err)
	}
	if _, err := t.exec(ctx, "UPDATE audit_seal SET anchor_seq = ?, anchor_hash = ? WHERE id = 1", last.Seq, last.Hash); err != nil {
		return 0, fmt.Errorf("move audit anchor: %w", err)
	}
	return int64(n), nil
}

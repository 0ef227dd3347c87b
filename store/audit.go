package store

import (
	"context"
	"fmt"
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

// AuditSeal is the chain's head (last sealed seq and hash) and its anchor
// (what retention removed: rows up to AnchorSeq, the last with AnchorHash).
type AuditSeal struct {
	HeadSeq    int64  `db:"head_seq"`
	HeadHash   string `db:"head_hash"`
	AnchorSeq  int64  `db:"anchor_seq"`
	AnchorHash string `db:"anchor_hash"`
}

// AuditSealState reads the chain's head and anchor.
func (t *Tx) AuditSealState(ctx context.Context) (AuditSeal, error) {
	var s AuditSeal
	err := t.get(ctx, &s, "SELECT head_seq, head_hash, anchor_seq, anchor_hash FROM audit_seal WHERE id = 1")
	if err != nil {
		return s, fmt.Errorf("read audit seal: %w", err)
	}
	return s, nil
}

// UnsealedAudit returns up to limit rows not in the chain yet, in id order.
func (t *Tx) UnsealedAudit(ctx context.Context, limit int) ([]AuditRow, error) {
	var rows []AuditRow
	if err := t.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE seq IS NULL ORDER BY id LIMIT ?", limit); err != nil {
		return nil, fmt.Errorf("read unsealed audit rows: %w", err)
	}
	return rows, nil
}

// SealAudit puts rows (with Seq and Hash set) into the chain and moves the head.
func (t *Tx) SealAudit(ctx context.Context, rows []AuditRow, at int64) error {
	for _, r := range rows {
		if err := t.queue(ctx, "UPDATE audit_events SET seq = ?, hash = ? WHERE id = ? AND seq IS NULL", r.Seq, r.Hash, r.ID); err != nil {
			return fmt.Errorf("seal audit row %d: %w", r.ID, err)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	last := rows[len(rows)-1]
	if _, err := t.exec(ctx, "UPDATE audit_seal SET head_seq = ?, head_hash = ?, updated_at = ? WHERE id = 1", last.Seq, last.Hash, at); err != nil {
		return fmt.Errorf("move audit head: %w", err)
	}
	return nil
}

// AuditChain returns up to limit sealed rows after seq, in chain order.
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

// OldestUnsealedAudit returns the oldest row not in the chain (ok false: none).
func (s *Store) OldestUnsealedAudit(ctx context.Context) (AuditRow, bool, error) {
	var rows []AuditRow
	err := s.View(ctx, func(tx *Tx) error {
		return tx.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE seq IS NULL ORDER BY id LIMIT 1")
	})
	if err != nil || len(rows) == 0 {
		return AuditRow{}, false, err
	}
	return rows[0], true, nil
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

// PurgeAudit removes up to limit of the oldest sealed rows recorded before
// before (Unix µs), in chain order, and moves the chain's anchor past them so
// that the rest still verifies. It returns how many it removed.
func (t *Tx) PurgeAudit(ctx context.Context, before int64, limit int) (int64, error) {
	var rows []AuditRow
	if err := t.sel(ctx, &rows, "SELECT "+auditCols+" FROM audit_events WHERE seq IS NOT NULL ORDER BY seq LIMIT ?", limit); err != nil {
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

package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// StorageItem is one item of the Storage Service (SPEC.md §9): opaque content
// an application instance keeps for one patient.
type StorageItem struct {
	ID          int64  `db:"id"`
	DomainID    int64  `db:"domain_id"`
	InstanceID  int64  `db:"instance_id"`
	PatientRef  string `db:"patient_ref"`
	ObjectType  string `db:"object_type"`
	ObjectKey   string `db:"object_key"`
	ContentType string `db:"content_type"`
	Content     []byte `db:"content"`
	Size        int64  `db:"size"`
	Version     string `db:"version"`
	CreatedAt   int64  `db:"created_at"`
	UpdatedAt   int64  `db:"updated_at"`
}

const storageCols = `id, domain_id, instance_id, patient_ref, object_type, object_key, content_type, content, size,
	version, created_at, updated_at`

// ErrDuplicateKey is returned when an item with the same object type and key
// already exists for the instance and patient.
var ErrDuplicateKey = errors.New("an item with this object type and key exists")

// InsertStorageItem stores a new item and returns its id.
func (t *Tx) InsertStorageItem(ctx context.Context, it StorageItem) (int64, error) {
	if err := t.checkStorageKey(ctx, it); err != nil {
		return 0, err
	}
	id, err := t.insertID(ctx, `INSERT INTO storage_items (domain_id, instance_id, patient_ref, object_type, object_key,
		content_type, content, size, version, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		it.DomainID, it.InstanceID, it.PatientRef, it.ObjectType, it.ObjectKey, it.ContentType, it.Content,
		int64(len(it.Content)), it.Version, it.CreatedAt, it.UpdatedAt)
	if err != nil {
		return 0, fmt.Errorf("store storage item: %w", err)
	}
	return id, nil
}

// checkStorageKey refuses a second item with the same (instance, patient,
// type, key); the unique index is the backstop under concurrency.
func (t *Tx) checkStorageKey(ctx context.Context, it StorageItem) error {
	if it.ObjectKey == "" {
		return nil
	}
	var id int64
	err := t.get(ctx, &id, `SELECT id FROM storage_items WHERE instance_id = ? AND patient_ref = ? AND object_type = ?
		AND object_key = ? AND object_key <> '' AND id <> ?`, it.InstanceID, it.PatientRef, it.ObjectType, it.ObjectKey, it.ID)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("check storage key: %w", err)
	}
	return fmt.Errorf("storage item %d: %w", id, ErrDuplicateKey)
}

// UpdateStorageItem replaces the content, type, key and version of item it.ID
// of it.InstanceID (the owner and patient never change).
func (t *Tx) UpdateStorageItem(ctx context.Context, it StorageItem) error {
	if err := t.checkStorageKey(ctx, it); err != nil {
		return err
	}
	res, err := t.exec(ctx, `UPDATE storage_items SET object_type = ?, object_key = ?, content_type = ?, content = ?,
		size = ?, version = ?, updated_at = ? WHERE id = ? AND instance_id = ?`,
		it.ObjectType, it.ObjectKey, it.ContentType, it.Content, int64(len(it.Content)), it.Version, it.UpdatedAt,
		it.ID, it.InstanceID)
	if err != nil {
		return fmt.Errorf("update storage item %d: %w", it.ID, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("storage item %d: %w", it.ID, ErrNotFound)
	}
	return nil
}

// StorageItemOf returns item id of instanceID, or ErrNotFound (also for
// another instance's item: they are indistinguishable from missing ones).
func (t *Tx) StorageItemOf(ctx context.Context, instanceID, id int64) (StorageItem, error) {
	var it StorageItem
	err := t.get(ctx, &it, "SELECT "+storageCols+" FROM storage_items WHERE id = ? AND instance_id = ?", id, instanceID)
	if errors.Is(err, sql.ErrNoRows) {
		return it, fmt.Errorf("storage item %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return it, fmt.Errorf("read storage item %d: %w", id, err)
	}
	return it, nil
}

// DeleteStorageItem deletes item id of instanceID; ErrNotFound when there is none.
func (t *Tx) DeleteStorageItem(ctx context.Context, instanceID, id int64) error {
	res, err := t.exec(ctx, "DELETE FROM storage_items WHERE id = ? AND instance_id = ?", id, instanceID)
	if err != nil {
		return fmt.Errorf("delete storage item %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return fmt.Errorf("storage item %d: %w", id, ErrNotFound)
	}
	return nil
}

// StorageUsage is the number of items and content bytes an instance keeps for a patient.
func (t *Tx) StorageUsage(ctx context.Context, instanceID int64, patient string) (items, bytes int64, err error) {
	var row struct {
		N     int64 `db:"n"`
		Bytes int64 `db:"bytes"`
	}
	err = t.get(ctx, &row, `SELECT COUNT(*) AS n, COALESCE(SUM(size), 0) AS bytes FROM storage_items
		WHERE instance_id = ? AND patient_ref = ?`, instanceID, patient)
	if err != nil {
		return 0, 0, fmt.Errorf("storage usage of %s: %w", patient, err)
	}
	return row.N, row.Bytes, nil
}

// Match is how a StorageQuery compares a text field.
type Match int

// The matches of StorageQuery.ObjectKey (SPEC.md §9: equals, starts with, contains).
const (
	MatchEquals Match = iota
	MatchPrefix
	MatchContains
)

// StorageQuery selects items of one instance and patient (SPEC.md §9 search arguments).
type StorageQuery struct {
	InstanceID int64
	Patient    string
	ID         int64 // 0: any
	ObjectType string
	ObjectKey  string
	KeyMatch   Match
	// UpdatedAfter/UpdatedBefore bound updated_at (Unix µs); Inclusive flags make them ge/le.
	UpdatedAfter, UpdatedBefore     int64
	AfterInclusive, BeforeInclusive bool
	Descending                      bool // newest first (default oldest first)
	Offset, Limit                   int
}

// SearchStorageItems returns a page of the items matching q and their total count.
func (t *Tx) SearchStorageItems(ctx context.Context, q StorageQuery) ([]StorageItem, int, error) {
	var b strings.Builder
	args := []any{q.InstanceID, q.Patient}
	b.WriteString(" FROM storage_items WHERE instance_id = ? AND patient_ref = ?")
	if q.ID != 0 {
		b.WriteString(" AND id = ?")
		args = append(args, q.ID)
	}
	if q.ObjectType != "" {
		b.WriteString(" AND object_type = ?")
		args = append(args, q.ObjectType)
	}
	if q.ObjectKey != "" {
		switch q.KeyMatch {
		case MatchPrefix:
			b.WriteString(` AND object_key LIKE ? ESCAPE '\'`)
			args = append(args, likeEscape(q.ObjectKey)+"%")
		case MatchContains:
			b.WriteString(` AND object_key LIKE ? ESCAPE '\'`)
			args = append(args, "%"+likeEscape(q.ObjectKey)+"%")
		default:
			b.WriteString(" AND object_key = ?")
			args = append(args, q.ObjectKey)
		}
	}
	if q.UpdatedAfter != 0 {
		b.WriteString(map[bool]string{false: " AND updated_at > ?", true: " AND updated_at >= ?"}[q.AfterInclusive])
		args = append(args, q.UpdatedAfter)
	}
	if q.UpdatedBefore != 0 {
		b.WriteString(map[bool]string{false: " AND updated_at < ?", true: " AND updated_at <= ?"}[q.BeforeInclusive])
		args = append(args, q.UpdatedBefore)
	}
	var total int
	if err := t.get(ctx, &total, "SELECT COUNT(*)"+b.String(), args...); err != nil {
		return nil, 0, fmt.Errorf("count storage items: %w", err)
	}
	order := " ORDER BY updated_at, id"
	if q.Descending {
		order = " ORDER BY updated_at DESC, id DESC"
	}
	var items []StorageItem
	args = append(args, q.Limit, q.Offset)
	if err := t.sel(ctx, &items, "SELECT "+storageCols+b.String()+order+" LIMIT ? OFFSET ?", args...); err != nil {
		return nil, 0, fmt.Errorf("search storage items: %w", err)
	}
	return items, total, nil
}

// likeEscape escapes the LIKE wildcards of s (with '\' as the escape character).
func likeEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// DeleteStorageItemsIdleSince deletes at most limit items not updated since
// before (Unix µs), oldest first, and returns how many it deleted and their bytes.
func (t *Tx) DeleteStorageItemsIdleSince(ctx context.Context, before int64, limit int) (n, bytes int64, err error) {
	var rows []struct {
		ID   int64 `db:"id"`
		Size int64 `db:"size"`
	}
	if err := t.sel(ctx, &rows, "SELECT id, size FROM storage_items WHERE updated_at < ? ORDER BY updated_at LIMIT ?", before, limit); err != nil {
		return 0, 0, fmt.Errorf("find idle storage items: %w", err)
	}
	for _, r := range rows {
		if _, err := t.exec(ctx, "DELETE FROM storage_items WHERE id = ?", r.ID); err != nil {
			return n, bytes, fmt.Errorf("delete idle storage item %d: %w", r.ID, err)
		}
		n++
		bytes += r.Size
	}
	return n, bytes, nil
}

// LockStoragePatient serialises writes to one instance's items of one patient
// until the transaction ends, so that concurrent writes cannot both pass the
// quota check (PostgreSQL: a transaction-scoped advisory lock; SQLite has one
// writer anyway).
func (t *Tx) LockStoragePatient(ctx context.Context, instanceID int64, patient string) error {
	if t.dialect != Postgres {
		return nil
	}
	if _, err := t.exec(ctx, "SELECT pg_advisory_xact_lock(?)", postLockKey("storage", instanceID, patient)); err != nil {
		return fmt.Errorf("lock storage items of %s: %w", patient, err)
	}
	return nil
}

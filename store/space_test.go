package store_test

import (
	"crypto/rand"
	"database/sql"
	"os"
	"path/filepath"
	"testing"

	"github.com/koppelpoort/koppelpoort/store"
)

// A new SQLite file has incremental auto-vacuum: the space of removed bodies
// goes back to the file system in bounded steps. A file created by an older
// version (auto_vacuum NONE) is left alone.
func TestSQLiteReclaimsSpace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kp.db")
	s, err := store.Open(ctx, store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if mode, err := s.SQLiteAutoVacuum(ctx); err != nil || mode != 2 {
		t.Fatalf("auto_vacuum of a new file: %d %v, want 2 (incremental)", mode, err)
	}
	blob := make([]byte, 64<<10) // random: SQLite bodies are stored compressed
	_, _ = rand.Read(blob)
	var ids []int64
	if err := s.Update(ctx, func(tx *store.Tx) error {
		for range 200 {
			id, err := tx.InsertBody(ctx, "json", blob)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.Exec(ctx, "DELETE FROM message_bodies")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	freed, left, err := s.ReclaimSpace(ctx, 1000)
	if err != nil || freed != 1000 || left == 0 {
		t.Fatalf("first step: freed %d, left %d, %v; want 1000 and more left", freed, left, err)
	}
	for left > 0 {
		if freed, left, err = s.ReclaimSpace(ctx, 1000); err != nil || freed == 0 {
			t.Fatalf("reclaim: freed %d, left %d, %v", freed, left, err)
		}
	}
	if err := s.Close(); err != nil { // final checkpoint: the WAL goes into the file
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() > 2<<20 {
		t.Fatalf("file after removing 12.5 MiB of bodies: %d bytes (%v)", fi.Size(), err)
	}

	old := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite", old)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("CREATE TABLE left_by_an_older_version (x INTEGER)"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	o, err := store.Open(ctx, store.Config{DSN: old}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if mode, _ := o.SQLiteAutoVacuum(ctx); mode != 0 {
		t.Fatalf("an existing file's auto_vacuum changed to %d", mode)
	}
	if freed, _, err := o.ReclaimSpace(ctx, 1000); err != nil || freed != 0 {
		t.Fatalf("reclaim on a file without incremental vacuum: %d %v", freed, err)
	}
}

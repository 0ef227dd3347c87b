package store_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestForeignKeysOfDeletedRowsAreIndexed: when the code deletes rows of a
// table, the database checks every foreign key pointing at that table by
// looking up the referencing column. Without an index on that column each
// delete scans the whole referencing table: removing one message body scanned
// every message, and a removal run over 500,000 due messages never finished.
// The tables deleted from are found in the project's Go source, so a new
// DELETE is covered without editing this test.
func TestForeignKeysOfDeletedRowsAreIndexed(t *testing.T) {
	deleted := tablesDeletedFrom(t)
	if !deleted["message_bodies"] {
		t.Fatalf("found no DELETE FROM message_bodies in the source; the scan is broken: %v", deleted)
	}
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s, err := store.Open(ctx, store.Config{DSN: b.DSN}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var fks []foreignKey
		if err := s.View(ctx, func(tx *store.Tx) error {
			var err error
			fks, err = foreignKeys(tx, b.Name)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		checked := 0
		for _, fk := range fks {
			if !deleted[fk.Parent] {
				continue
			}
			checked++
			if !fk.Indexed {
				t.Errorf("%s.%s references %s, which the code deletes from, and has no index starting with it: every delete scans %s",
					fk.Child, fk.Column, fk.Parent, fk.Child)
			}
		}
		if checked == 0 {
			t.Fatalf("no foreign key points at a table the code deletes from; the catalog query is broken (%d keys)", len(fks))
		}
	})
}

type foreignKey struct {
	Child, Column, Parent string
	Indexed               bool
}

func foreignKeys(tx *store.Tx, dialect string) ([]foreignKey, error) {
	var fks []foreignKey
	if dialect == "postgres" {
		// Single-column keys (all of ours); indexed when an index's first column is the key column.
		err := tx.Select(ctx, &fks, `SELECT c.conrelid::regclass::text AS child, a.attname AS column,
				c.confrelid::regclass::text AS parent,
				EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1]) AS indexed
			FROM pg_constraint c JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
			WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace`)
		return fks, err
	}
	var tables []string
	if err := tx.Select(ctx, &tables, "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"); err != nil {
		return nil, err
	}
	for _, child := range tables {
		var keys []struct {
			Parent string `db:"table"`
			Column string `db:"from"`
		}
		if err := tx.Select(ctx, &keys, `SELECT "table", "from" FROM pragma_foreign_key_list(?)`, child); err != nil {
			return nil, err
		}
		for _, k := range keys {
			var n int
			err := tx.Get(ctx, &n, `SELECT COUNT(*) FROM pragma_index_list(?) l, pragma_index_info(l.name) i
				WHERE i.seqno = 0 AND i.name = ?`, child, k.Column)
			if err != nil {
				return nil, err
			}
			fks = append(fks, foreignKey{Child: child, Column: k.Column, Parent: k.Parent, Indexed: n > 0})
		}
	}
	return fks, nil
}

// tablesDeletedFrom scans the module's non-test Go files for DELETE FROM <table>.
func tablesDeletedFrom(t *testing.T) map[string]bool {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`DELETE FROM ([a-z_]+)`)
	found := map[string]bool{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			found[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	names := make([]string, 0, len(found))
	for n := range found {
		names = append(names, n)
	}
	sort.Strings(names)
	t.Logf("tables the code deletes from: %s", strings.Join(names, ", "))
	return found
}

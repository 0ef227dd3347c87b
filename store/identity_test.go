package store_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// A SQLite file replaced under a running store (a restore by copying a backup
// into place) moves the Epoch, so caches start over, and makes Ready fail: the
// open connections still use the old file.
func TestSQLiteFileReplacedMovesEpoch(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kp.db")
	s, err := store.Open(ctx, store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	epoch, gen := s.Epoch(), s.InstancesGeneration()
	if err := s.Ready(ctx); err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path+".restored", raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".restored", path); err != nil {
		t.Fatal(err)
	}
	err = s.Ready(ctx)
	if err == nil || !strings.Contains(err.Error(), "replaced") {
		t.Fatalf("Ready after the file was replaced: %v", err)
	}
	time.Sleep(10 * time.Millisecond)
	if s.Epoch() == epoch || s.InstancesGeneration() == gen {
		t.Fatalf("epoch %d → %d, instances generation %d → %d: not moved", epoch, s.Epoch(), gen, s.InstancesGeneration())
	}
}

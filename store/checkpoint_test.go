package store_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// The writer does not checkpoint, so the background checkpointer must: after a burst of writes the WAL
// is reused instead of growing, and Close leaves an empty WAL with everything in the database file.
func TestBackgroundCheckpointKeepsWALBounded(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kp.db")
	s, err := store.Open(ctx, store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	domainID, inst := fixture(t, s, "D", "a")
	walSize := func() int64 {
		fi, err := os.Stat(path + "-wal")
		if err != nil {
			return 0
		}
		return fi.Size()
	}
	var maxWAL int64
	for round := 0; round < 60; round++ {
		queueMessages(t, s, domainID, inst, 200)
		time.Sleep(20 * time.Millisecond)
		if w := walSize(); w > maxWAL {
			maxWAL = w
		}
	}
	// 6,000 messages write far more than 16 MiB of pages without checkpoints being reused.
	t.Logf("max WAL %d", maxWAL)
	if maxWAL > 16<<20 {
		t.Fatalf("WAL grew to %d bytes: background checkpoints are not keeping up", maxWAL)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if w := walSize(); w != 0 {
		t.Fatalf("WAL is %d bytes after Close, want 0 (final checkpoint)", w)
	}
	s2, err := store.Open(ctx, store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	err = s2.View(ctx, func(tx *store.Tx) error {
		n, err := tx.CountMessages(ctx)
		if err == nil && n != 12000 {
			t.Errorf("%d messages after reopening, want 12000", n)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The writer counts its batches, the requests they carried and its busy time.
func TestWriterStats(t *testing.T) {
	s, err := store.Open(ctx, store.Config{DSN: filepath.Join(t.TempDir(), "kp.db")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := s.WriterStats()
	domainID, inst := fixture(t, s, "D", "a")
	done := make(chan struct{})
	for range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			queueMessages(t, s, domainID, inst, 5)
		}()
	}
	for range 8 {
		<-done
	}
	got := s.WriterStats()
	if n := got.Requests - before.Requests; n != 9 { // the fixture and the eight writers
		t.Fatalf("requests %d, want 9", n)
	}
	if b := got.Batches - before.Batches; b < 1 || b > 9 {
		t.Fatalf("batches %d, want 1..9", b)
	}
	if got.Busy <= before.Busy {
		t.Fatalf("busy time did not grow: %v", got.Busy)
	}
}

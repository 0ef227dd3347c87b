package store_test

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// writeBodies stores n message bodies of size bytes each, in batches of 50 per Update.
func writeBodies(t *testing.T, s *store.Store, n, size int) {
	t.Helper()
	body := make([]byte, size) // random: SQLite bodies are stored compressed
	_, _ = rand.Read(body)
	for done := 0; done < n; done += 50 {
		err := s.Update(ctx, func(tx *store.Tx) error {
			for i := 0; i < 50 && done+i < n; i++ {
				if _, err := tx.InsertBody(ctx, "json", body); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// The background checkpointer copies committed pages into the database file
// shortly after a burst of writes far below the writer's own checkpoint
// threshold; without it they would stay in the WAL.
func TestBackgroundCheckpointCopiesIntoTheDatabase(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kp.db")
	s, err := store.Open(ctx, store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	before := fileSize(path)
	writeBodies(t, s, 200, 8<<10) // ~1.6 MB, ~400 pages
	deadline := time.Now().Add(10 * time.Second)
	for fileSize(path)-before < 1<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("database file grew %d bytes after the burst; the pages stayed in the WAL (%d bytes)",
				fileSize(path)-before, fileSize(path+"-wal"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Under a steady stream of writes (no pause for the WAL to be started over)
// the WAL stays bounded, and Close leaves an empty WAL with everything in the
// database file.
func TestWALStaysBoundedUnderSteadyWrites(t *testing.T) {
	path := filepath.Join(t.TempDir(), "kp.db")
	s, err := store.Open(ctx, store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var maxWAL int64
	for round := 0; round < 12; round++ {
		writeBodies(t, s, 500, 8<<10) // 4 MB per round, 48 MB in all
		maxWAL = max(maxWAL, fileSize(path+"-wal"))
	}
	// The writer checkpoints every 4,000 pages (16 MiB); a batch or two may come on top.
	if maxWAL > 24<<20 {
		t.Fatalf("WAL grew to %d bytes under steady writes", maxWAL)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if w := fileSize(path + "-wal"); w != 0 {
		t.Fatalf("WAL is %d bytes after Close, want 0 (final checkpoint)", w)
	}
	s2, err := store.Open(ctx, store.Config{DSN: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	err = s2.View(ctx, func(tx *store.Tx) error {
		_, body, err := tx.Body(ctx, 6000)
		if err == nil && len(body) != 8<<10 {
			t.Errorf("body 6000 has %d bytes after reopening", len(body))
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

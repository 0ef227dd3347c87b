package store

import (
	"context"
	"time"
)

// WAL checkpoints (SQLite) run mostly in the background, not in the writer.
// By default SQLite checkpoints inside the COMMIT that grows the WAL past
// 1,000 pages: the one writer every request waits for then copies those pages
// into the database file and fsyncs it. With group commit, a goroutine runs a
// PASSIVE checkpoint on a read connection shortly after commits instead: it
// copies what no reader still needs while the writer goes on appending.
//
// That alone does not bound the WAL: SQLite starts the WAL file over only when
// a write transaction begins with every frame copied, which under a steady
// stream of writes never happens. So the writer still checkpoints itself, every
// writerCheckpointPages pages; by then the background has copied nearly
// everything, its checkpoint is short, and the next write restarts the WAL.
// Close runs a final TRUNCATE checkpoint.

// writerCheckpointPages is the writer's wal_autocheckpoint (4 KiB pages: 16 MiB).
const writerCheckpointPages = 4000

// checkpointEvery is the longest a committed batch waits before the next checkpoint.
const checkpointEvery = 200 * time.Millisecond

func (s *Store) startCheckpointer() {
	s.ckptKick = make(chan struct{}, 1)
	s.ckptDone = make(chan struct{})
	go s.checkpointLoop()
}

// kickCheckpoint tells the checkpointer that the WAL grew (never blocks).
func (s *Store) kickCheckpoint() {
	if s.ckptKick == nil {
		return
	}
	select {
	case s.ckptKick <- struct{}{}:
	default:
	}
}

func (s *Store) checkpointLoop() {
	defer close(s.ckptDone)
	for {
		select {
		case <-s.closing:
			return
		case <-s.ckptKick:
		}
		select {
		case <-s.closing:
			return
		case <-time.After(checkpointEvery):
		}
		if _, err := s.r.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
			s.log.Warn("store: background WAL checkpoint failed (retried after the next commit)", "err", err)
		}
	}
}

// finalCheckpoint copies the whole WAL into the database and truncates it
// (the writer is stopped by then).
func (s *Store) finalCheckpoint() {
	if s.ckptDone == nil {
		return
	}
	<-s.ckptDone
	if _, err := s.w.ExecContext(context.Background(), "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		s.log.Warn("store: final WAL checkpoint failed (SQLite completes it on the next open)", "err", err)
	}
}

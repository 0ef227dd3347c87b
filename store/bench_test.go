package store_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/koppelpoort/koppelpoort/store"
)

// writeOne is one request's worth of writes: a message and its queue entry.
func writeOne(tx *store.Tx, dID, iID int64, i int64) error {
	mid, err := tx.InsertMessage(ctx, store.Message{DomainID: dID, SenderInstanceID: iID, Event: "E", MessageIdentifier: fmt.Sprint(i)})
	if err != nil {
		return err
	}
	_, err = tx.InsertEntry(ctx, store.Entry{DomainID: dID, InstanceID: iID, MessageID: mid, Event: "E",
		Status: store.StatusNew, StatusChangedAt: 1, Version: "v", CreatedAt: 1})
	return err
}

// BenchmarkUpdateSQLite measures durable write transactions on SQLite with
// synchronous=FULL: one at a time, and 16 concurrent writers (where group commit helps).
func BenchmarkUpdateSQLite(b *testing.B) {
	for _, par := range []int{1, 16} {
		b.Run(fmt.Sprintf("writers=%d", par), func(b *testing.B) {
			s, err := store.Open(ctx, store.Config{DSN: filepath.Join(b.TempDir(), "b.db")}, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			dID, iID := fixture(b, s, "Bench", "u1")
			var n int64
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := s.Update(ctx, func(tx *store.Tx) error { n++; return writeOne(tx, dID, iID, n) }); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
		})
	}
}

// BenchmarkClaimLargeQueue measures one claim when the instance's queue holds
// a long history (KOPPELPOORT_BENCH_QUEUE_ROWS rows, default 100000, e.g.
// 1000000) of processed entries: the claim must stay an index seek.
func BenchmarkClaimLargeQueue(b *testing.B) {
	rows := 100000
	if v := os.Getenv("KOPPELPOORT_BENCH_QUEUE_ROWS"); v != "" {
		rows, _ = strconv.Atoi(v)
	}
	s, err := store.Open(ctx, store.Config{DSN: filepath.Join(b.TempDir(), "q.db")}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	dID, iID := fixture(b, s, "Big", "u1")
	ids := queueMessages(b, s, dID, iID, 1)
	bulk := func(n int, status string) {
		err := s.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < ?)
				INSERT INTO queue (domain_id, instance_id, message_id, event, patient_ref, focal_ref, status,
				status_changed_at, version, retry_count, exception, fetched_api_version, created_at)
				SELECT ?, ?, (SELECT message_id FROM queue WHERE id = ?), 'E', '', '', ?, 1, 'v', 0, '', '', 1 FROM n`,
				n, dID, iID, ids[0], status)
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	bulk(rows, store.StatusSuccess)
	bulk(b.N, store.StatusNew)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		err := s.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.ClaimNext(ctx, iID, store.Filter{}, store.Claim{Now: 1, Deadline: 2, Version: "c"})
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(rows), "history-rows")
}

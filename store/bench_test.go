package store_test

import (
	"fmt"
	"path/filepath"
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

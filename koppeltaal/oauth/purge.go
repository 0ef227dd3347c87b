package oauth

import (
	"context"
	"fmt"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// PurgeAfter is how long expired launches, codes and tokens are kept (for
// investigating a complaint) before Purge deletes them.
const PurgeAfter = 24 * time.Hour

// Purge deletes tokens whose access and refresh lifetimes ended, codes and
// launches that expired, all at least PurgeAfter ago, and launches no longer
// referenced. It returns the number of rows deleted.
func (s *Server) Purge(ctx context.Context) (int64, error) {
	cutoff := s.clock().Add(-PurgeAfter).UnixMicro()
	var n int64
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		for _, q := range []struct{ what, sql string }{
			{"tokens", "DELETE FROM oauth_tokens WHERE access_expires_at < ? AND refresh_expires_at < ?"},
			{"codes", "DELETE FROM oauth_codes WHERE expires_at < ?"},
			{"launches", `DELETE FROM oauth_launches WHERE expires_at < ?
				AND NOT EXISTS (SELECT 1 FROM oauth_tokens t WHERE t.launch_id = oauth_launches.id)
				AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.launch_id = oauth_launches.id)`},
		} {
			args := []any{cutoff}
			if q.what == "tokens" {
				args = append(args, cutoff)
			}
			res, err := tx.Exec(ctx, q.sql, args...)
			if err != nil {
				return fmt.Errorf("purge expired %s: %w", q.what, err)
			}
			k, _ := res.RowsAffected()
			n += k
		}
		return nil
	})
	return n, err
}

// Run purges expired grants every hour until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.Purge(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("oauth: purge failed", "err", err)
		} else if n > 0 {
			s.log.Info("oauth: expired grants purged", "rows", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

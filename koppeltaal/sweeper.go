package koppeltaal

import (
	"context"
	"fmt"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// Sweep returns claims whose timeout passed to New, and moves entries claimed
// MaxRetries times without an acknowledgement to MaximumRetriesExceeded.
func (s *Service) Sweep(ctx context.Context) (store.SweepResult, error) {
	now := s.now()
	var r store.SweepResult
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		r, err = tx.Sweep(ctx, now.UnixMicro(), s.cfg.MaxRetries, FormatVersion(now))
		return err
	})
	if err != nil {
		return r, fmt.Errorf("sweep claims: %w", err)
	}
	if r.Requeued > 0 || r.MaxRetries > 0 {
		s.metrics.Sweeps.WithLabelValues("requeued").Add(float64(r.Requeued))
		s.metrics.Sweeps.WithLabelValues("max_retries").Add(float64(r.MaxRetries))
		s.log.Info("koppeltaal: claim sweep", "requeued", r.Requeued, "max_retries_exceeded", r.MaxRetries)
	}
	return r, nil
}

// SweeperJob names the claim sweeper's lease (store.RunExclusive).
const SweeperJob = "koppeltaal-sweeper"

// Run sweeps every SweepInterval until ctx ends, in one process at a time
// among all processes sharing the database (store.RunExclusive): the others
// stand by and one takes over when the sweeping one stops. The lease lasts
// three sweep intervals (1 s to 15 s): a killed sweeper is replaced about as
// fast as a sweep matters.
func (s *Service) Run(ctx context.Context) error {
	ttl := min(max(3*s.cfg.SweepInterval, time.Second), 15*time.Second)
	return s.st.RunExclusive(ctx, SweeperJob, store.ExclusiveOptions{TTL: ttl}, s.sweepLoop)
}

func (s *Service) sweepLoop(ctx context.Context) error {
	t := time.NewTicker(s.cfg.SweepInterval)
	defer t.Stop()
	for {
		if _, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Error("koppeltaal: claim sweep failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

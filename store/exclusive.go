package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"time"
)

// Background jobs that must run in one process at a time among all processes
// sharing the database (the claim sweeper, retention, webhook delivery) run
// under a lease: a row in runner_leases that one process holds until it
// expires and renews while the job runs. A process that dies stops renewing,
// and another takes the job over when the lease has expired. Expiry is judged
// on the database's clock, so hosts with skewed clocks agree on it.
//
// A lease (rather than a PostgreSQL session advisory lock) works on both
// dialects, needs no connection held for the job's lifetime, and survives
// connection poolers in transaction mode.

// ExclusiveOptions tune RunExclusive. Zero values get the documented defaults.
type ExclusiveOptions struct {
	// TTL is how long a lease lasts without renewal: the longest a job stays
	// unattended after its process dies. Renewed every TTL/3. Default 15s.
	TTL time.Duration
	// Poll is how often a process without the lease tries to take it. Default TTL/3.
	Poll time.Duration
}

func (o *ExclusiveOptions) setDefaults() {
	if o.TTL <= 0 {
		o.TTL = 15 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = o.TTL / 3
	}
}

// ErrLeaseLost is the cause of the cancellation of a job's context when its
// lease could not be renewed in time: another process may run the job now.
var ErrLeaseLost = errors.New("store: lease lost")

// newHolder names an open Store in runner_leases: host, pid and a random part
// (pids repeat across restarts and containers; two Stores in one process are
// two holders).
func newHolder() string {
	host, _ := os.Hostname()
	var rb [4]byte
	_, _ = rand.Read(rb[:])
	return fmt.Sprintf("%s:%d:%s", host, os.Getpid(), hex.EncodeToString(rb[:]))
}

// RunExclusive runs job whenever this process holds the lease called name,
// until ctx ends; it returns nil then. Among all processes on this database at
// most one runs the job at a time: the others wait, and one of them takes over
// within about TTL + Poll after the holder stops (job returned, ctx ended,
// process killed, database unreachable from it).
//
// job's context is cancelled when ctx ends or the lease is lost
// (context.Cause is ErrLeaseLost); job must then return promptly — within TTL/3,
// before another process may start. A job that returns on its own releases the
// lease; RunExclusive takes it again at the next poll (an error is logged).
func (s *Store) RunExclusive(ctx context.Context, name string, opts ExclusiveOptions, job func(ctx context.Context) error) error {
	opts.setDefaults()
	for {
		ok, err := s.takeLease(ctx, name, opts.TTL)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Warn("store: exclusive job: lease not taken", "job", name, "err", err)
		case ok:
			s.runLeased(ctx, name, opts.TTL, job)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(opts.Poll):
		}
	}
}

// runLeased runs job while renewing the lease it holds, then releases it.
func (s *Store) runLeased(ctx context.Context, name string, ttl time.Duration, job func(ctx context.Context) error) {
	jobCtx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	s.log.Info("store: exclusive job started in this process", "job", name, "holder", s.holder)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		s.keepLease(jobCtx, name, ttl, cancel)
	}()
	err := job(jobCtx)
	cancel(nil)
	<-renewed
	if cause := context.Cause(jobCtx); errors.Is(cause, ErrLeaseLost) {
		s.log.Warn("store: exclusive job stopped: lease lost", "job", name)
		return
	}
	if err != nil && ctx.Err() == nil {
		s.log.Error("store: exclusive job failed", "job", name, "err", err)
	}
	// Release so another process need not wait for expiry (shutdown, or a job that ended).
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer rcancel()
	if err := s.releaseLease(rctx, name); err != nil {
		s.log.Warn("store: exclusive job: lease not released (it expires by itself)", "job", name, "err", err)
	}
	s.log.Info("store: exclusive job stopped in this process", "job", name)
}

// keepLease renews the lease every ttl/3 until ctx ends. When the lease was
// not renewed for 2/3 of ttl (database unreachable) or another holder has it,
// it cancels the job with ErrLeaseLost: the job stops before the lease can
// expire and another process start it.
func (s *Store) keepLease(ctx context.Context, name string, ttl time.Duration, cancel context.CancelCauseFunc) {
	every := ttl / 3
	validUntil := time.Now().Add(ttl * 2 / 3) // conservatively, from before the take
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		rctx, rcancel := context.WithDeadline(ctx, validUntil)
		ok, err := s.renewLease(rctx, name, ttl)
		rcancel()
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && !ok:
			cancel(fmt.Errorf("%w: %s is held by another process", ErrLeaseLost, name))
			return
		case err == nil:
			validUntil = start.Add(ttl * 2 / 3)
		case time.Now().After(validUntil):
			cancel(fmt.Errorf("%w: %s not renewed: %v", ErrLeaseLost, name, err))
			return
		default:
			s.log.Warn("store: exclusive job: lease renewal failed, retrying", "job", name, "err", err)
		}
	}
}

// dbNowMicros is the database clock in Unix microseconds, as an SQL expression.
func (s *Store) dbNowMicros() string {
	if s.dialect == Postgres {
		return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000000 AS BIGINT)"
	}
	return "CAST((julianday('now') - 2440587.5) * 86400000000 AS INTEGER)"
}

// TakeLease takes the lease called name for this Store for ttl when it is
// free, expired or already this Store's, and reports whether it did. It is
// not renewed: RunExclusive in any process can take it once it has expired.
// (load --prefill holds the removal job this way until a chosen moment.)
func (s *Store) TakeLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	return s.takeLease(ctx, name, ttl)
}

// takeLease takes the lease when it is free, expired or already this process's.
func (s *Store) takeLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	now := s.dbNowMicros()
	var n int64
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, `INSERT INTO runner_leases (name, holder, acquired_at, expires_at)
			VALUES (?, ?, `+now+`, `+now+` + ?)
			ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, acquired_at = excluded.acquired_at,
			expires_at = excluded.expires_at
			WHERE runner_leases.expires_at < `+now+` OR runner_leases.holder = excluded.holder`,
			name, s.holder, ttl.Microseconds())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, err)
	}
	return n == 1, nil
}

// renewLease extends this process's lease; false when it is not ours any more.
func (s *Store) renewLease(ctx context.Context, name string, ttl time.Duration) (bool, error) {
	var n int64
	err := s.Update(ctx, func(tx *Tx) error {
		res, err := tx.exec(ctx, "UPDATE runner_leases SET expires_at = "+s.dbNowMicros()+" + ? WHERE name = ? AND holder = ?",
			ttl.Microseconds(), name, s.holder)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("renew lease %s: %w", name, err)
	}
	return n == 1, nil
}

func (s *Store) releaseLease(ctx context.Context, name string) error {
	return s.Update(ctx, func(tx *Tx) error {
		_, err := tx.exec(ctx, "DELETE FROM runner_leases WHERE name = ? AND holder = ?", name, s.holder)
		return err
	})
}

// LeaseHolderName is how this Store appears as a lease holder (LeaseHolder).
func (s *Store) LeaseHolderName() string { return s.holder }

// LeaseHolder reports who holds the lease called name and until when (database
// clock), or ok false when nobody does.
func (s *Store) LeaseHolder(ctx context.Context, name string) (holder string, expires time.Time, ok bool, err error) {
	var row struct {
		Holder    string `db:"holder"`
		ExpiresAt int64  `db:"expires_at"`
	}
	err = s.View(ctx, func(tx *Tx) error {
		return tx.get(ctx, &row, "SELECT holder, expires_at FROM runner_leases WHERE name = ? AND expires_at >= "+s.dbNowMicros(), name)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", time.Time{}, false, nil
	}
	if err != nil {
		return "", time.Time{}, false, fmt.Errorf("read lease %s: %w", name, err)
	}
	return row.Holder, time.UnixMicro(row.ExpiresAt), true, nil
}

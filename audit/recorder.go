package audit

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/batch"
	"github.com/koppelpoort/koppelpoort/store"
)

// Options configure New.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// Key keys the hash chain (HMAC-SHA-256). With a secret key someone who can
	// change the database cannot recompute the chain; without one (default) the
	// chain still shows every change made by anyone who does not know this code.
	Key []byte
	// RetentionDays is how long records are kept. Default 1826 (five years).
	RetentionDays int
	// FlushInterval bounds how long a Record waits before it is written. Default 100ms.
	FlushInterval time.Duration
	// SealInterval is how often the sealer links new records into the chain. Default 1s.
	SealInterval time.Duration
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// DefaultRetentionDays keeps the trail five years (NEN 7513 leaves the term to
// the organisation; five years is the common choice for access logs).
const DefaultRetentionDays = 1826

// Recorder writes audit records.
type Recorder struct {
	st   *store.Store
	log  *slog.Logger
	opts Options
	rows *batch.Batcher[store.AuditRow] // the records of Record, written together
}

// maxPending bounds the records waiting for the writer; a Record beyond it
// waits for a write (the trail is never dropped to keep up).
const maxPending = 10000

// New returns a Recorder over opts.Store and starts its writer of
// asynchronous records (Record); Close stops it after a last write.
func New(opts Options) (*Recorder, error) {
	if opts.Store == nil {
		return nil, errors.New("audit: Options.Store is nil")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetentionDays <= 0 {
		opts.RetentionDays = DefaultRetentionDays
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = 100 * time.Millisecond
	}
	if opts.SealInterval <= 0 {
		opts.SealInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	r := &Recorder{st: opts.Store, log: opts.Logger, opts: opts}
	var err error
	r.rows, err = batch.New(batch.Options[store.AuditRow]{Write: opts.Store.InsertAudits, Interval: opts.FlushInterval,
		MaxPending: maxPending, OnError: func(err error) { r.log.Error("audit: write records", "err", err) }})
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (r *Recorder) row(ev Event) store.AuditRow {
	at := ev.At
	if at.IsZero() {
		at = r.opts.Now()
	}
	if ev.Result == "" {
		ev.Result = ResultOf(ev.Status)
	}
	a := ev.Actor
	return store.AuditRow{At: at.UnixMicro(), Action: ev.Action, Result: ev.Result, Status: ev.Status,
		ActorKind: a.Kind, Actor: a.Name, Application: a.Application, Domain: a.Domain, Client: a.Client,
		LaunchUser: a.LaunchUser, TokenPatient: a.TokenPatient, SourceIP: a.SourceIP, RequestID: a.RequestID,
		Patient: ev.Patient, Object: ev.Object, Detail: ev.Detail}
}

// InTx records ev in tx, the transaction of the action: the record commits
// with the action or not at all. A nil Recorder records nothing.
func (r *Recorder) InTx(ctx context.Context, tx *store.Tx, ev Event) error {
	if r == nil {
		return nil
	}
	return tx.InsertAudit(ctx, r.row(ev))
}

// Record records ev of an action that wrote nothing (a read, a search, a
// refusal): it is written within FlushInterval, together with the records
// of other requests (one transaction). A crash can lose the records of that
// last interval. A nil Recorder records nothing.
func (r *Recorder) Record(ctx context.Context, ev Event) {
	if r == nil {
		return
	}
	r.rows.Add(ctx, r.row(ev))
}

// Flush writes the records Record is holding (and waits for a write in flight).
func (r *Recorder) Flush(ctx context.Context) error {
	if r == nil {
		return nil
	}
	return r.rows.Flush(ctx)
}

// Close writes what is pending and stops the writer. It is safe to call twice.
func (r *Recorder) Close() error {
	if r == nil {
		return nil
	}
	return r.rows.Close()
}

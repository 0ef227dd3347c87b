package runtime

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/routes/transport"
	"github.com/koppelpoort/koppelpoort/store"
)

// DeadLetter is a record (stage "input", "rules" or "transform": where the route refused it) or a delivery (stage "output") parked for a person to look at.
type DeadLetter struct {
	ID        string
	Route     string
	Stage     string
	Output    string
	RecordKey string
	Record    adapters.Record
	Reason    string
	Attempts  int
	// Revision is the route revision that parked it.
	Revision  string
	CreatedAt time.Time
	// ReplayedAt is set once the dead letter was replayed.
	ReplayedAt *time.Time
	// History is a delivery's failed attempts, oldest first (the last maxHistory); empty for a record.
	History []Attempt
}

// Attempt is one failed delivery attempt: when it ended and why.
type Attempt struct {
	At    time.Time `json:"-"`
	AtUS  int64     `json:"at"`
	Error string    `json:"error"`
}

// maxHistory bounds a delivery's attempt history (a retry policy of hundreds of attempts keeps the last ones).
const maxHistory = 50

// appendAttempt adds a failed attempt to the stored history log (JSON) and returns the new log.
func appendAttempt(log string, at time.Time, err error) string {
	var h []Attempt
	_ = json.Unmarshal([]byte(log), &h) // an unreadable log starts again
	h = append(h, Attempt{AtUS: at.UnixMicro(), Error: err.Error()})
	if len(h) > maxHistory {
		h = h[len(h)-maxHistory:]
	}
	b, _ := json.Marshal(h)
	return string(b)
}

func parseHistory(log string) ([]Attempt, error) {
	if log == "" {
		return nil, nil
	}
	var h []Attempt
	if err := json.Unmarshal([]byte(log), &h); err != nil {
		return nil, err
	}
	for i := range h {
		h[i].At = time.UnixMicro(h[i].AtUS).UTC()
	}
	return h, nil
}

// Filter selects dead letters: by ids, by route, or all. Replayed ones are left out unless IncludeReplayed.
type Filter = store.DeadLetterFilter

// ListDeadLetters returns the dead letters matching f, oldest first.
func ListDeadLetters(ctx context.Context, st *store.Store, f Filter) ([]DeadLetter, error) {
	var rows []store.DeadLetter
	if err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		rows, err = tx.DeadLetters(ctx, f)
		return err
	}); err != nil {
		return nil, err
	}
	out := make([]DeadLetter, len(rows))
	for i, r := range rows {
		d := DeadLetter{ID: r.ID, Route: r.Route, Stage: r.Stage, Output: r.Output, RecordKey: r.RecordKey, Reason: r.Reason,
			Attempts: r.Attempts, Revision: r.Revision, CreatedAt: time.UnixMicro(r.CreatedAt).UTC()}
		if err := json.Unmarshal([]byte(r.Record), &d.Record); err != nil {
			return nil, fmt.Errorf("dead letter %s: stored record unreadable: %w", d.ID, err)
		}
		h, err := parseHistory(r.AttemptLog)
		if err != nil {
			return nil, fmt.Errorf("dead letter %s: stored attempt history unreadable: %w", d.ID, err)
		}
		d.History = h
		if r.ReplayedAt.Valid {
			t := time.UnixMicro(r.ReplayedAt.Int64).UTC()
			d.ReplayedAt = &t
		}
		out[i] = d
	}
	return out, nil
}

// Replay sends the selected dead letters' records through their routes again (with the route as it is
// now, so a fixed route gives a different result). With dryRun it only returns what it would replay.
// Replay writes to the store only: the records run when a `koppelpoort serve` on the store consumes them.
// While a server runs, ask it instead (RequestReplay): it applies its route files first.
func Replay(ctx context.Context, st *store.Store, f Filter, dryRun bool) ([]DeadLetter, error) {
	return replay(ctx, st, f, dryRun, nil)
}

// ReplayAudited is Replay (not a dry run) that runs record in the replay's transaction, so the audit record
// of who replayed what commits with the replay or not at all.
func ReplayAudited(ctx context.Context, st *store.Store, f Filter, record func(tx *store.Tx, replayed []DeadLetter) error) ([]DeadLetter, error) {
	return replay(ctx, st, f, false, record)
}

func replay(ctx context.Context, st *store.Store, f Filter, dryRun bool, record func(*store.Tx, []DeadLetter) error) ([]DeadLetter, error) {
	list, err := ListDeadLetters(ctx, st, Filter{IDs: f.IDs, Route: f.Route})
	if err != nil {
		return nil, err
	}
	if len(f.IDs) > 0 && len(list) != len(f.IDs) {
		found := map[string]bool{}
		for _, d := range list {
			found[d.ID] = true
		}
		var missing []string
		for _, id := range f.IDs {
			if !found[id] {
				missing = append(missing, id)
			}
		}
		return nil, fmt.Errorf("replay: no unreplayed dead letter with id %s", strings.Join(missing, ", "))
	}
	if dryRun || len(list) == 0 {
		return list, nil
	}
	tr, err := transport.New(transport.Config{Store: st})
	if err != nil {
		return nil, err
	}
	// The route's topic may not exist yet in this database (a route renamed back, a fresh replica).
	for _, d := range list {
		if err := tr.Initialize(ctx, TopicFor(d.Route)); err != nil {
			return nil, fmt.Errorf("replay: topic for %s: %w", d.Route, err)
		}
	}
	now := time.Now().UTC()
	err = st.Update(ctx, func(tx *store.Tx) error {
		pub, err := tr.TxPublisher(tx)
		if err != nil {
			return err
		}
		for _, d := range list {
			b, err := json.Marshal(recordMessage{Record: d.Record, Received: now})
			if err != nil {
				return err
			}
			if err := pub.Publish(TopicFor(d.Route), message.NewMessage(uuid.NewString(), b)); err != nil {
				return fmt.Errorf("replay %s: publish: %w", d.ID, err)
			}
			if _, err := tx.MarkReplayed(ctx, d.ID, now.UnixMicro()); err != nil {
				return fmt.Errorf("replay %s: %w", d.ID, err)
			}
		}
		if record != nil {
			return record(tx, list)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("replay: %w", err)
	}
	return list, nil
}

// Checkpoints stores inbound source positions in the store (adapters.Checkpoints).
type Checkpoints struct{ Store *store.Store }

// Get returns the stored value for route and name.
func (c Checkpoints) Get(ctx context.Context, route, name string) (v string, ok bool, err error) {
	err = c.Store.View(ctx, func(tx *store.Tx) error {
		v, ok, err = tx.Checkpoint(ctx, route, name)
		return err
	})
	return v, ok, err
}

// Set stores value for route and name.
func (c Checkpoints) Set(ctx context.Context, route, name, value string) error {
	return c.Store.Update(ctx, func(tx *store.Tx) error {
		return tx.SetCheckpoint(ctx, route, name, value, time.Now().UnixMicro())
	})
}

// ReplayJob names the lease (store.RunExclusive) of the server that replays dead letters on request: its
// holder is a running `koppelpoort serve`, so `koppelpoort replay` asks it rather than racing its routes.
const ReplayJob = "route-replay"

// ServeReplayRequests replays the dead letters `koppelpoort replay` asked for (RequestReplay) while this
// process holds the ReplayJob lease, until ctx ends. Before each replay it calls prepare (serve: apply the
// route files as they are on disk now), so a route fixed a moment ago replays on its fixed revision.
func ServeReplayRequests(ctx context.Context, st *store.Store, log *slog.Logger, poll time.Duration, prepare func(context.Context) error) error {
	if poll <= 0 {
		poll = 250 * time.Millisecond
	}
	return st.RunExclusive(ctx, ReplayJob, store.ExclusiveOptions{}, func(ctx context.Context) error {
		t := time.NewTicker(poll)
		defer t.Stop()
		for {
			if err := replayRequested(ctx, st, log, prepare); err != nil && ctx.Err() == nil {
				log.Warn("replaying requested dead letters failed; will retry", "error", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
}

func replayRequested(ctx context.Context, st *store.Store, log *slog.Logger, prepare func(context.Context) error) error {
	var ids []string
	if err := st.View(ctx, func(tx *store.Tx) error {
		var err error
		ids, err = tx.ReplayRequests(ctx, nil, 500)
		return err
	}); err != nil || len(ids) == 0 {
		return err
	}
	if prepare != nil {
		if err := prepare(ctx); err != nil {
			// A broken route file keeps the running revision; the replay runs on it, as a restart would.
			log.Warn("route files not applied before replay; replaying on the running routes", "error", err)
		}
	}
	list, err := Replay(ctx, st, Filter{IDs: ids}, false)
	if err != nil {
		return err
	}
	for _, d := range list {
		log.Info("dead letter replayed on request", "dead_letter", d.ID, "route", d.Route, "record", d.RecordKey)
	}
	return nil
}

// ErrReplayNotTaken is returned by RequestReplay when the server did not take the request in time; the request
// stays, and the server (or the next one on the store) replays it when it can.
var ErrReplayNotTaken = errors.New("replay: the running server has not taken the request yet")

// RequestReplay asks the running server (the ReplayJob lease holder; ok false when there is none, and then
// nothing is changed) to replay ids, and waits up to wait for it to have done so.
func RequestReplay(ctx context.Context, st *store.Store, ids []string, wait time.Duration) (holder string, ok bool, err error) {
	holder, _, ok, err = st.LeaseHolder(ctx, ReplayJob)
	if err != nil || !ok {
		return "", false, err
	}
	if err := st.Update(ctx, func(tx *store.Tx) error {
		_, err := tx.RequestReplay(ctx, ids, time.Now().UnixMicro())
		return err
	}); err != nil {
		return holder, true, err
	}
	deadline := time.Now().Add(wait)
	for {
		var left []string
		if err := st.View(ctx, func(tx *store.Tx) error {
			var err error
			left, err = tx.ReplayRequests(ctx, ids, len(ids))
			return err
		}); err != nil {
			return holder, true, err
		}
		if len(left) == 0 {
			return holder, true, nil
		}
		if time.Now().After(deadline) {
			return holder, true, fmt.Errorf("%w (%s, %d of %d waiting after %s)", ErrReplayNotTaken, holder, len(left), len(ids), wait)
		}
		select {
		case <-ctx.Done():
			return holder, true, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

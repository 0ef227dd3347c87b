package runtime

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	wmsql "github.com/ThreeDotsLabs/watermill-sql/v4/pkg/sql"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/routes/transport"
)

// DeadLetter is a record (stage "rules") or a delivery (stage "output") parked for a person to look at.
type DeadLetter struct {
	ID        string
	Route     string
	Stage     string
	Output    string
	RecordKey string
	Record    adapters.Record
	Reason    string
	Attempts  int
	CreatedAt time.Time
	// ReplayedAt is set once the dead letter was replayed.
	ReplayedAt *time.Time
}

// Filter selects dead letters: by ids, by route, or all. Replayed ones are left out unless IncludeReplayed.
type Filter struct {
	IDs             []string
	Route           string
	IncludeReplayed bool
}

// ListDeadLetters returns the dead letters matching f, oldest first.
func ListDeadLetters(ctx context.Context, db *sql.DB, dialect string, f Filter) ([]DeadLetter, error) {
	q := `SELECT id, route, stage, output, record_key, record, reason, attempts, created_at, replayed_at FROM kp_gateway_dead_letters WHERE 1 = 1`
	var args []any
	if f.Route != "" {
		q += ` AND route = ?`
		args = append(args, f.Route)
	}
	if len(f.IDs) > 0 {
		q += ` AND id IN (` + strings.TrimSuffix(strings.Repeat("?,", len(f.IDs)), ",") + `)`
		for _, id := range f.IDs {
			args = append(args, id)
		}
	}
	if !f.IncludeReplayed {
		q += ` AND replayed_at IS NULL`
	}
	q += ` ORDER BY created_at, id`
	rows, err := db.QueryContext(ctx, rebind(dialect, q), args...)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DeadLetter
	for rows.Next() {
		var d DeadLetter
		var record string
		var created int64
		var replayed sql.NullInt64
		if err := rows.Scan(&d.ID, &d.Route, &d.Stage, &d.Output, &d.RecordKey, &record, &d.Reason, &d.Attempts, &created, &replayed); err != nil {
			return nil, fmt.Errorf("scan dead letter: %w", err)
		}
		if err := json.Unmarshal([]byte(record), &d.Record); err != nil {
			return nil, fmt.Errorf("dead letter %s: stored record unreadable: %w", d.ID, err)
		}
		d.CreatedAt = time.UnixMicro(created).UTC()
		if replayed.Valid {
			t := time.UnixMicro(replayed.Int64).UTC()
			d.ReplayedAt = &t
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// Replay sends the selected dead letters' records through their routes again (with the route as it is
// now, so a fixed route gives a different result). With dryRun it only returns what it would replay.
// Replay writes to the database only; a running `koppelpoort serve` picks the records up.
func Replay(ctx context.Context, db *sql.DB, dialect string, f Filter, dryRun bool) ([]DeadLetter, error) {
	list, err := ListDeadLetters(ctx, db, dialect, Filter{IDs: f.IDs, Route: f.Route})
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
	tr, err := transport.New(transport.Config{DB: db, Dialect: dialect})
	if err != nil {
		return nil, err
	}
	// The route's topic may not exist yet in this database (a route renamed back, a fresh replica).
	sub, err := tr.Subscriber("route")
	if err != nil {
		return nil, err
	}
	for _, d := range list {
		if err := sub.(message.SubscribeInitializer).SubscribeInitialize(TopicFor(d.Route)); err != nil {
			return nil, fmt.Errorf("replay: topic for %s: %w", d.Route, err)
		}
	}
	sub.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("replay: begin: %w", err)
	}
	defer tx.Rollback()
	pub, err := tr.TxPublisher(wmsql.TxFromStdSQL(tx))
	if err != nil {
		return nil, err
	}
	now := time.Now().UTC()
	mark := rebind(dialect, `UPDATE kp_gateway_dead_letters SET replayed_at = ? WHERE id = ? AND replayed_at IS NULL`)
	for _, d := range list {
		b, err := json.Marshal(recordMessage{Record: d.Record, Received: now})
		if err != nil {
			return nil, err
		}
		if err := pub.Publish(TopicFor(d.Route), message.NewMessage(uuid.NewString(), b)); err != nil {
			return nil, fmt.Errorf("replay %s: publish: %w", d.ID, err)
		}
		if _, err := tx.ExecContext(ctx, mark, micros(now), d.ID); err != nil {
			return nil, fmt.Errorf("replay %s: mark replayed: %w", d.ID, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("replay: commit: %w", err)
	}
	return list, nil
}

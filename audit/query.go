package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// Filter selects records for Query and Export; zero fields do not filter.
type Filter struct {
	Patient string    // whose data (the patient URL)
	Actor   string    // instance or administrator user name, or OAuth client
	Action  string    // post, claim, read, ...
	From    time.Time // at or after
	To      time.Time // before
	AfterID int64     // paging: records after this id
	Limit   int       // default 1000
}

// Query returns the records matching f, oldest first. It is the read side the
// `koppelpoort audit` command and the Support API share.
func Query(ctx context.Context, st *store.Store, f Filter) ([]Event, error) {
	sf := store.AuditFilter{Patient: f.Patient, Actor: f.Actor, Action: f.Action, AfterID: f.AfterID, Limit: f.Limit}
	if !f.From.IsZero() {
		sf.From = f.From.UnixMicro()
	}
	if !f.To.IsZero() {
		sf.To = f.To.UnixMicro()
	}
	rows, err := st.QueryAudit(ctx, sf)
	if err != nil {
		return nil, err
	}
	out := make([]Event, len(rows))
	for i, r := range rows {
		out[i] = eventOf(r)
	}
	return out, nil
}

func eventOf(r store.AuditRow) Event {
	return Event{ID: r.ID, At: time.UnixMicro(r.At).UTC(), Action: r.Action, Result: r.Result, Status: r.Status,
		Actor: Actor{Kind: r.ActorKind, Name: r.Actor, Application: r.Application, Domain: r.Domain, Client: r.Client,
			LaunchUser: r.LaunchUser, TokenPatient: r.TokenPatient, SourceIP: r.SourceIP, RequestID: r.RequestID},
		Patient: r.Patient, Object: r.Object, Detail: r.Detail, Seq: r.Seq}
}

// Export writes every record matching f (all pages; f.Limit is the page size)
// to w as JSON lines and returns how many.
func Export(ctx context.Context, st *store.Store, f Filter, w io.Writer) (int, error) {
	enc := json.NewEncoder(w)
	n := 0
	for {
		evs, err := Query(ctx, st, f)
		if err != nil {
			return n, err
		}
		for _, ev := range evs {
			if err := enc.Encode(ev); err != nil {
				return n, fmt.Errorf("audit: export: %w", err)
			}
			n++
		}
		if len(evs) == 0 || (f.Limit > 0 && len(evs) < f.Limit) || (f.Limit <= 0 && len(evs) < 1000) {
			return n, nil
		}
		f.AfterID = evs[len(evs)-1].ID
	}
}

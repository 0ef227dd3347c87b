package supportapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
)

// deadLetterResources are DeadLetter (read-only: the records and deliveries the gateway's routes parked)
// and DeadLetterReplay (POST: send them through their routes again, through runtime.Replay — the one
// replay, which `koppelpoort replay` uses too; a running server picks the records up). Dead letters belong
// to the gateway, not to a domain: only system administrators see and replay them.
func (a *API) deadLetterResources() []Resource {
	return []Resource{
		{Type: "DeadLetter", List: a.listDeadLetters, Get: a.getDeadLetter,
			NotAllowed: map[string]string{"POST": "dead letters are made by the routes", "PATCH": "POST DeadLetterReplay",
				"DELETE": "replay it (POST DeadLetterReplay); replayed dead letters are kept, marked ReplayedAt"}},
		{Type: "DeadLetterReplay", Create: a.replayDeadLetters,
			NotAllowed: map[string]string{"GET": "a replay is an action; GET DeadLetter?filter[Replayed]=true lists what was replayed"}},
	}
}

func systemOnly(ctx context.Context) error {
	if !principal(ctx).Scope().All {
		return Forbidden("dead letters belong to the gateway's routes: only system administrators see and replay them")
	}
	return nil
}

func deadLetterOut(d runtime.DeadLetter, full bool) jsonapi.Resource {
	replayed := ""
	if d.ReplayedAt != nil {
		replayed = d.ReplayedAt.Format(time.RFC3339Nano)
	}
	at := map[string]any{"Route": d.Route, "Stage": d.Stage, "Output": d.Output, "RecordKey": d.RecordKey, "Reason": d.Reason,
		"Attempts": d.Attempts, "Revision": d.Revision, "CreatedAt": d.CreatedAt.Format(time.RFC3339Nano), "ReplayedAt": replayed,
		"Replayed": d.ReplayedAt != nil}
	if full {
		at["Record"] = d.Record
	}
	return jsonapi.Resource{Type: "DeadLetter", ID: d.ID, Attributes: at}
}

// listDeadLetters lists every dead letter, newest first; filter[Replayed]=false (the console's default) the
// ones still waiting. The list carries no record (it may hold patient data): GET one for it.
func (a *API) listDeadLetters(ctx context.Context, _ *http.Request) ([]jsonapi.Resource, error) {
	if err := systemOnly(ctx); err != nil {
		return nil, err
	}
	list, err := runtime.ListDeadLetters(ctx, a.st, runtime.Filter{IncludeReplayed: true})
	if err != nil {
		return nil, err
	}
	out := make([]jsonapi.Resource, 0, len(list))
	for i := len(list) - 1; i >= 0; i-- {
		out = append(out, deadLetterOut(list[i], false))
	}
	return out, nil
}

// getDeadLetter shows one in full: the record, and for a delivery its attempts as the runtime records them
// (when it was first queued, the last attempt, how many, the last error). The read is audited.
func (a *API) getDeadLetter(ctx context.Context, id string) (jsonapi.Resource, error) {
	if err := systemOnly(ctx); err != nil {
		return jsonapi.Resource{}, err
	}
	list, err := runtime.ListDeadLetters(ctx, a.st, runtime.Filter{IDs: []string{id}, IncludeReplayed: true})
	if err != nil {
		return jsonapi.Resource{}, err
	}
	if len(list) == 0 {
		return jsonapi.Resource{}, jsonapi.ErrNotFound
	}
	out := deadLetterOut(list[0], true)
	err = a.st.View(ctx, func(tx *store.Tx) error {
		if !strings.HasPrefix(id, "delivery-") {
			return nil
		}
		d, err := tx.DeliveryByID(ctx, strings.TrimPrefix(id, "delivery-"))
		if errors.Is(err, store.ErrNotFound) {
			return nil // removed by retention
		}
		if err != nil {
			return err
		}
		out.Attributes["Delivery"] = map[string]any{"Status": d.Status, "Attempts": d.Attempts, "LastError": d.LastError,
			"QueuedAt": Time(d.CreatedAt), "LastAttemptAt": Time(d.UpdatedAt), "Revision": d.Revision}
		return nil
	})
	if err != nil {
		return jsonapi.Resource{}, err
	}
	a.AuditRead(ctx, "DeadLetter/"+id, 0, "record of route "+list[0].Route, "")
	return out, nil
}

// replayDeadLetters sends the selected dead letters through their routes again: Ids (the ones a dry run
// listed, so what is replayed is what the administrator confirmed), Route, or All. DryRun only counts.
func (a *API) replayDeadLetters(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error) {
	if err := systemOnly(ctx); err != nil {
		return jsonapi.Resource{}, err
	}
	at := NewAttrs(req, []string{"Ids", "Route", "All", "DryRun"}, nil)
	var f runtime.Filter
	var all, dry bool
	at.Get("Ids", &f.IDs)
	at.Get("Route", &f.Route)
	at.Get("All", &all)
	at.Get("DryRun", &dry)
	if err := at.Err(); err != nil {
		return jsonapi.Resource{}, err
	}
	if !all && f.Route == "" && len(f.IDs) == 0 {
		return jsonapi.Resource{}, jsonapi.AttrError(400, "Ids", "Nothing selected", "say what to replay: Ids, Route or All=true")
	}
	list, err := runtime.Replay(ctx, a.st, f, true) // what the selection holds now
	waiting := false
	if err == nil && !dry && len(list) > 0 {
		waiting, err = a.replay(ctx, list)
	}
	if err != nil {
		if strings.Contains(err.Error(), "no unreplayed dead letter") {
			return jsonapi.Resource{}, jsonapi.AttrError(409, "Ids", "Already replayed or unknown", "%v", err)
		}
		return jsonapi.Resource{}, err
	}
	ids := make([]string, len(list))
	routes := map[string]int{}
	for i, d := range list {
		ids[i] = d.ID
		routes[d.Route]++
	}
	return jsonapi.Resource{Type: "DeadLetterReplay", Attributes: map[string]any{"DryRun": dry, "Count": len(list), "Ids": ids,
		"Routes": routes, "Waiting": waiting}}, nil
}

// replayWait is how long a replay waits for the server running the routes to take it.
const replayWait = 30 * time.Second

// replay replays list as `koppelpoort replay --yes` does: through the server that runs the routes when one
// holds the replay lease (runtime.RequestReplay: it applies its route files first), else by putting the
// records back on their routes' queues in the transaction that records the audit (runtime.ReplayAudited).
// waiting reports a request the server has not taken within replayWait (it stays, and runs when it can).
func (a *API) replay(ctx context.Context, list []runtime.DeadLetter) (waiting bool, err error) {
	detail := fmt.Sprintf("%d dead letters: %s", len(list), idList(list))
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	holder, _, running, err := a.st.LeaseHolder(ctx, runtime.ReplayJob)
	if err != nil {
		return false, err
	}
	if !running {
		_, err := runtime.ReplayAudited(ctx, a.st, runtime.Filter{IDs: ids}, func(tx *store.Tx, _ []runtime.DeadLetter) error {
			return a.Audit(ctx, tx, "replay", "DeadLetter", 0, detail)
		})
		return false, err
	}
	if err := a.st.Update(ctx, func(tx *store.Tx) error {
		return a.Audit(ctx, tx, "replay", "DeadLetter", 0, detail+" (through "+holder+")")
	}); err != nil {
		return false, err
	}
	_, _, err = runtime.RequestReplay(ctx, a.st, ids, replayWait)
	if errors.Is(err, runtime.ErrReplayNotTaken) {
		return true, nil
	}
	return false, err
}

func idList(list []runtime.DeadLetter) string {
	var b strings.Builder
	for i, d := range list {
		if i == 20 {
			fmt.Fprintf(&b, " and %d more", len(list)-20)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(d.ID)
	}
	return b.String()
}

package supportapi_test

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// seedDeadLetters parks a rules dead letter and an output one whose delivery failed three times.
func seedDeadLetters(t *testing.T, st *store.Store) {
	t.Helper()
	now := time.Now().UnixMicro()
	err := st.Update(context.Background(), func(tx *store.Tx) error {
		if err := tx.InsertDeliveries(context.Background(), []store.Delivery{{ID: "d1", Route: "epd", Output: "ehr", RecordKey: "k2",
			Payload: `{}`, Record: `{"key":"k2"}`, Revision: "rev2", CreatedAt: now - 3e6, UpdatedAt: now - 3e6}}); err != nil {
			return err
		}
		if err := tx.FinishDelivery(context.Background(), "d1", store.DeliveryResult{Status: store.DeliveryDead, Attempts: 3,
			LastError: "503 from the EHR", Now: now - 1e6}); err != nil {
			return err
		}
		if err := tx.PutDeadLetter(context.Background(), store.DeadLetter{ID: "rules-1", Route: "rom", Stage: "rules", RecordKey: "k1",
			Record: `{"key":"k1","fields":{"bsn":"x"}}`, Reason: "BSN x is not a number", Attempts: 1, Revision: "rev1", CreatedAt: now - 2e6}); err != nil {
			return err
		}
		return tx.PutDeadLetter(context.Background(), store.DeadLetter{ID: "delivery-d1", Route: "epd", Stage: "output", Output: "ehr",
			RecordKey: "k2", Record: `{"key":"k2"}`, Reason: "503 from the EHR", Attempts: 3, Revision: "rev2", CreatedAt: now - 1e6})
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDeadLetters: system administrators list dead letters (newest first, no record), read one in full with
// its delivery attempts, count a replay (dry run, nothing changes) and replay what they counted; others get 403.
func TestDeadLetters(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		seedDeadLetters(t, e.st)
		list := e.do("sys", "GET", "/DeadLetter?filter[Replayed]=false", nil).mustStatus(t, 200, "list").list()
		if len(list) != 2 || list[0]["id"] != "delivery-d1" || attr(list[0], "Record") != nil || attr(list[1], "Reason") != "BSN x is not a number" ||
			attr(list[1], "Revision") != "rev1" || attr(list[1], "Stage") != "rules" {
			t.Fatalf("dead letters: %v", list)
		}
		for _, who := range []string{"dora", "appy"} {
			e.do(who, "GET", "/DeadLetter", nil).mustStatus(t, 403, who+" lists dead letters")
			e.do(who, "GET", "/DeadLetter/rules-1", nil).mustStatus(t, 403, who+" reads a dead letter")
			e.do(who, "POST", "/DeadLetterReplay", doc("DeadLetterReplay", "", map[string]any{"All": true}, "")).mustStatus(t, 403, who+" replays")
		}
		one := e.do("sys", "GET", "/DeadLetter/delivery-d1", nil).mustStatus(t, 200, "one").data()
		del, _ := attr(one, "Delivery").(map[string]any)
		if rec, _ := attr(one, "Record").(map[string]any); rec["key"] != "k2" || del["Attempts"] != float64(3) || del["LastError"] != "503 from the EHR" ||
			del["QueuedAt"] == "" || del["LastAttemptAt"] == del["QueuedAt"] {
			t.Fatalf("dead letter in full: %v", one)
		}
		e.do("sys", "GET", "/DeadLetter/nope", nil).mustStatus(t, 404, "unknown dead letter")

		e.do("sys", "POST", "/DeadLetterReplay", doc("DeadLetterReplay", "", map[string]any{}, "")).mustStatus(t, 400, "nothing selected")
		dry := e.do("sys", "POST", "/DeadLetterReplay", doc("DeadLetterReplay", "", map[string]any{"Route": "rom", "DryRun": true}, "")).
			mustStatus(t, 200, "dry run").data()
		ids, _ := attr(dry, "Ids").([]any)
		if attr(dry, "Count") != float64(1) || len(ids) != 1 || ids[0] != "rules-1" {
			t.Fatalf("dry run: %v", dry)
		}
		if l := e.do("sys", "GET", "/DeadLetter?filter[Replayed]=false", nil).list(); len(l) != 2 {
			t.Fatalf("a dry run replayed something: %v", l)
		}
		done := e.do("sys", "POST", "/DeadLetterReplay", doc("DeadLetterReplay", "", map[string]any{"Ids": ids}, "")).mustStatus(t, 200, "replay").data()
		if attr(done, "Count") != float64(1) || attr(done, "DryRun") != false {
			t.Fatalf("replay: %v", done)
		}
		if l := e.do("sys", "GET", "/DeadLetter?filter[Replayed]=false", nil).list(); len(l) != 1 || l[0]["id"] != "delivery-d1" {
			t.Fatalf("waiting after the replay: %v", l)
		}
		if got := e.do("sys", "GET", "/DeadLetter/rules-1", nil).data(); attr(got, "Replayed") != true || attr(got, "ReplayedAt") == "" {
			t.Fatalf("replayed dead letter: %v", got)
		}
		e.do("sys", "POST", "/DeadLetterReplay", doc("DeadLetterReplay", "", map[string]any{"Ids": ids}, "")).mustStatus(t, 409, "replay twice")

		// With a server running the routes (the replay lease holder), the replay goes through it, as
		// `koppelpoort replay` does; it applies its route files first.
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		prepared := make(chan struct{}, 1)
		go func() {
			served <- runtime.ServeReplayRequests(ctx, e.st, slog.New(slog.DiscardHandler), 20*time.Millisecond, func(context.Context) error {
				prepared <- struct{}{}
				return nil
			})
		}()
		defer func() { cancel(); <-served }()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			if _, _, ok, err := e.st.LeaseHolder(context.Background(), runtime.ReplayJob); err != nil || ok {
				break
			} else if time.Now().After(deadline) {
				t.Fatal("the replay server did not take its lease")
			}
		}
		through := e.do("sys", "POST", "/DeadLetterReplay", doc("DeadLetterReplay", "", map[string]any{"Route": "epd"}, "")).
			mustStatus(t, 200, "replay through the server").data()
		if attr(through, "Count") != float64(1) || attr(through, "Waiting") != false {
			t.Fatalf("replay through the server: %v", through)
		}
		select {
		case <-prepared:
		default:
			t.Fatal("the server did not apply its routes before the replay")
		}
		if got := e.do("sys", "GET", "/DeadLetter/delivery-d1", nil).data(); attr(got, "Replayed") != true {
			t.Fatalf("dead letter replayed through the server: %v", got)
		}
	})
}

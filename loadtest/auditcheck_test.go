package loadtest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// TestAuditCheck writes audit records into a real SQLite store the way the
// server does and checks the load tool's comparison: a claim without a
// record, a claim recorded under another patient and a read missing from a
// search record each fail it; complete records pass.
func TestAuditCheck(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "kp.db")
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := audit.New(audit.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	game := audit.Actor{Kind: audit.KindInstance, Name: "game@d"}
	for _, ev := range []audit.Event{
		{Action: audit.ActionClaim, Actor: game, Patient: "P1", Object: "MessageHeader/1"},
		{Action: audit.ActionClaim, Actor: game, Patient: "P9", Object: "MessageHeader/2"}, // the message is about P2
		{Action: audit.ActionClaim, Actor: audit.Actor{Kind: audit.KindInstance, Name: "other@d"}, Patient: "P3", Object: "MessageHeader/3"},
		{Action: audit.ActionSearch, Actor: game, Patient: "P1", Object: "MessageHeader/1,4"},
	} {
		rec.Record(ctx, ev)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	st.Close()

	r := &runner{tr: NewTracker(nil), insts: []*instance{{idx: 0, spec: InstanceSpec{Username: "portal@d"}}, {idx: 1, spec: InstanceSpec{Username: "game@d"}}}}
	for id, p := range map[string]string{"m1": "P1", "m2": "P2", "m3": "P3", "m4": "P1", "m5": "P5"} {
		r.tr.Expect(id, MessageExpectation{Event: EventPatient, Patient: p})
	}
	seen := func(entry, id string) headerInfo {
		return headerInfo{entryID: "http://x/FHIR/Koppeltaal/MessageHeader/" + entry, identifier: id}
	}
	r.access.claimed(1, seen("1", "m1"))
	r.access.claimed(1, seen("2", "m2")) // recorded under P9
	r.access.claimed(1, seen("3", "m3")) // recorded for another instance only
	r.access.read(1, seen("1", "m1"))
	r.access.read(1, seen("4", "m4"))
	r.access.read(1, seen("5", "m5")) // in no search record
	c := r.checkAudit(ctx, dsn)
	if c.UncheckedReason != "" || c.Claims != 3 || c.ClaimsMissing != 1 || c.ClaimsWrong != 1 || c.Reads != 3 || c.ReadsMissing != 1 || c.ReadsWrong != 0 || c.Pass {
		t.Fatalf("check %+v", c)
	}
	if !strings.Contains(strings.Join(c.Examples, "\n"), `names patient "P9", the message is about P2`) {
		t.Fatalf("examples %q", c.Examples)
	}

	// Only what the trail holds: passes.
	r.access = accessLog{}
	r.access.claimed(1, seen("1", "m1"))
	r.access.read(1, seen("4", "m4"))
	if c := r.checkAudit(ctx, dsn); !c.Pass || c.Claims != 1 || c.Reads != 1 {
		t.Fatalf("check %+v, want a pass", c)
	}
}

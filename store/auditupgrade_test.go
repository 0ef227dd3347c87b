package store_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// legacyChainHash is how the sealer before migration 0026 hashed a record
// (written out here: the old format is frozen, and an independent copy checks
// that Verify still reads it).
func legacyChainHash(key []byte, prev string, seq int64, r store.AuditRow) string {
	m := hmac.New(sha256.New, key)
	for _, f := range []string{prev, strconv.FormatInt(seq, 10), strconv.FormatInt(r.ID, 10), strconv.FormatInt(r.At, 10),
		r.Action, r.Result, strconv.Itoa(r.Status), r.ActorKind, r.Actor, r.Application, r.Domain,
		r.Client, r.LaunchUser, r.TokenPatient, r.SourceIP, r.RequestID, r.Patient, r.Object, r.Detail} {
		m.Write([]byte(strconv.Itoa(len(f)) + ":" + f))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Migration 0026 (one seal row per batch instead of an update of every
// record): a trail sealed record by record before keeps verifying, a record
// the old sealer passed over (committed late) is sealed after the upgrade,
// new records chain on, and a change of an old record is still found.
func TestUpgradeKeepsTheAuditChain(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		key := []byte("upgrade key")
		now := time.Now().UnixMicro()
		old := store.OpenAtVersion(t, b.DSN, 25)
		var ids []int64
		err := old.Update(ctx, func(tx *store.Tx) error {
			for i := 1; i <= 7; i++ {
				if err := tx.InsertAudit(ctx, store.AuditRow{At: now, Action: "read", Result: "ok", ActorKind: "instance",
					Actor: "a", Patient: fmt.Sprintf("p%d", i)}); err != nil {
					return err
				}
			}
			return tx.Select(ctx, &ids, "SELECT id FROM audit_events ORDER BY id")
		})
		if err != nil || len(ids) != 7 {
			t.Fatalf("records: %v %v", ids, err)
		}
		// The old sealer sealed ids 1-4 and 6 (5 committed late), and 7 came after it.
		err = old.Update(ctx, func(tx *store.Tx) error {
			prev := ""
			for seq, id := range []int64{ids[0], ids[1], ids[2], ids[3], ids[5]} {
				var r store.AuditRow
				if err := tx.Get(ctx, &r, `SELECT id, at, action, result, status, actor_kind, actor, application, domain, client,
					launch_user, token_patient, source_ip, request_id, patient, object, detail FROM audit_events WHERE id = ?`, id); err != nil {
					return err
				}
				prev = legacyChainHash(key, prev, int64(seq+1), r)
				if _, err := tx.Exec(ctx, "UPDATE audit_events SET seq = ?, hash = ? WHERE id = ?", seq+1, prev, id); err != nil {
					return err
				}
			}
			_, err := tx.Exec(ctx, "UPDATE audit_seal SET head_seq = 5, head_hash = ? WHERE id = 1", prev)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		old.Close()

		st := b.Open(t)
		rec, err := audit.New(audit.Options{Store: st, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { rec.Close() })
		rp, err := rec.Verify(ctx, time.Hour)
		if err != nil || !rp.OK() || rp.Checked != 5 || rp.Unsealed != 2 || rp.HeadSeq != 5 {
			t.Fatalf("upgraded trail: %s %v", rp, err)
		}
		if err := st.Update(ctx, func(tx *store.Tx) error {
			return rec.InTx(ctx, tx, audit.Event{Action: audit.ActionRead, Actor: audit.Actor{Kind: audit.KindSystem, Name: "new"}})
		}); err != nil {
			t.Fatal(err)
		}
		if n, err := rec.Seal(ctx); err != nil || n != 3 {
			t.Fatalf("seal after the upgrade: %d %v", n, err)
		}
		if rp, err = rec.Verify(ctx, time.Hour); err != nil || !rp.OK() || rp.Checked != 8 || rp.Unsealed != 0 || rp.HeadSeq != 8 {
			t.Fatalf("after sealing: %s %v", rp, err)
		}
		if err := st.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO audit_events (at, action, result, actor_kind, actor) VALUES (?, 'read', 'ok', 'system', 'x')", now)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// A change of a record sealed the old way is found, by id and position.
		drop := "DROP TRIGGER audit_events_append_only"
		if st.Dialect() == store.Postgres {
			drop += " ON audit_events"
		}
		if err := st.Update(ctx, func(tx *store.Tx) error {
			if _, err := tx.Exec(ctx, drop); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "UPDATE audit_events SET patient = 'someone else' WHERE id = ?", ids[2])
			return err
		}); err != nil {
			t.Fatal(err)
		}
		rp, err = rec.Verify(ctx, time.Hour)
		if err != nil || rp.Broken == nil || rp.Broken.ID != ids[2] || rp.Broken.Seq != 3 || !strings.Contains(rp.Broken.Reason, "does not match its hash") {
			t.Fatalf("after changing an old record: %s %v", rp, err)
		}
	})
}

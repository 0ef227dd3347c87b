package store_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Migration 0006 drops the copy of each resource version's content (the
// issuing message's body holds it) and keeps every version row; 0007 rebuilds
// post_receipts (SQLite) and keeps every receipt.
func TestUpgradeKeepsVersionsAndReceipts(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		old := store.OpenAtVersion(t, b.DSN, 5)
		domainID, inst := schemaV1Fixture(t, old, "D", "a")
		msgs := queueMessages(t, old, domainID, inst, 1)
		err := old.Update(ctx, func(tx *store.Tx) error {
			var msgID int64
			if err := tx.Get(ctx, &msgID, "SELECT message_id FROM queue WHERE id = ?", msgs[0]); err != nil {
				return err
			}
			var resID int64
			if err := tx.Get(ctx, &resID, `INSERT INTO resources (domain_id, url, resource_type, current_version, content_hash,
				created_at, updated_at) VALUES (?, 'http://x/Patient/1', 'Patient', 'v2', 'h', 1, 1) RETURNING id`, domainID); err != nil {
				return err
			}
			if err := tx.InsertReceipt(ctx, store.Receipt{SenderInstanceID: inst, MessageIdentifier: "m-1", RequestHash: "rh",
				MessageID: msgID, Data: []string{"http://x/Patient/1/_history/v2"}, CreatedAt: 9}); err != nil {
				return err
			}
			for _, v := range []string{"v1", "v2"} {
				if _, err := tx.Exec(ctx, `INSERT INTO resource_versions (resource_id, version, message_id, content, created_at)
					VALUES (?, ?, ?, ?, 7)`, resID, v, msgID, []byte("<Patient/>")); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}

		s := b.Open(t) // migrates to the latest version
		type row struct {
			Version   string `db:"version"`
			MessageID int64  `db:"message_id"`
			CreatedAt int64  `db:"created_at"`
		}
		var rows []row
		err = s.View(ctx, func(tx *store.Tx) error {
			r, ok, err := tx.Receipt(ctx, inst, "m-1", "rh")
			if err != nil || !ok || len(r.Data) != 1 || r.Data[0] != "http://x/Patient/1/_history/v2" || r.CreatedAt != 9 {
				t.Errorf("receipt after upgrade: %+v found=%v err=%v", r, ok, err)
			}
			return tx.Select(ctx, &rows, "SELECT version, message_id, created_at FROM resource_versions ORDER BY version")
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.View(ctx, func(tx *store.Tx) error {
			var n int
			return tx.Get(ctx, &n, "SELECT COUNT(content) FROM resource_versions")
		})
		if err == nil {
			t.Errorf("resource_versions still has a content column")
		}
		if len(rows) != 2 || rows[0].Version != "v1" || rows[1].Version != "v2" || rows[0].MessageID == 0 || rows[1].CreatedAt != 7 {
			t.Fatalf("versions after upgrade: %+v", rows)
		}
		if b.Name == "sqlite" {
			for _, table := range []string{"resource_versions", "post_receipts"} {
				var ddl string
				if err := s.View(ctx, func(tx *store.Tx) error {
					return tx.Get(ctx, &ddl, "SELECT sql FROM sqlite_schema WHERE name = ?", table)
				}); err != nil || !strings.Contains(ddl, "WITHOUT ROWID") {
					t.Errorf("%s after upgrade: %q (%v), want WITHOUT ROWID", table, ddl, err)
				}
			}
		}
		// The upgraded table takes new versions.
		err = s.Update(ctx, func(tx *store.Tx) error {
			return tx.PutResourceVersions(ctx, []store.ResourceVersion{
				{DomainID: domainID, URL: "http://x/Patient/1", ResourceType: "Patient", Version: "v3", ContentHash: "h3", MessageID: rows[0].MessageID},
				{DomainID: domainID, URL: "http://x/Patient/2", ResourceType: "Patient", Version: "v3", ContentHash: "h3"},
			})
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// Migration 0009 gives every ActivityDefinition an owner: its creator's
// application, or the one a seeded definition names. One that named another
// application than its creator's (issue 16 item 1) thereby stops counting as
// that application's.
func TestUpgradeActivityDefinitionOwner(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		old := store.OpenAtVersion(t, b.DSN, 8)
		domainID, inst := schemaV1Fixture(t, old, "D", "a") // application app-a
		err := old.Update(ctx, func(tx *store.Tx) error {
			for _, r := range []struct {
				ident, app string
				by         any
			}{{"own", "app-a", inst}, {"injected", "app-other", inst}, {"seeded", "app-seeded", nil}} {
				if _, err := tx.Exec(ctx, `INSERT INTO activity_definitions (domain_id, identifier, application, version,
					content, created_by, created_at, updated_at) VALUES (?, ?, ?, 'v', ?, ?, 1, 1)`,
					domainID, r.ident, r.app, []byte("{}"), r.by); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		s := b.Open(t)
		var rows []struct {
			Ident string `db:"identifier"`
			Owner string `db:"owner_application"`
		}
		if err := s.View(ctx, func(tx *store.Tx) error {
			return tx.Select(ctx, &rows, "SELECT identifier, owner_application FROM activity_definitions ORDER BY id")
		}); err != nil {
			t.Fatal(err)
		}
		want := "[{own app-a} {injected app-a} {seeded app-seeded}]"
		if got := fmt.Sprint(rows); got != want {
			t.Fatalf("owners after upgrade: %s, want %s", got, want)
		}
	})
}

// schemaV1Fixture is fixture written with the columns of migration 0001 only:
// upgrade tests run on an old schema, which today's repository methods may
// not fit.
func schemaV1Fixture(t testing.TB, s *store.Store, domain, user string) (domainID, instanceID int64) {
	t.Helper()
	err := s.Update(ctx, func(tx *store.Tx) error {
		var err error
		if domainID, err = tx.InsertID(ctx, "INSERT INTO domains (name, created_at) VALUES (?, 1)", domain); err != nil {
			return err
		}
		appID, err := tx.InsertID(ctx, "INSERT INTO applications (ident, name, created_at) VALUES (?, ?, 1)", "app-"+user, user)
		if err != nil {
			return err
		}
		instanceID, err = tx.InsertID(ctx, `INSERT INTO app_instances (domain_id, application_id, username, password_hash,
			api_version, created_at, updated_at) VALUES (?, ?, ?, 'x', '1.3.5', 1, 1)`, domainID, appID, user)
		return err
	})
	if err != nil {
		t.Fatalf("fixture: %v", err)
	}
	return domainID, instanceID
}

// Migration 0015 (automatic data removal): queue entries and messages of an
// older database are not expired, stay claimable through the rebuilt claim
// index, and can then be expired; resources gain an empty content column.
func TestUpgradeRetention(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		old := store.OpenAtVersion(t, b.DSN, 15)
		domainID, inst := schemaV1Fixture(t, old, "D", "a")
		entries := queueMessages(t, old, domainID, inst, 3)
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		s := b.Open(t)
		var expired int
		if err := s.View(ctx, func(tx *store.Tx) error {
			return tx.Get(ctx, &expired, "SELECT COUNT(*) FROM queue WHERE is_expired")
		}); err != nil || expired != 0 {
			t.Fatalf("expired entries after upgrade: %d %v", expired, err)
		}
		var claimed store.Entry
		if err := s.Update(ctx, func(tx *store.Tx) error {
			var err error
			claimed, err = tx.ClaimNext(ctx, inst, store.Filter{}, store.Claim{Now: 1, Deadline: 2, Version: "v"})
			return err
		}); err != nil || claimed.ID != entries[0] {
			t.Fatalf("claim after upgrade: %+v %v", claimed, err)
		}
		if err := s.Update(ctx, func(tx *store.Tx) error {
			return tx.ExpireMessage(ctx, claimed.MessageID, 0)
		}); err != nil {
			t.Fatal(err)
		}
		if err := s.Update(ctx, func(tx *store.Tx) error {
			var err error
			claimed, err = tx.ClaimNext(ctx, inst, store.Filter{}, store.Claim{Now: 1, Deadline: 2, Version: "v"})
			return err
		}); err != nil || claimed.ID != entries[1] {
			t.Fatalf("claim after expiring the first: %+v %v", claimed, err)
		}
	})
}

// Migration 0016 takes over the route tables the gateway runtime used to create itself (kp_gateway_*):
// an existing database keeps its dead letters, checkpoints, pending deliveries, outcomes and remote
// versions, under the new names.
func TestUpgradeKeepsRouteTables(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		old := store.OpenAtVersion(t, b.DSN, 15)
		err := old.Update(ctx, func(tx *store.Tx) error {
			for _, q := range oldGatewaySchema {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			for _, q := range []string{
				`INSERT INTO kp_gateway_deliveries (id, route, output, record_key, payload, record, status, attempts, next_attempt_at, last_error, created_at, updated_at)
					VALUES ('d1', 'r', 'out', 'k1', '{}', '{"key":"k1"}', 'pending', 2, 5, 'boom', 1, 2)`,
				`INSERT INTO kp_gateway_dead_letters (id, route, stage, output, record_key, record, reason, attempts, created_at)
					VALUES ('dl1', 'r', 'rules', '', 'k2', '{"key":"k2"}', 'bad BSN', 0, 3)`,
				`INSERT INTO kp_gateway_checkpoints (route, name, value, updated_at) VALUES ('r', 'cursor', '42', 4)`,
				`INSERT INTO kp_gateway_outcomes (id, route, record, delivery_ids, state, ok, reason, created_at)
					VALUES ('o1', 'r', '{}', '["d1"]', 'waiting', 0, '', 5)`,
				`INSERT INTO kp_gateway_resource_versions (scope, url, version, updated_at) VALUES ('s', 'http://x/Patient/1', 'v9', 6)`,
			} {
				if _, err := tx.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}

		s := b.Open(t)
		err = s.Update(ctx, func(tx *store.Tx) error {
			ds, err := tx.ClaimDeliveries(ctx, "r", 10, 100, 10)
			if err != nil || len(ds) != 1 || ds[0].ID != "d1" || ds[0].Attempts != 2 || ds[0].LastError != "boom" {
				t.Errorf("pending delivery after upgrade: %+v %v", ds, err)
			}
			dl, err := tx.DeadLetters(ctx, store.DeadLetterFilter{})
			if err != nil || len(dl) != 1 || dl[0].Reason != "bad BSN" || dl[0].ReplayedAt.Valid {
				t.Errorf("dead letters after upgrade: %+v %v", dl, err)
			}
			if v, ok, err := tx.Checkpoint(ctx, "r", "cursor"); err != nil || !ok || v != "42" {
				t.Errorf("checkpoint after upgrade: %q %v %v", v, ok, err)
			}
			if os, err := tx.Outcomes(ctx, "r", store.OutcomeWaiting, 10); err != nil || len(os) != 1 || os[0].DeliveryIDs != `["d1"]` {
				t.Errorf("outcomes after upgrade: %+v %v", os, err)
			}
			if vs, err := tx.RemoteVersions(ctx, "s", []string{"http://x/Patient/1"}); err != nil || vs["http://x/Patient/1"] != "v9" {
				t.Errorf("remote versions after upgrade: %v %v", vs, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// oldGatewaySchema is what routes/runtime created at start before migration 0016 (copied from the
// release before it).
var oldGatewaySchema = []string{
	`CREATE TABLE IF NOT EXISTS kp_gateway_deliveries (id TEXT PRIMARY KEY, route TEXT NOT NULL, output TEXT NOT NULL,
		record_key TEXT NOT NULL, payload TEXT NOT NULL, record TEXT NOT NULL, status TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at BIGINT NOT NULL, last_error TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL, updated_at BIGINT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS kp_gateway_deliveries_due ON kp_gateway_deliveries (route, status, next_attempt_at)`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_dead_letters (id TEXT PRIMARY KEY, route TEXT NOT NULL, stage TEXT NOT NULL,
		output TEXT NOT NULL DEFAULT '', record_key TEXT NOT NULL, record TEXT NOT NULL, reason TEXT NOT NULL,
		attempts INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, replayed_at BIGINT)`,
	`CREATE INDEX IF NOT EXISTS kp_gateway_dead_letters_route ON kp_gateway_dead_letters (route, replayed_at)`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_checkpoints (route TEXT NOT NULL, name TEXT NOT NULL, value TEXT NOT NULL,
		updated_at BIGINT NOT NULL, PRIMARY KEY (route, name))`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_outcomes (id TEXT PRIMARY KEY, route TEXT NOT NULL, record TEXT NOT NULL,
		delivery_ids TEXT NOT NULL, state TEXT NOT NULL, ok INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '',
		created_at BIGINT NOT NULL)`,
	`CREATE INDEX IF NOT EXISTS kp_gateway_outcomes_state ON kp_gateway_outcomes (route, state)`,
	`CREATE TABLE IF NOT EXISTS kp_gateway_resource_versions (scope TEXT NOT NULL, url TEXT NOT NULL, version TEXT NOT NULL,
		updated_at BIGINT NOT NULL, PRIMARY KEY (scope, url))`,
}

// Migration 0024 moves the webhook deliveries still waiting onto the route worker: a route_deliveries row of
// the built-in route's webhook output with the attempts and last error, a payload and record as
// koppeltaal/notify writes them, and the webhook health read from it; finished ones are dropped.
func TestUpgradeMovesWaitingWebhooks(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		old := store.OpenAtVersion(t, b.DSN, 23)
		domainID, inst := schemaV1Fixture(t, old, "D", "a")
		q := queueMessages(t, old, domainID, inst, 2)
		err := old.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.Exec(ctx, `INSERT INTO webhook_deliveries (queue_id, instance_id, status, attempts, next_attempt_at, lease_until,
				last_error, created_at, updated_at) VALUES (?, ?, 'pending', 2, 5, 0, 'webhook answered 503', 1, 2),
				(?, ?, 'delivered', 1, 5, 0, '', 1, 2)`, q[0], inst, q[1], inst)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}

		s := b.Open(t)
		err = s.Update(ctx, func(tx *store.Tx) error {
			ds, err := tx.ClaimDeliveries(ctx, store.KoppeltaalRoute, 10, 100, 10)
			if err != nil {
				return err
			}
			want := fmt.Sprintf("webhook-%d", q[0])
			if len(ds) != 1 || ds[0].ID != want || ds[0].Output != store.WebhookOutput || ds[0].Attempts != 2 ||
				ds[0].LastError != "webhook answered 503" {
				t.Errorf("webhook deliveries after upgrade: %+v", ds)
				return nil
			}
			var payload struct {
				IdempotencyKey string
				Fields         map[string]string
			}
			var record struct {
				Key    string            `json:"key"`
				Fields map[string]string `json:"fields"`
			}
			if err := json.Unmarshal([]byte(ds[0].Payload), &payload); err != nil || payload.IdempotencyKey != want ||
				payload.Fields["queue_id"] != fmt.Sprint(q[0]) || payload.Fields["instance_id"] != fmt.Sprint(inst) {
				t.Errorf("payload %s: %v", ds[0].Payload, err)
			}
			if err := json.Unmarshal([]byte(ds[0].Record), &record); err != nil || record.Key != fmt.Sprint(q[0]) ||
				record.Fields["instance_id"] != fmt.Sprint(inst) {
				t.Errorf("record %s: %v", ds[0].Record, err)
			}
			health, err := tx.WebhookHealthOf(ctx)
			if err != nil || health[inst] == nil || health[inst].Pending != 1 || health[inst].LastError != "webhook answered 503" {
				t.Errorf("webhook health after upgrade: %+v %v", health[inst], err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// Migration 0027 adds the MessageHeader identifier to queue rows without rewriting the table (on
// PostgreSQL its file stays the same: a constant default is kept in the catalog, however many rows the
// queue holds): rows queued before read an empty identifier (the message cache then checks the other
// copied fields, as before) and stay claimable; rows queued after carry theirs.
func TestUpgradeQueueMessageIdentifier(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		old := store.OpenAtVersion(t, b.DSN, 26)
		domainID, inst := schemaV1Fixture(t, old, "D", "a")
		before := queueMessages(t, old, domainID, inst, 1)
		filenode := func(s *store.Store) (n int64) {
			t.Helper()
			if err := s.View(ctx, func(tx *store.Tx) error {
				return tx.Get(ctx, &n, "SELECT pg_relation_filenode('queue')::bigint")
			}); err != nil {
				t.Fatal(err)
			}
			return n
		}
		var node int64
		if b.Name == "postgres" {
			node = filenode(old)
		}
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}

		s := b.Open(t)
		if b.Name == "postgres" && filenode(s) != node {
			t.Errorf("migration 0027 rewrote the queue table (file %d, was %d)", filenode(s), node)
		}
		var after int64
		err := s.Update(ctx, func(tx *store.Tx) error {
			e, err := tx.ClaimNext(ctx, inst, store.Filter{}, store.Claim{Now: 2, Deadline: 3, Version: "c"})
			if err != nil || e.ID != before[0] || e.MessageIdentifier != "" {
				return fmt.Errorf("claim of the entry queued before: %+v %v", e, err)
			}
			after, err = tx.InsertEntry(ctx, store.Entry{DomainID: domainID, InstanceID: inst, MessageID: e.MessageID,
				MessageIdentifier: "m0", Event: e.Event, Status: store.StatusNew, StatusChangedAt: 2, Version: "v", CreatedAt: 2})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		err = s.View(ctx, func(tx *store.Tx) error {
			e, err := tx.EntryForInstance(ctx, inst, after)
			if err != nil || e.MessageIdentifier != "m0" {
				return fmt.Errorf("entry queued after the upgrade: %+v %v", e, err)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// An older binary started on a schema a newer one migrated refuses to start with a message that says
// what to do (docs/operations.md, upgrades: a rollback after a migration).
func TestOlderBinaryRefusesNewerSchema(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s, err := store.Open(ctx, store.Config{DSN: b.DSN}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var latest int
		if err := s.Update(ctx, func(tx *store.Tx) error {
			if err := tx.Get(ctx, &latest, "SELECT MAX(version) FROM schema_migrations"); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from a newer release', 1)", latest+1)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		s.Close()
		_, err = store.Open(ctx, store.Config{DSN: b.DSN}, nil)
		want := fmt.Sprintf("database schema version %d is newer than this binary knows (%d): upgrade koppelpoort", latest+1, latest)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("open on a newer schema: %v, want %q", err, want)
		}
	})
}

package store_test

import (
	"fmt"
	"testing"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// QueueForAll queues one message for several instances in two statements: ids come back in the order
// of the instances, and older open entries of the same focal resource and event are superseded —
// Success stays Success, other focal resources and events are untouched.
func TestQueueForAll(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		domainID, a := fixture(t, s, "D", "a")
		_, bb := fixture(t, s, "D", "b")
		_, c := fixture(t, s, "D", "c")
		insts := []int64{c, a, bb} // not sorted: ids must follow this order
		const focal, event = "http://x/CarePlan/1", "CreateOrUpdateCarePlan"
		queue := func(focal, event string, version string) []int64 {
			t.Helper()
			var ids []int64
			err := s.Update(ctx, func(tx *store.Tx) error {
				mid, err := tx.InsertMessage(ctx, store.Message{DomainID: domainID, SenderInstanceID: a, Event: event,
					MessageIdentifier: "m-" + version, FocalRef: focal})
				if err != nil {
					return err
				}
				ids, err = tx.QueueForAll(ctx, store.Entry{DomainID: domainID, MessageID: mid, Event: event, FocalRef: focal,
					PatientRef: "http://x/Patient/1", Status: store.StatusNew, StatusChangedAt: 1, Version: version, CreatedAt: 1}, insts)
				return err
			})
			if err != nil {
				t.Fatalf("queue %s: %v", version, err)
			}
			return ids
		}
		first := queue(focal, event, "v1")
		other := queue("http://x/CarePlan/2", event, "o1")
		otherEvent := queue(focal, "UpdateCarePlanActivityStatus", "e1")
		// Instance b finished the first message before the update arrives.
		if err := s.Update(ctx, func(tx *store.Tx) error {
			ok, err := tx.SetStatus(ctx, first[2], store.StatusChange{From: store.StatusNew, To: store.StatusSuccess, Now: 2, Version: "s"})
			if !ok && err == nil {
				err = fmt.Errorf("entry %d not set to Success", first[2])
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		second := queue(focal, event, "v2")

		want := map[int64]struct {
			inst   int64
			status string
		}{
			first[0]: {c, store.StatusReplacedByNewVersion}, first[1]: {a, store.StatusReplacedByNewVersion},
			first[2]:  {bb, store.StatusSuccess},
			second[0]: {c, store.StatusNew}, second[1]: {a, store.StatusNew}, second[2]: {bb, store.StatusNew},
		}
		for i, inst := range insts {
			want[other[i]] = struct {
				inst   int64
				status string
			}{inst, store.StatusNew}
			want[otherEvent[i]] = struct {
				inst   int64
				status string
			}{inst, store.StatusNew}
		}
		err := s.View(ctx, func(tx *store.Tx) error {
			for id, w := range want {
				e, err := tx.EntryForInstance(ctx, w.inst, id)
				if err != nil {
					return fmt.Errorf("entry %d of instance %d: %w", id, w.inst, err)
				}
				if e.Status != w.status {
					return fmt.Errorf("entry %d of instance %d: status %s, want %s", id, w.inst, e.Status, w.status)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// PutResourceVersions stores several resources in two statements: new and existing ones, each with its
// new current version and content hash, and one version row each.
func TestPutResourceVersions(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		domainID, inst := fixture(t, s, "D", "a")
		put := func(version string, urls ...string) {
			t.Helper()
			rvs := make([]store.ResourceVersion, len(urls))
			for i, u := range urls {
				rvs[i] = store.ResourceVersion{DomainID: domainID, URL: u, ResourceType: "Patient", Version: version,
					ContentHash: "h-" + version, InstanceID: inst}
			}
			if err := s.Update(ctx, func(tx *store.Tx) error { return tx.PutResourceVersions(ctx, rvs) }); err != nil {
				t.Fatalf("put %s: %v", version, err)
			}
		}
		put("v1", "http://x/Patient/1", "http://x/Patient/2")
		put("v2", "http://x/Patient/2", "http://x/Patient/3", "http://x/Patient/4")
		put("v3", "http://x/Patient/1") // the one-resource path
		err := s.View(ctx, func(tx *store.Tx) error {
			got, err := tx.Resources(ctx, domainID, []string{"http://x/Patient/1", "http://x/Patient/2", "http://x/Patient/3",
				"http://x/Patient/4", "http://x/Patient/5"})
			if err != nil {
				return err
			}
			want := map[string]string{"http://x/Patient/1": "v3", "http://x/Patient/2": "v2", "http://x/Patient/3": "v2", "http://x/Patient/4": "v2"}
			if len(got) != len(want) {
				return fmt.Errorf("%d resources, want %d: %v", len(got), len(want), got)
			}
			for u, v := range want {
				if got[u].CurrentVersion != v || got[u].ContentHash != "h-"+v {
					return fmt.Errorf("%s: %+v, want version %s", u, got[u], v)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// HasNew sees New entries (with the claim filters) and nothing else.
func TestHasNew(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		domainID, inst := fixture(t, s, "D", "a")
		_, other := fixture(t, s, "D", "b")
		has := func(instance int64, f store.Filter) bool {
			t.Helper()
			ok, err := s.HasNew(ctx, instance, f)
			if err != nil {
				t.Fatal(err)
			}
			return ok
		}
		if has(inst, store.Filter{}) {
			t.Fatal("empty mailbox has New entries")
		}
		ids := queueMessages(t, s, domainID, inst, 1)
		if !has(inst, store.Filter{}) || !has(inst, store.Filter{Event: "CreateOrUpdatePatient"}) {
			t.Fatal("New entry not seen")
		}
		if has(inst, store.Filter{Event: "CreateOrUpdateCarePlan"}) || has(other, store.Filter{}) {
			t.Fatal("filter or instance ignored")
		}
		if err := s.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.SetStatus(ctx, ids[0], store.StatusChange{From: store.StatusNew, To: store.StatusClaimed, Now: 2, Version: "c"})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if has(inst, store.Filter{}) {
			t.Fatal("a Claimed entry counts as New")
		}
	})
}

// Every way of queueing copies the message's MessageHeader.identifier into its queue rows (migration 0027:
// the message cache tells messages under a reused id apart by it, issue 15) — Accept (one statement on
// PostgreSQL, QueueForAll on SQLite), QueueForAll and InsertEntry — and every read of queue rows returns it.
func TestQueueRowsCarryTheMessageIdentifier(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		domainID, a := fixture(t, s, "D", "a")
		_, bb := fixture(t, s, "D", "b")
		const event = "CreateOrUpdatePatient"
		ident := map[int64]string{} // message id → identifier
		err := s.Update(ctx, func(tx *store.Tx) error {
			msg := func(identifier string) store.Message {
				return store.Message{DomainID: domainID, SenderInstanceID: a, Event: event, MessageIdentifier: identifier,
					FocalRef: "http://x/Patient/" + identifier, Version: "v", CreatedAt: 1}
			}
			mid, _, err := tx.Accept(ctx, store.Accepted{Format: "json", Body: []byte("{}"), Message: msg("id-accept"),
				Recipients: []int64{a, bb}})
			if err != nil {
				return err
			}
			ident[mid] = "id-accept"
			if mid, err = tx.InsertMessage(ctx, msg("id-fanout")); err != nil {
				return err
			}
			ident[mid] = "id-fanout"
			if _, err := tx.QueueForAll(ctx, store.Entry{DomainID: domainID, MessageID: mid, MessageIdentifier: "id-fanout",
				Event: event, Status: store.StatusNew, StatusChangedAt: 1, Version: "v", CreatedAt: 1}, []int64{a, bb}); err != nil {
				return err
			}
			if mid, err = tx.InsertMessage(ctx, msg("id-one")); err != nil {
				return err
			}
			ident[mid] = "id-one"
			_, err = tx.InsertEntry(ctx, store.Entry{DomainID: domainID, InstanceID: a, MessageID: mid, MessageIdentifier: "id-one",
				Event: event, Status: store.StatusNew, StatusChangedAt: 1, Version: "v", CreatedAt: 1})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		check := func(how string, es ...store.Entry) {
			t.Helper()
			if len(es) == 0 {
				t.Errorf("%s: no entries", how)
			}
			for _, e := range es {
				if e.MessageIdentifier != ident[e.MessageID] {
					t.Errorf("%s: entry %d of message %d has identifier %q, want %q", how, e.ID, e.MessageID, e.MessageIdentifier, ident[e.MessageID])
				}
			}
		}
		err = s.Update(ctx, func(tx *store.Tx) error {
			var ids []int64
			for mid := range ident {
				es, err := tx.EntriesOfMessage(ctx, mid)
				if err != nil {
					return err
				}
				check("EntriesOfMessage", es...)
				ids = append(ids, mid)
			}
			rs, err := tx.RecipientsOf(ctx, ids)
			if err != nil {
				return err
			}
			for _, r := range rs {
				check("RecipientsOf", r.Entry)
			}
			es, _, err := tx.Search(ctx, a, store.Filter{}, 0, 10)
			if err != nil {
				return err
			}
			check("Search", es...)
			e, err := tx.ClaimNext(ctx, a, store.Filter{}, store.Claim{Now: 2, Deadline: 3, Version: "c"})
			if err != nil {
				return err
			}
			check("ClaimNext", e)
			if e, err = tx.EntryForInstance(ctx, a, e.ID); err != nil {
				return err
			}
			check("EntryForInstance", e)
			es, err = tx.TakeNew(ctx, bb, "", 10, store.Claim{Now: 2, Version: "c"})
			if err != nil {
				return err
			}
			check("TakeNew", es...)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

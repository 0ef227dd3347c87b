package store_test

import (
	"fmt"
	"testing"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// Multi-row statements stay below every database's bind-parameter limit
// (SQLite 32766, PostgreSQL 65535; issue 16 item 4): thousands of resource
// versions and lookups of 70,000 URLs work on both databases, a message queued
// for 3,500 instances on SQLite.
func TestStatementsBeyondTheBindLimit(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		s := b.Open(t)
		domainID, inst := fixture(t, s, "D", "a")
		msgs := queueMessages(t, s, domainID, inst, 1)
		var msgID int64
		err := s.Update(ctx, func(tx *store.Tx) error {
			if err := tx.Get(ctx, &msgID, "SELECT message_id FROM queue WHERE id = ?", msgs[0]); err != nil {
				return err
			}
			rvs := make([]store.ResourceVersion, 9000) // 72,000 parameters in one statement before
			for i := range rvs {
				rvs[i] = store.ResourceVersion{DomainID: domainID, URL: fmt.Sprintf("http://x/Practitioner/%d", i),
					ResourceType: "Practitioner", Version: "v1", ContentHash: "h", InstanceID: inst, MessageID: msgID}
			}
			if err := tx.PutResourceVersions(ctx, rvs); err != nil {
				return err
			}
			urls := make([]string, 70000)
			for i := range urls {
				urls[i] = fmt.Sprintf("http://x/Practitioner/%d", i)
			}
			known, err := tx.Resources(ctx, domainID, urls)
			if err != nil {
				return err
			}
			if len(known) != 9000 {
				return fmt.Errorf("%d of 9000 resources found", len(known))
			}
			// 3,500 instances × 11 parameters is beyond SQLite's limit (PostgreSQL's POST queues with arrays).
			n := 3500
			if b.Name == "postgres" {
				n = 50
			}
			var instances []int64
			for i := 0; i < n; i++ {
				id, _, err := tx.PutInstance(ctx, store.Instance{DomainID: domainID, ApplicationID: appOf(t, tx, inst),
					Username: fmt.Sprint("i", i), PasswordHash: "x", APIVersion: "1.3.5"}, nil)
				if err != nil {
					return err
				}
				instances = append(instances, id)
			}
			ids, err := tx.QueueForAll(ctx, store.Entry{DomainID: domainID, MessageID: msgID, Event: "CreateOrUpdatePatient",
				FocalRef: "http://x/Patient/0", Status: store.StatusNew, StatusChangedAt: 1, Version: "v", CreatedAt: 1}, instances)
			if err != nil {
				return err
			}
			for i := 1; i < len(ids); i++ {
				if ids[i] <= ids[i-1] {
					return fmt.Errorf("entry ids out of order at %d", i)
				}
			}
			if len(ids) != len(instances) {
				return fmt.Errorf("%d entries for %d instances", len(ids), len(instances))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

func appOf(t *testing.T, tx *store.Tx, instanceID int64) int64 {
	in, err := tx.InstanceByID(ctx, instanceID)
	if err != nil {
		t.Fatal(err)
	}
	return in.ApplicationID
}

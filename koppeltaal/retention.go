package koppeltaal

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
)

// Automatic data removal (SPEC.md §10.2). A message's body goes when every
// recipient reported Success (in the acknowledgement's transaction), or when
// it is older than its maximum age (the removal job); the message row and its
// queue entries stay, marked expired, and the resource store keeps the
// current content of every resource the body held.

// RetentionJob names the removal job's lease (store.RunExclusive).
const RetentionJob = "koppeltaal-retention"

// RetentionResult counts what one removal run did.
type RetentionResult struct {
	ByAge        int64 // bodies removed because they were older than their maximum age
	Bytes        int64 // bytes of the removed bodies
	StorageItems int64 // Storage Service items removed after storage.max_idle_days
	Batches      int   // transactions
	PagesFreed   int64 // SQLite pages given back to the file system
	Other        int64 // rows removed by the removers of AddRemover (the HTTP request log)
}

// Remover is more data with a retention of its own that the removal job
// removes in each run, batch rows per transaction (httplog.Recorder).
type Remover interface {
	RemoveExpired(ctx context.Context, batch int) (int64, error)
}

// AddRemover makes the removal job also run r (call it before RunRetention).
func (s *Service) AddRemover(r Remover) { s.removers = append(s.removers, r) }

// retireIfRetrieved removes message id's body in tx when the acknowledgement
// that just set one entry to Success made every recipient Success and no
// setting retains it (SPEC.md §10.2, on a status change). It returns the
// message row when it removed the body (the reply is rebuilt from it).
func (s *Service) retireIfRetrieved(ctx context.Context, tx *store.Tx, messageID int64) (*store.Message, error) {
	r, err := tx.CheckRetirement(ctx, messageID)
	if err != nil || !r.Removable {
		return nil, err
	}
	contents, err := resourceContents(r.Format, r.Body)
	if err != nil {
		return nil, fmt.Errorf("message %d: %w", messageID, err)
	}
	if err := tx.KeepResourceContent(ctx, r.Message.DomainID, contents); err != nil {
		return nil, err
	}
	if err := tx.ExpireMessage(ctx, messageID, r.Message.BodyID); err != nil {
		return nil, err
	}
	s.metrics.RetentionRemoved.WithLabelValues("retrieved").Inc()
	s.metrics.RetentionBytes.Add(float64(len(r.Body)))
	r.Message.IsExpired, r.Message.BodyID = true, 0
	return &r.Message, nil
}

// resourceContents lists the versioned resources of a stored body: what the
// resource store must keep before the body goes.
func resourceContents(format string, body []byte) ([]store.ResourceContent, error) {
	if len(body) == 0 {
		return nil, nil
	}
	b, err := dstu1.Limits{MaxBytes: int64(len(body)) + 1}.ParseBundle(body, formatFromName(format))
	if err != nil {
		return nil, fmt.Errorf("stored body does not parse: %w", err)
	}
	var out []store.ResourceContent
	for _, e := range b.Entries {
		if e.Resource == nil || e.Resource.Type() == "MessageHeader" {
			continue
		}
		url, version := dstu1.SplitHistory(e.SelfLink())
		if version == "" {
			continue // not versioned: not in the resource store
		}
		out = append(out, store.ResourceContent{URL: url, Version: version, Content: e.Resource.JSON()})
	}
	return out, nil
}

// RemoveExpired removes the bodies past their maximum age (SPEC.md §10.2, the
// background procedure): first past the global maximum, then past the shorter
// maximum of each domain setting; messages of an event an application in the
// domain retains are skipped. It works in batches of Retention.BatchSize
// messages, one short transaction each, with the bodies read and parsed
// outside the writer; a crash loses at most the batch in flight, which the next
// run does again. It also removes Storage Service items idle for
// storage.max_idle_days. Run it in one process at a time (RunRetention).
func (s *Service) RemoveExpired(ctx context.Context) (RetentionResult, error) {
	start := time.Now()
	now := s.now()
	var res RetentionResult
	err := s.removeOlderThan(ctx, &res, now.Add(-s.cfg.Retention.MaxMessageAge()), 0, "")
	if err == nil {
		var settings map[int64][]store.DomainMessageSetting
		err = s.st.View(ctx, func(tx *store.Tx) error {
			var err error
			settings, err = tx.DomainMessageSettings(ctx)
			return err
		})
		for domainID, list := range settings {
			for _, st := range list {
				if err == nil && st.MaxAgeDays > 0 && st.MaxAgeDays < s.cfg.Retention.MaxMessageAgeDays {
					err = s.removeOlderThan(ctx, &res, now.Add(-time.Duration(st.MaxAgeDays)*24*time.Hour), domainID, st.Event)
				}
			}
		}
	}
	if err == nil {
		err = s.removeIdleStorage(ctx, &res, now.Add(-time.Duration(s.cfg.Storage.MaxIdleDays)*24*time.Hour))
	}
	for _, r := range s.removers {
		if err == nil {
			var n int64
			n, err = r.RemoveExpired(ctx, s.cfg.Retention.BatchSize)
			res.Other += n
		}
	}
	if err == nil {
		err = s.reclaimSpace(ctx, &res)
	}
	result, reason := "ok", ""
	if err != nil {
		result, reason = "error", err.Error()
	}
	s.metrics.RetentionRuns.WithLabelValues(result).Inc()
	oldest, hasOldest, oerr := s.st.OldestRetainedBody(ctx)
	age := 0.0
	if oerr == nil && hasOldest {
		age = now.Sub(time.UnixMicro(oldest)).Seconds()
	}
	s.metrics.RetentionOldest.Set(age)
	s.log.Info("koppeltaal: retention run", "bodies_removed", res.ByAge, "bytes_freed", res.Bytes,
		"storage_items_removed", res.StorageItems, "other_rows_removed", res.Other, "batches", res.Batches, "pages_freed", res.PagesFreed, "oldest_body_age_s", int64(age),
		"duration_ms", time.Since(start).Milliseconds(), "result", result, "err", reason)
	if err != nil {
		return res, fmt.Errorf("retention run: %w", err)
	}
	return res, nil
}

// removeOlderThan expires, batch by batch, every message created before cutoff
// (in one domain and event when domainID is set).
func (s *Service) removeOlderThan(ctx context.Context, res *RetentionResult, cutoff time.Time, domainID int64, event string) error {
	q := store.DueQuery{Before: cutoff.UnixMicro(), DomainID: domainID, Event: event, Limit: s.cfg.Retention.BatchSize}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		due, err := s.st.DueMessages(ctx, q)
		if err != nil || len(due) == 0 {
			return err
		}
		contents := make([][]store.ResourceContent, len(due))
		for i, m := range due {
			if contents[i], err = resourceContents(m.Format, m.Body); err != nil {
				return fmt.Errorf("message %d: %w", m.ID, err)
			}
		}
		var removed, bytes int64
		err = s.st.Update(ctx, func(tx *store.Tx) error {
			for i, m := range due {
				// Kept contents are guarded by the resource's current version: a
				// POST since the read moved it on, and then a newer body holds it.
				if err := tx.KeepResourceContent(ctx, m.DomainID, contents[i]); err != nil {
					return err
				}
				if err := tx.ExpireMessage(ctx, m.ID, m.BodyID); err != nil {
					return err
				}
			}
			return nil
		})
		removed = int64(len(due)) // an acknowledgement may have expired one since the read: counted here once more
		for _, m := range due {
			bytes += int64(len(m.Body))
		}
		if err != nil {
			return err
		}
		for _, m := range due {
			s.msgs.drop(m.ID)
			s.heads.drop(m.ID)
		}
		res.Batches++
		res.ByAge += removed
		res.Bytes += bytes
		s.metrics.RetentionRemoved.WithLabelValues("age").Add(float64(removed))
		s.metrics.RetentionBytes.Add(float64(bytes))
		last := due[len(due)-1]
		q.AfterCreated, q.AfterID = last.CreatedAt, last.ID
		if len(due) < q.Limit {
			return nil
		}
	}
}

func (s *Service) removeIdleStorage(ctx context.Context, res *RetentionResult, before time.Time) error {
	for {
		var n, bytes int64
		err := s.st.Update(ctx, func(tx *store.Tx) error {
			var err error
			n, bytes, err = tx.DeleteStorageItemsIdleSince(ctx, before.UnixMicro(), s.cfg.Retention.BatchSize)
			return err
		})
		if err != nil {
			return fmt.Errorf("remove idle storage items: %w", err)
		}
		res.StorageItems += n
		res.Bytes += bytes
		res.Batches++
		if n < int64(s.cfg.Retention.BatchSize) {
			return nil
		}
	}
}

// reclaimPages bounds one space-reclaiming transaction (4 MiB of 4 KiB pages).
const reclaimPages = 1024

// reclaimSpace gives the free pages of an SQLite file back, a bounded step at
// a time with a pause between steps, so the writer is never held for long.
func (s *Service) reclaimSpace(ctx context.Context, res *RetentionResult) error {
	for {
		freed, left, err := s.st.ReclaimSpace(ctx, reclaimPages)
		res.PagesFreed += freed
		if err != nil || left == 0 || freed == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// RunRetention runs RemoveExpired at start (catching up after downtime) and
// every Retention.Interval until ctx ends, in one process at a time among all
// processes sharing the database (store.RunExclusive).
func (s *Service) RunRetention(ctx context.Context) error {
	return s.st.RunExclusive(ctx, RetentionJob, store.ExclusiveOptions{}, func(ctx context.Context) error {
		t := time.NewTicker(s.cfg.Retention.Interval)
		defer t.Stop()
		for {
			if _, err := s.RemoveExpired(ctx); err != nil && ctx.Err() == nil {
				s.log.Error("koppeltaal: retention run failed", "err", err)
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
}

// expiredMessage rebuilds the message of an expired entry from its row
// (SPEC.md §10.2): a MessageHeader with every element DSTU1 requires —
// source.software and version are the server's, as the body that held the
// sender's is gone — and IsExpired true; no other entries.
func (s *Service) expiredMessage(m store.Message, domain, base string) *dstu1.Bundle {
	feedID := m.FeedID
	if feedID == "" {
		feedID = "urn:uuid:" + uuid.NewString()
	}
	b := dstu1.NewMessageBundle(feedID, domain)
	var data []string
	if m.FocalRef != "" {
		ref := m.FocalRef
		if m.FocalVersion != "" {
			ref += "/_history/" + m.FocalVersion
		}
		data = append(data, ref)
	}
	identifier := m.MessageIdentifier
	if identifier == "" {
		identifier = feedID // MessageHeader.identifier is 1..1
	}
	src := ServerSource(base)
	src.Name = "Koppeltaal (expired message " + strconv.FormatInt(m.ID, 10) + ")"
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{
		Patient:    m.PatientRef,
		Identifier: identifier,
		Timestamp:  s.instant(time.UnixMicro(m.CreatedAt)),
		Event:      dstu1.Coding{System: dstu1.SystemMessageEvents, Code: m.Event, Display: m.Event},
		Source:     src,
		Data:       data,
	})
	mh.SetIsExpired(true)
	b.AddEntry(mh.Resource, "", "")
	return b
}

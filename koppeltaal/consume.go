package koppeltaal

import (
	"context"
	"fmt"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
)

// LocalBase is the FHIR base in the links of messages rendered for in-process consumers (TakeTx): they
// reach this server without a URL, and acknowledge by entry id.
const LocalBase = "local:/FHIR/Koppeltaal"

// Taken is a queue entry an in-process consumer took: the entry and the message as its instance would
// claim it.
type Taken struct {
	Entry   store.Entry
	Message *dstu1.Bundle
}

// TakeTx is GetNextNewAndClaim for a consumer inside this process (the gateway's local Koppeltaal
// inbound), on its transaction: up to limit of c's New entries (oldest first, only event when not empty)
// become Claimed without a claim deadline — the sweeper leaves them, and the status is the consumer's
// checkpoint: what it took in a committed transaction is never New again — and are rendered as a claim
// renders them. The consumer reports each outcome with SetProcessingStatus.
func (s *Service) TakeTx(ctx context.Context, tx *store.Tx, c *Caller, event string, limit int) ([]Taken, error) {
	entries, err := tx.TakeNew(ctx, c.ID, event, limit, store.Claim{Now: s.now().UnixMicro(), Version: FormatVersion(s.now()),
		APIVersion: c.APIVersion})
	if err != nil {
		return nil, fmt.Errorf("take new entries of %s: %w", c.Username, err)
	}
	out := make([]Taken, 0, len(entries))
	for _, e := range entries {
		b, err := s.renderMessage(ctx, tx, c, e, LocalBase)
		if err != nil {
			return nil, fmt.Errorf("take entry %d of %s: %w", e.ID, c.Username, err)
		}
		// A rendered message keeps its other entries pre-encoded (made for writing, see msgcache.go);
		// the consumer reads them, so it gets the tree, as a client parses what it claimed.
		if b, err = dstu1.ParseBundle(b.JSON(), dstu1.FormatJSON); err != nil {
			return nil, fmt.Errorf("take entry %d of %s: %w", e.ID, c.Username, err)
		}
		out = append(out, Taken{Entry: e, Message: b})
	}
	s.metrics.Claimed.Add(float64(len(out)))
	return out, nil
}

// SetProcessingStatus records an in-process consumer's outcome for entry id of c: Success, or Failed with
// exception; the rules of an acknowledgement (PUT MessageHeader) apply.
func (s *Service) SetProcessingStatus(ctx context.Context, c *Caller, id int64, status, exception string) error {
	if status == store.StatusFailed && exception == "" {
		return fail(Invalid, "required", "ProcessingStatus Failed requires a ProcessingStatusException that says what went wrong.")
	}
	_, err := s.acknowledge(ctx, c, id, "", dstu1.ProcessingStatus{Status: status, Exception: exception}, LocalBase)
	return err
}

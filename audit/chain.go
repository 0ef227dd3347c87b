package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// The hash chain. Records are written by many transactions at once, in
// several processes; chaining each to the one before as it is written would
// make every audited write wait for one lock (the chain's head) until its
// transaction commits — every POST and claim of every process in one line.
// Instead rows are written unchained, and one sealer (store.RunExclusive)
// links committed rows into the chain after the fact, in the order it finds
// them: seq = head+1, hash = HMAC(key, previous hash, seq, the row). A row
// that commits late (a long transaction) is simply sealed later. Verify walks
// the chain in seq order: a changed row no longer matches its hash, a removed
// row leaves a gap in seq (or, at the end, a head the rows do not reach), and
// moved rows match neither. A row inserted behind the sealer's back is found
// unsealed long after its time.

// SealerJob names the sealer's lease (store.RunExclusive).
const SealerJob = "audit-sealer"

// sealBatch bounds the rows one sealing transaction takes.
const sealBatch = 2000

func (r *Recorder) key() []byte {
	if len(r.opts.Key) > 0 {
		return r.opts.Key
	}
	return []byte("koppelpoort audit trail")
}

// chainHash is the hash of row at position seq after prev.
func chainHash(key []byte, prev string, seq int64, row store.AuditRow) string {
	m := hmac.New(sha256.New, key)
	fields := []string{prev, strconv.FormatInt(seq, 10), strconv.FormatInt(row.ID, 10), strconv.FormatInt(row.At, 10),
		row.Action, row.Result, strconv.Itoa(row.Status), row.ActorKind, row.Actor, row.Application, row.Domain,
		row.Client, row.LaunchUser, row.TokenPatient, row.SourceIP, row.RequestID, row.Patient, row.Object, row.Detail}
	for _, f := range fields {
		// Length-prefixed, so no value can be shifted into its neighbour.
		m.Write([]byte(strconv.Itoa(len(f))))
		m.Write([]byte{':'})
		m.Write([]byte(f))
	}
	return hex.EncodeToString(m.Sum(nil))
}

// Seal links the committed unsealed rows into the chain and returns how many.
// Run it in one process at a time (Run does).
func (r *Recorder) Seal(ctx context.Context) (int, error) {
	total := 0
	for {
		n := 0
		err := r.st.Update(ctx, func(tx *store.Tx) error {
			head, err := tx.AuditSealState(ctx)
			if err != nil {
				return err
			}
			rows, err := tx.UnsealedAudit(ctx, sealBatch)
			if err != nil {
				return err
			}
			prev, seq := head.HeadHash, head.HeadSeq
			for i := range rows {
				seq++
				rows[i].Seq = seq
				rows[i].Hash = chainHash(r.key(), prev, seq, rows[i])
				prev = rows[i].Hash
			}
			n = len(rows)
			return tx.SealAudit(ctx, rows, r.opts.Now().UnixMicro())
		})
		if err != nil {
			return total, fmt.Errorf("audit: seal: %w", err)
		}
		total += n
		if n < sealBatch {
			return total, nil
		}
	}
}

// purgeBatch bounds the rows one retention transaction removes.
const purgeBatch = 1000

// Purge removes the records older than RetentionDays (sealed ones only, oldest
// first, moving the chain's anchor) and returns how many.
func (r *Recorder) Purge(ctx context.Context) (int64, error) {
	before := r.opts.Now().AddDate(0, 0, -r.opts.RetentionDays).UnixMicro()
	var total int64
	for {
		var n int64
		err := r.st.Update(ctx, func(tx *store.Tx) error {
			var err error
			n, err = tx.PurgeAudit(ctx, before, purgeBatch)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("audit: remove old records: %w", err)
		}
		total += n
		if n < purgeBatch {
			return total, nil
		}
	}
}

// Run seals new records every SealInterval and removes expired ones hourly,
// in one process at a time among all sharing the database, until ctx ends;
// then it writes what Record holds.
func (r *Recorder) Run(ctx context.Context) error {
	err := r.st.RunExclusive(ctx, SealerJob, store.ExclusiveOptions{}, func(ctx context.Context) error {
		t := time.NewTicker(r.opts.SealInterval)
		defer t.Stop()
		lastPurge := time.Time{}
		for {
			if _, err := r.Seal(ctx); err != nil && ctx.Err() == nil {
				r.log.Error("audit: seal failed", "err", err)
			}
			if time.Since(lastPurge) > time.Hour {
				lastPurge = time.Now()
				if n, err := r.Purge(ctx); err != nil && ctx.Err() == nil {
					r.log.Error("audit: retention failed", "err", err)
				} else if n > 0 {
					r.log.Info("audit: records past their retention removed", "removed", n, "retention_days", r.opts.RetentionDays)
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	return err
}

// Break is the first place where the chain does not hold.
type Break struct {
	ID     int64  `json:"id"`  // the record (0: the record is missing)
	Seq    int64  `json:"seq"` // its position in the chain
	Reason string `json:"reason"`
}

// Report is what Verify found.
type Report struct {
	Checked  int64  `json:"checked"`  // sealed records whose hash was checked
	HeadSeq  int64  `json:"head_seq"` // the chain's last position
	Broken   *Break `json:"broken"`   // nil: the chain holds
	Unsealed int64  `json:"unsealed"` // records not sealed yet
	Stale    *Break `json:"stale"`    // an unsealed record older than the allowed lag (sealer down, or inserted afterwards)
}

// OK reports whether the trail is intact.
func (rp Report) OK() bool { return rp.Broken == nil && rp.Stale == nil }

// Verify checks the whole chain from its anchor to its head, and that no
// record stayed unsealed longer than maxLag.
func (r *Recorder) Verify(ctx context.Context, maxLag time.Duration) (Report, error) {
	var rp Report
	var head store.AuditSeal
	if err := r.st.View(ctx, func(tx *store.Tx) error {
		var err error
		head, err = tx.AuditSealState(ctx)
		return err
	}); err != nil {
		return rp, err
	}
	rp.HeadSeq = head.HeadSeq
	prev, want := head.AnchorHash, head.AnchorSeq+1
	for rp.Broken == nil {
		rows, err := r.st.AuditChain(ctx, want-1, 1000)
		if err != nil {
			return rp, err
		}
		for _, row := range rows {
			switch {
			case row.Seq != want:
				rp.Broken = &Break{Seq: want, Reason: fmt.Sprintf("record %d of the chain is missing (removed); the next one is record id %d at position %d", want, row.ID, row.Seq)}
			case chainHash(r.key(), prev, row.Seq, row) != row.Hash:
				rp.Broken = &Break{ID: row.ID, Seq: row.Seq, Reason: "the record does not match its hash: it was changed, or records were moved"}
			}
			if rp.Broken != nil {
				break
			}
			rp.Checked++
			prev, want = row.Hash, row.Seq+1
		}
		if len(rows) < 1000 {
			break
		}
	}
	if rp.Broken == nil && want-1 != head.HeadSeq {
		if want-1 < head.HeadSeq {
			rp.Broken = &Break{Seq: want, Reason: fmt.Sprintf("the chain ends at position %d but its head is %d: the last records were removed", want-1, head.HeadSeq)}
		} else {
			rp.Broken = &Break{Seq: head.HeadSeq + 1, Reason: "records beyond the chain's head were sealed by something else"}
		}
	}
	old, ok, err := r.st.OldestUnsealedAudit(ctx)
	if err != nil {
		return rp, err
	}
	if ok {
		if err := r.st.View(ctx, func(tx *store.Tx) error {
			return tx.Get(ctx, &rp.Unsealed, "SELECT COUNT(*) FROM audit_events WHERE seq IS NULL")
		}); err != nil {
			return rp, err
		}
		if age := r.opts.Now().Sub(time.UnixMicro(old.At)); age > maxLag {
			rp.Stale = &Break{ID: old.ID, Reason: fmt.Sprintf("record id %d is not sealed %s after it was written: the sealer is not running, or the record was inserted afterwards", old.ID, age.Round(time.Second))}
		}
	}
	return rp, nil
}

// String is a one-line summary of the report.
func (rp Report) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d records checked, chain head at %d, %d not sealed yet", rp.Checked, rp.HeadSeq, rp.Unsealed)
	if rp.Broken != nil {
		fmt.Fprintf(&b, "; BROKEN at position %d (record id %d): %s", rp.Broken.Seq, rp.Broken.ID, rp.Broken.Reason)
	}
	if rp.Stale != nil {
		fmt.Fprintf(&b, "; %s", rp.Stale.Reason)
	}
	if rp.OK() {
		b.WriteString("; intact")
	}
	return b.String()
}

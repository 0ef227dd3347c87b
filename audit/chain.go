package audit

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// The hash chain. Records are written by many transactions at once, in
// several processes; chaining each to the one before as it is written would
// make every audited write wait for one lock (the chain's head) until its
// transaction commits — every POST and claim of every process in one line.
// Instead records are written unchained, once, and one sealer
// (store.RunExclusive) seals the committed ones after the fact, in batches: a
// seal (a row of audit_seals) lists the ids of its records, a 16-byte HMAC of
// each (recordDigest) and hash = HMAC(key, previous seal's hash, its seq, the
// position of its last record, the ids, the digests). Verify walks the seals
// in order: a changed record no longer matches its digest, a removed record is
// missing from the ids its seal lists, a changed or removed seal breaks the
// hashes (or, at the end, leaves a head the seals do not reach), and a record
// inserted behind the sealer's back is in no seal.
//
// Ids are taken when a record is written, so on PostgreSQL a record may commit
// after one with a higher id was sealed: the ids the sealer passes over are
// kept as gaps (audit_seal.gaps) and sealed when their record appears — for
// gapWait, after which an id is taken to be of a transaction that rolled back.
//
// Records sealed before migration 0026 were chained one by one (seq, hash =
// HMAC(key, previous hash, seq, the record)); Verify checks that chain first
// and the first seal chains on to its last hash.

// SealerJob names the sealer's lease (store.RunExclusive).
const SealerJob = "audit-sealer"

// sealBatch bounds the records of one seal.
const sealBatch = 2000

// gapWait is how long the sealer waits for the record of an id it passed over.
const gapWait = time.Hour

// digestSize is the bytes of a record's digest kept in its seal.
const digestSize = 16

func (r *Recorder) key() []byte {
	if len(r.opts.Key) > 0 {
		return r.opts.Key
	}
	return []byte("koppelpoort audit trail")
}

// mac is the HMAC of fields, each length-prefixed so no value can be shifted into its neighbour.
func mac(key []byte, fields ...string) []byte {
	m := hmac.New(sha256.New, key)
	for _, f := range fields {
		m.Write([]byte(strconv.Itoa(len(f))))
		m.Write([]byte{':'})
		m.Write([]byte(f))
	}
	return m.Sum(nil)
}

func recordFields(row store.AuditRow) []string {
	return []string{strconv.FormatInt(row.ID, 10), strconv.FormatInt(row.At, 10),
		row.Action, row.Result, strconv.Itoa(row.Status), row.ActorKind, row.Actor, row.Application, row.Domain,
		row.Client, row.LaunchUser, row.TokenPatient, row.SourceIP, row.RequestID, row.Patient, row.Object, row.Detail}
}

// chainHash is the hash of a record sealed before migration 0026 at position seq after prev.
func chainHash(key []byte, prev string, seq int64, row store.AuditRow) string {
	return hex.EncodeToString(mac(key, append([]string{prev, strconv.FormatInt(seq, 10)}, recordFields(row)...)...))
}

// recordDigest is what a seal keeps of a record: every field, id included.
func recordDigest(key []byte, row store.AuditRow) []byte {
	return mac(key, append([]string{"record"}, recordFields(row)...)...)[:digestSize]
}

// sealHash is the chain's hash after seal b, which follows hash prev.
func sealHash(key []byte, prev string, b store.AuditBatch) string {
	return hex.EncodeToString(mac(key, prev, "seal", strconv.FormatInt(b.Seq, 10), strconv.FormatInt(b.LastPos, 10),
		b.IDs, hex.EncodeToString(b.Digests)))
}

// Seal seals the committed records not sealed yet and returns how many.
// Run it in one process at a time (Run does).
func (r *Recorder) Seal(ctx context.Context) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := r.st.Update(ctx, func(tx *store.Tx) error {
			var err error
			n, more, err = r.sealOne(ctx, tx)
			return err
		})
		if err != nil {
			return total, fmt.Errorf("audit: seal: %w", err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// sealOne writes one seal of the records that appeared in the gaps and up
// to sealBatch new ones; more reports that there may be more new ones.
func (r *Recorder) sealOne(ctx context.Context, tx *store.Tx) (n int, more bool, err error) {
	st, err := tx.AuditSealState(ctx)
	if err != nil {
		return 0, false, err
	}
	gaps, err := parseGaps(st.Gaps)
	if err != nil {
		return 0, false, err
	}
	rows, err := tx.AuditRanges(ctx, idRanges(gaps))
	if err != nil {
		return 0, false, err
	}
	fresh, err := tx.AuditAfter(ctx, st.SealedTo, sealBatch)
	if err != nil {
		return 0, false, err
	}
	now := r.opts.Now().UnixMicro()
	sealedTo := st.SealedTo
	ids := make([]int64, 0, len(rows)+len(fresh))
	for _, row := range rows {
		ids = append(ids, row.ID)
	}
	next := sealedTo + 1
	for _, row := range fresh {
		if row.ID > next {
			gaps = append(gaps, gap{store.AuditIDRange{From: next, To: row.ID - 1}, now})
		}
		ids = append(ids, row.ID)
		next, sealedTo = row.ID+1, row.ID
	}
	rows = append(rows, fresh...)
	newGaps := formatGaps(withoutIDs(gaps, ids, now-gapWait.Microseconds()))
	if len(rows) == 0 {
		if newGaps != st.Gaps {
			return 0, false, tx.SetAuditGaps(ctx, newGaps)
		}
		return 0, false, nil
	}
	b := store.AuditBatch{Seq: st.SealSeq + 1, LastPos: st.HeadSeq + int64(len(rows)), IDs: store.FormatAuditIDs(ids),
		Digests: make([]byte, 0, digestSize*len(rows)), SealedAt: now}
	for _, row := range rows {
		b.Digests = append(b.Digests, recordDigest(r.key(), row)...)
	}
	b.Hash = sealHash(r.key(), st.HeadHash, b)
	return len(rows), len(fresh) == sealBatch, tx.InsertAuditSeal(ctx, b, sealedTo, newGaps)
}

// gap is a run of ids the sealer passed over, first seen at Seen (Unix µs).
type gap struct {
	store.AuditIDRange
	Seen int64
}

// parseGaps reads audit_seal.gaps: "from-to@seen,...".
func parseGaps(s string) ([]gap, error) {
	if s == "" {
		return nil, nil
	}
	var out []gap
	for _, part := range strings.Split(s, ",") {
		ids, seen, ok := strings.Cut(part, "@")
		rs, err := store.ParseAuditIDs(ids)
		at, err2 := strconv.ParseInt(seen, 10, 64)
		if !ok || err != nil || err2 != nil || len(rs) != 1 {
			return nil, fmt.Errorf("audit gaps %q: bad gap %q", s, part)
		}
		out = append(out, gap{rs[0], at})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From < out[j].From })
	return out, nil
}

func idRanges(gs []gap) []store.AuditIDRange {
	rs := make([]store.AuditIDRange, len(gs))
	for i, g := range gs {
		rs[i] = g.AuditIDRange
	}
	return rs
}

func formatGaps(gs []gap) string {
	parts := make([]string, len(gs))
	for i, g := range gs {
		parts[i] = fmt.Sprintf("%d-%d@%d", g.From, g.To, g.Seen)
	}
	return strings.Join(parts, ",")
}

// withoutIDs returns gs without the ids sealed (ascending) and without the gaps seen before expired.
func withoutIDs(gs []gap, sealed []int64, expired int64) []gap {
	var out []gap
	for _, g := range gs {
		if g.Seen < expired {
			continue
		}
		from := g.From
		i := sort.Search(len(sealed), func(i int) bool { return sealed[i] >= g.From })
		for ; i < len(sealed) && sealed[i] <= g.To; i++ {
			if sealed[i] > from {
				out = append(out, gap{store.AuditIDRange{From: from, To: sealed[i] - 1}, g.Seen})
			}
			from = sealed[i] + 1
		}
		if from <= g.To {
			out = append(out, gap{store.AuditIDRange{From: from, To: g.To}, g.Seen})
		}
	}
	return out
}

// purgeBatch bounds the rows one retention transaction removes.
const purgeBatch = 1000

// Purge removes the records older than RetentionDays (sealed ones only, oldest
// first, a seal's records all together, moving the chain's anchor) and returns
// how many.
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
		if n == 0 {
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

// Verify checks the whole chain from its anchor to its head, that every
// record is sealed or waiting to be, and that none waited longer than maxLag.
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
	if err := r.verifyLegacy(ctx, head, &rp); err != nil || rp.Broken != nil {
		return rp, err
	}
	sealed, err := r.verifySeals(ctx, head, &rp)
	if err != nil || rp.Broken != nil {
		return rp, err
	}
	return rp, r.verifyUnsealed(ctx, head, sealed, maxLag, &rp)
}

// verifyLegacy checks the per-record chain of the records sealed before migration 0026.
func (r *Recorder) verifyLegacy(ctx context.Context, head store.AuditSeal, rp *Report) error {
	prev, want := head.AnchorHash, head.AnchorSeq+1
	for rp.Broken == nil {
		rows, err := r.st.AuditChain(ctx, want-1, 1000)
		if err != nil {
			return err
		}
		for _, row := range rows {
			switch {
			case row.Seq > head.LegacySeq:
				rp.Broken = &Break{ID: row.ID, Seq: row.Seq, Reason: "records beyond the chain's head were sealed by something else"}
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
	if rp.Broken == nil && head.AnchorSeq < head.LegacySeq && want-1 < head.LegacySeq {
		rp.Broken = &Break{Seq: want, Reason: fmt.Sprintf("the chain ends at position %d but its head is %d: the last records were removed", want-1, head.LegacySeq)}
	}
	return nil
}

// verifySeals walks the seals from the anchor to the head, checking each seal's
// hash and each record against its digest; it returns how many records the
// seals hold.
func (r *Recorder) verifySeals(ctx context.Context, head store.AuditSeal, rp *Report) (int64, error) {
	prev, pos := head.LegacyHash, head.LegacySeq
	if head.SealAnchorSeq > 0 {
		prev, pos = head.SealAnchorHash, head.AnchorSeq
	}
	var records int64
	want := head.SealAnchorSeq + 1
	for {
		bs, err := r.st.AuditSeals(ctx, want-1, sealPage)
		if err != nil {
			return 0, err
		}
		// The seals' own hashes first, then their records, read for many seals at once.
		var page []sealedPart
		for _, b := range bs {
			if b.Seq != want {
				rp.Broken = &Break{Seq: pos + 1, Reason: fmt.Sprintf("seal %d of the chain is missing (removed), and the records of position %d on with it", want, pos+1)}
				break
			}
			ranges, err := store.ParseAuditIDs(b.IDs)
			n := int64(0)
			for _, rg := range ranges {
				n += rg.To - rg.From + 1
			}
			if err != nil || sealHash(r.key(), prev, b) != b.Hash || b.LastPos != pos+n || int64(len(b.Digests)) != n*digestSize {
				rp.Broken = &Break{Seq: pos + 1, Reason: fmt.Sprintf("seal %d (positions %d-%d) does not match its hash: it was changed", b.Seq, pos+1, b.LastPos)}
				break
			}
			page = append(page, sealedPart{b, ranges, pos})
			records += n
			prev, pos, want = b.Hash, b.LastPos, want+1
		}
		// A broken seal is reported after the records before it: the first break in chain order.
		broken := rp.Broken
		rp.Broken = nil
		if err := r.verifyRecords(ctx, page, rp); err != nil || rp.Broken != nil {
			return 0, err
		}
		if rp.Broken = broken; broken != nil {
			return 0, nil
		}
		if len(bs) < sealPage {
			break
		}
	}
	switch {
	case want-1 < head.SealSeq:
		rp.Broken = &Break{Seq: pos + 1, Reason: fmt.Sprintf("the chain ends at seal %d (position %d) but its head is seal %d (position %d): the last seals were removed", want-1, pos, head.SealSeq, head.HeadSeq)}
	case want-1 > head.SealSeq || prev != head.HeadHash || pos != head.HeadSeq:
		rp.Broken = &Break{Seq: head.HeadSeq + 1, Reason: "the chain's head does not match its last seal: seals were written by something else, or the head was changed"}
	}
	return records, nil
}

// sealPage is how many seals Verify reads at once (their records together).
const sealPage = 20

// sealedPart is a seal whose hash held, with its ids and the position before its first record.
type sealedPart struct {
	b      store.AuditBatch
	ranges []store.AuditIDRange
	pos    int64
}

// verifyRecords checks the records of the seals of a page against their digests, in chain order.
func (r *Recorder) verifyRecords(ctx context.Context, page []sealedPart, rp *Report) error {
	var all []store.AuditIDRange
	for _, sp := range page {
		all = append(all, sp.ranges...)
	}
	rows, err := r.st.AuditRanges(ctx, all)
	if err != nil {
		return err
	}
	byID := make(map[int64]*store.AuditRow, len(rows))
	for i := range rows {
		byID[rows[i].ID] = &rows[i]
	}
	for _, sp := range page {
		i := 0
		for _, rg := range sp.ranges {
			for id := rg.From; id <= rg.To; id, i = id+1, i+1 {
				p := sp.pos + int64(i) + 1
				row, ok := byID[id]
				if !ok {
					rp.Broken = &Break{ID: id, Seq: p, Reason: fmt.Sprintf("record %d of the chain is missing (removed): record id %d of seal %d", p, id, sp.b.Seq)}
					return nil
				}
				if !hmac.Equal(recordDigest(r.key(), *row), sp.b.Digests[i*digestSize:(i+1)*digestSize]) {
					rp.Broken = &Break{ID: id, Seq: p, Reason: "the record does not match its hash: it was changed, or records were moved"}
					return nil
				}
				rp.Checked++
			}
		}
	}
	return nil
}

// sealedRanges returns the ids of all seals after the anchor, sorted (for
// finding a record that is in none: only when the counts say there is one).
func (r *Recorder) sealedRanges(ctx context.Context, head store.AuditSeal) ([]store.AuditIDRange, error) {
	var out []store.AuditIDRange
	for after := head.SealAnchorSeq; ; {
		bs, err := r.st.AuditSeals(ctx, after, 1000)
		if err != nil {
			return nil, err
		}
		for _, b := range bs {
			ranges, err := store.ParseAuditIDs(b.IDs)
			if err != nil {
				return nil, err
			}
			out = append(out, ranges...)
			after = b.Seq
		}
		if len(bs) < 1000 {
			return out, nil
		}
	}
}

// verifyUnsealed counts the records waiting to be sealed (above sealed_to and
// in the gaps), reports the oldest when it waited longer than maxLag, and
// finds a record that is in no seal and not waiting either (inserted behind
// the sealer's back): sealed, the records the seals hold, must be all there
// are up to sealed_to besides the waiting ones.
func (r *Recorder) verifyUnsealed(ctx context.Context, head store.AuditSeal, sealed int64, maxLag time.Duration, rp *Report) error {
	above, oldest, ok, err := r.st.AuditAbove(ctx, head.SealedTo)
	if err != nil {
		return err
	}
	rp.Unsealed = above
	gaps, err := parseGaps(head.Gaps)
	if err != nil {
		return err
	}
	waiting, err := r.st.AuditRanges(ctx, idRanges(gaps))
	if err != nil {
		return err
	}
	rp.Unsealed += int64(len(waiting))
	for _, row := range waiting {
		if !ok || row.At < oldest.At {
			oldest, ok = row, true
		}
	}
	if ok {
		if age := r.opts.Now().Sub(time.UnixMicro(oldest.At)); age > maxLag {
			rp.Stale = &Break{ID: oldest.ID, Reason: fmt.Sprintf("record id %d is not sealed %s after it was written: the sealer is not running, or the record was inserted afterwards", oldest.ID, age.Round(time.Second))}
			return nil
		}
	}
	total, err := r.st.CountUnchainedAudit(ctx, head.SealedTo)
	if err != nil || total == sealed+int64(len(waiting)) {
		return err
	}
	known, err := r.sealedRanges(ctx, head)
	if err != nil {
		return err
	}
	known = append(known, idRanges(gaps)...)
	sort.Slice(known, func(i, j int) bool { return known[i].From < known[j].From })
	after := int64(math.MinInt64)
	for {
		ids, err := r.st.UnchainedAuditIDs(ctx, after, head.SealedTo, 10000)
		if err != nil {
			return err
		}
		for _, id := range ids {
			i := sort.Search(len(known), func(i int) bool { return known[i].To >= id })
			if i == len(known) || known[i].From > id {
				rp.Stale = &Break{ID: id, Reason: fmt.Sprintf("record id %d is in no seal and not waiting for one: it was inserted behind the sealer's back", id)}
				return nil
			}
		}
		if len(ids) < 10000 {
			return nil
		}
		after = ids[len(ids)-1]
	}
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

package loadtest

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// The audit trail of a load run (issue 11, NEN 7513): every claim the tool
// made and every message its searches read must have an audit record naming
// the instance that did it and the message's patient. The tool knows both
// from what it sent (Tracker.patient), not from the server's replies. With
// Options.AuditDSN (--self) it reads the trail from the server's database
// after the read-back (audit.Query: claims are recorded in the claim's
// transaction, searches within a moment after).

// AuditCheck is the result of the audit-trail check.
type AuditCheck struct {
	Claims          int64    `json:"claims"`          // claims that returned a message
	ClaimsMissing   int64    `json:"claims_missing"`  // without a claim record by the instance
	ClaimsWrong     int64    `json:"claims_wrong"`    // with a record naming another patient
	Reads           int64    `json:"reads"`           // messages returned by the tool's searches
	ReadsMissing    int64    `json:"reads_missing"`   // without a search record by the instance listing them
	ReadsWrong      int64    `json:"reads_wrong"`     // listed under another patient
	Unknown         int64    `json:"unknown_patient"` // claims and reads of messages the tool cannot name the patient of (not checked)
	RecordsRead     int64    `json:"records_read"`    // claim and search records read from the trail
	Seconds         float64  `json:"seconds"`         // how long reading them took
	Examples        []string `json:"examples,omitempty"`
	Pass            bool     `json:"pass"`
	UncheckedReason string   `json:"unchecked_reason,omitempty"`
}

// accessKey is one message entry (queue id) seen by one instance.
type accessKey struct {
	inst  int
	entry int64
}

// accessLog collects what the tool claimed and read: entry → message identifier.
type accessLog struct {
	mu     sync.Mutex
	claims map[accessKey]string
	reads  map[accessKey]string
}

func (l *accessLog) add(m *map[accessKey]string, inst int, h headerInfo) {
	id, ok := entryNumber(h.entryID)
	if !ok {
		return
	}
	l.mu.Lock()
	if *m == nil {
		*m = map[accessKey]string{}
	}
	(*m)[accessKey{inst, id}] = h.identifier
	l.mu.Unlock()
}

func (l *accessLog) claimed(inst int, h headerInfo) { l.add(&l.claims, inst, h) }
func (l *accessLog) read(inst int, h headerInfo)    { l.add(&l.reads, inst, h) }

// entryNumber is the queue id at the end of an entry id ([base]/MessageHeader/39).
func entryNumber(entryID string) (int64, bool) {
	i := strings.LastIndex(entryID, "/MessageHeader/")
	if i < 0 {
		return 0, false
	}
	n, err := strconv.ParseInt(entryID[i+len("/MessageHeader/"):], 10, 64)
	return n, err == nil
}

// checkAudit reads the claim and search records from the trail at dsn and
// compares them with what the tool did.
func (r *runner) checkAudit(ctx context.Context, dsn string) *AuditCheck {
	c := &AuditCheck{}
	start := time.Now()
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		c.UncheckedReason = fmt.Sprintf("open the server's store: %v", err)
		return c
	}
	defer st.Close()
	byName := map[string]int{}
	for _, in := range r.insts {
		byName[in.spec.Username] = in.idx
	}
	// Search records are written shortly after the request (audit.Recorder.Record):
	// read until a pass finds no more of them than the one before.
	claims, reads, n, err := readAccessRecords(ctx, st, byName)
	for prev := int64(-1); err == nil && n != prev && time.Since(start) < 30*time.Second; {
		prev = n
		time.Sleep(500 * time.Millisecond)
		claims, reads, n, err = readAccessRecords(ctx, st, byName)
	}
	if err != nil {
		c.UncheckedReason = err.Error()
		return c
	}
	c.RecordsRead, c.Seconds = n, time.Since(start).Seconds()
	example := func(format string, a ...any) {
		if len(c.Examples) < 10 {
			c.Examples = append(c.Examples, fmt.Sprintf(format, a...))
		}
	}
	r.access.mu.Lock()
	defer r.access.mu.Unlock()
	compare := func(what string, done map[accessKey]string, trail map[accessKey][]string, total, missing, wrong *int64) {
		for k, id := range done {
			want, ok := r.tr.patient(id)
			if !ok {
				c.Unknown++
				continue
			}
			*total++
			got := trail[k]
			switch {
			case len(got) == 0:
				*missing++
				example("%s of MessageHeader/%d (message %s) by %s: no audit record names that instance", what, k.entry, id, r.insts[k.inst].spec.Username)
			case !contains(got, want):
				*wrong++
				example("%s of MessageHeader/%d (message %s) by %s: the audit record names patient %q, the message is about %s", what, k.entry, id, r.insts[k.inst].spec.Username, got[0], want)
			}
		}
	}
	compare("claim", r.access.claims, claims, &c.Claims, &c.ClaimsMissing, &c.ClaimsWrong)
	compare("read", r.access.reads, reads, &c.Reads, &c.ReadsMissing, &c.ReadsWrong)
	c.Pass = c.Claims > 0 && c.ClaimsMissing == 0 && c.ClaimsWrong == 0 && c.ReadsMissing == 0 && c.ReadsWrong == 0
	return c
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// readAccessRecords pages through every claim and search record of the
// trail (by id: one pass over the table) and returns, per instance and
// entry, the patients the records name.
func readAccessRecords(ctx context.Context, st *store.Store, byName map[string]int) (claims, reads map[accessKey][]string, n int64, err error) {
	claims, reads = map[accessKey][]string{}, map[accessKey][]string{}
	for _, action := range []string{audit.ActionClaim, audit.ActionSearch} {
		into := claims
		if action == audit.ActionSearch {
			into = reads
		}
		for after := int64(0); ; {
			evs, err := audit.Query(ctx, st, audit.Filter{Action: action, AfterID: after, Limit: 5000})
			if err != nil {
				return nil, nil, 0, fmt.Errorf("read the audit trail: %w", err)
			}
			for _, ev := range evs {
				n++
				inst, ok := byName[ev.Actor.Name]
				if !ok || ev.Result != audit.ResultOK {
					continue
				}
				// MessageHeader/12 (claim), MessageHeader/12,13,14 (a search, one record per patient).
				ids, _ := strings.CutPrefix(ev.Object, "MessageHeader/")
				for _, s := range strings.Split(ids, ",") {
					if id, err := strconv.ParseInt(s, 10, 64); err == nil {
						k := accessKey{inst, id}
						into[k] = append(into[k], ev.Patient)
					}
				}
			}
			if len(evs) < 5000 {
				break
			}
			after = evs[len(evs)-1].ID
		}
	}
	return claims, reads, n, nil
}

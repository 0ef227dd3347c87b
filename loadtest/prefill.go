package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// Prefill describes the messages --prefill wrote straight into the fresh
// database of a --self server before it started: per domain PerDomain
// CreateOrUpdatePatient messages from the practitioner portal, each queued
// New for every instance subscribed to the event. They are the oldest
// entries of every queue, so the consumers claim them first.
type Prefill struct {
	// Tag starts the MessageHeader.identifier of every prefilled message
	// (random per run; see prefillID).
	Tag string `json:"tag"`
	// PerDomain is the number of waiting messages written per domain.
	PerDomain int `json:"per_domain"`
	// DuePerDomain is the number of messages per domain written due for
	// removal (Scenario.PrefillDue): created before the maximum message age,
	// every entry Success, the body kept. Their numbers follow the waiting
	// ones (PerDomain..PerDomain+DuePerDomain-1), which the tracker does not
	// expect: a delivery of one is a stray. They are written first (the
	// oldest rows), so they are every instance's oldest Success entries.
	DuePerDomain int `json:"due_per_domain,omitempty"`
	// Domains lists, per domain, who sent the messages and who got them.
	Domains []PrefillDomain `json:"domains"`
	// Seconds is how long generating and committing them took, or copying
	// the snapshot they came from.
	Seconds float64 `json:"seconds"`
	// Snapshot is the prefill snapshot the database was copied from
	// (SelfOptions.PrefillSnapshot); "" when written by this run.
	Snapshot string `json:"snapshot,omitempty"`
}

// PrefillDomain is the prefill of one domain; indexes are positions in the
// instance list the run uses (SelfServer.Instances).
type PrefillDomain struct {
	Domain      string `json:"domain"`
	Sender      int    `json:"sender"`
	Subscribers []int  `json:"subscribers"`
}

// Messages is the number of prefilled messages, waiting and due (all domains).
func (p *Prefill) Messages() int64 {
	if p == nil {
		return 0
	}
	return int64(p.PerDomain+p.DuePerDomain) * int64(len(p.Domains))
}

// dueAge is how old the oldest prefilled due message is: past the default
// maximum message age by a day; the others are spread over the 12 hours
// after it (dueStep), oldest first, so every one of them is due.
const dueAge = (koppeltaal.DefaultMaxMessageAgeDays + 1) * 24 * time.Hour

// dueStep is the creation time between consecutive due messages of a domain.
func dueStep(due int) time.Duration { return min(time.Second, 12*time.Hour/time.Duration(max(due, 1))) }

// prefillBatch is how many messages one store.Update writes, and
// prefillWriters how many Updates are in flight at once. On SQLite the
// store's group commit runs concurrent Updates in one transaction (up to 128
// of them: a few thousand messages per commit), each in its own savepoint;
// a savepoint of a few dozen messages keeps SQLite's in-memory statement
// journal short (closing a statement walks it from the start, so one
// 5,000-message savepoint costs time quadratic in its size).
const (
	prefillBatch   = 50
	prefillWriters = 32
)

// prefillID is the MessageHeader.identifier of prefilled message n of the
// domain at index d: shaped like a UUID (Koppeltaal identifiers are
// [a-z0-9\-\.]{1,36}) and parseable back without a per-message table, so a
// million of them cost the tracker a few bytes each.
func prefillID(tag string, d, n int) string {
	return fmt.Sprintf("%s-%04x-%012x", tag, d, n)
}

// parsePrefillID is the inverse of prefillID for identifiers with tag.
func parsePrefillID(tag, id string) (d, n int, ok bool) {
	if len(id) != 36 || len(tag) != 18 || id[:18] != tag || id[18] != '-' || id[23] != '-' {
		return 0, 0, false
	}
	dd, err1 := strconv.ParseUint(id[19:23], 16, 32)
	nn, err2 := strconv.ParseUint(id[24:], 16, 63)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return int(dd), int(nn), true
}

// newPrefillTag returns a random 8-4-4 hex tag.
func newPrefillTag() string {
	h := randomHex(8)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16]
}

// prefillPatientURL is the focal Patient of prefilled message n: a path shape
// the load phase never uses ("Patient/<n>-<id>"), so its version checks and
// supersession are unaffected. Zero-padded, so that the URLs (keys of the
// resource and queue indexes) arrive in ascending order and the inserts
// append instead of scattering over a growing index.
func prefillPatientURL(base string, n int) string {
	return fmt.Sprintf("%sPatient/prefill-%08d", base, n)
}

// prefillRow is one generated message with everything its rows need.
type prefillRow struct {
	dom         int // index into the domain list
	n           int
	id, feedID  string
	patient     string
	version     string
	at          int64 // Unix microseconds: created_at and status_changed_at
	due         bool  // delivered long ago (Success), due for removal
	body        []byte
	contentHash string
	requestHash string
}

// prefillDomain is a domain's database ids and message shape while writing.
type prefillDomain struct {
	PrefillDomain
	id         int64
	senderID   int64
	recipients []int64
	base       string
	source     string
	format     string
}

// WritePrefill opens the store at dsn (a fresh database no server holds),
// provisions kt into it (koppeltaal.Apply, as the server does again at start,
// idempotently) and writes perDomain waiting CreateOrUpdatePatient messages
// per domain through the store package: the rows a POST creates — body
// (the tool's own message, with versioned self link and MessageHeader.data,
// as the server stores it), message, Patient resource version, one queue
// entry per subscriber (QueueForAll) and the post receipt — prefillBatch
// messages per Update, prefillWriters Updates at once (see there). specs must
// be the instances Provision returned for kt. A share sc.PrefillDue of them is
// written due for removal instead (Prefill.DuePerDomain).
// Progress, when not nil, gets a line every 5 seconds.
func WritePrefill(ctx context.Context, dsn, synchronous string, kt koppeltaal.Config, specs []InstanceSpec, sc *Scenario, perDomain int, progress io.Writer) (*Prefill, error) {
	start := time.Now()
	// The fill allocates a few hundred MB per second (rows, bodies, driver
	// arguments) and keeps little: collect less often while it runs.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	st, err := store.Open(ctx, store.Config{DSN: dsn, SQLiteSynchronous: synchronous}, nil)
	if err != nil {
		return nil, fmt.Errorf("prefill: open the store: %w", err)
	}
	closed := false
	defer func() {
		if !closed {
			_ = st.Close()
		}
	}()
	if _, err := koppeltaal.Apply(ctx, kt, st, nil); err != nil {
		return nil, fmt.Errorf("prefill: provision the domains: %w", err)
	}
	due := int(math.Round(float64(perDomain) * sc.PrefillDue))
	p := &Prefill{Tag: newPrefillTag(), PerDomain: perDomain - due, DuePerDomain: due}
	doms, err := prefillDomains(ctx, st, specs, sc)
	if err != nil {
		return nil, err
	}
	for _, d := range doms {
		p.Domains = append(p.Domains, d.PrefillDomain)
	}
	if perDomain <= 0 || len(doms) == 0 {
		return p, nil
	}
	// Versions are fixed per message number, so batches can be generated in
	// parallel: t0 plus one version tick per message, above anything the
	// domain has issued (nothing: the database is fresh) and in the past by the
	// time the server starts (a million ticks are 0.1 s).
	t0 := time.Now().UTC()
	versionAt := func(n int) time.Time { return t0.Add(time.Duration(n) * 100 * time.Nanosecond) }
	total := perDomain * len(doms)
	batches := (total + prefillBatch - 1) / prefillBatch

	gctx, cancel := context.WithCancel(ctx)
	defer cancel()
	next := atomic.Int64{}
	out := make(chan []prefillRow, 2)
	var genErr error
	var genOnce sync.Once
	var wg sync.WaitGroup
	for range max(1, runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for gctx.Err() == nil {
				b := int(next.Add(1) - 1)
				if b >= batches {
					return
				}
				rows := make([]prefillRow, 0, prefillBatch)
				for k := b * prefillBatch; k < min(total, (b+1)*prefillBatch); k++ {
					// Message numbers run over the domains in turn, as --backlog posts
					// them; the due ones first (the oldest rows), numbered after the waiting.
					i := k / len(doms)
					n, created := i-due, versionAt(i)
					if i < due {
						n, created = p.PerDomain+i, t0.Add(-dueAge+time.Duration(i)*dueStep(due))
					}
					row, err := genPrefillRow(p.Tag, doms, k%len(doms), n, versionAt(i), created, i < due)
					if err != nil {
						genOnce.Do(func() { genErr = err })
						cancel()
						return
					}
					rows = append(rows, row)
				}
				select {
				case out <- rows:
				case <-gctx.Done():
					return
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }()

	var written atomic.Int64
	stopProgress := make(chan struct{})
	defer close(stopProgress)
	if progress != nil {
		go func() {
			t := time.NewTicker(5 * time.Second)
			defer t.Stop()
			for {
				select {
				case <-stopProgress:
					return
				case <-t.C:
					w := written.Load()
					fmt.Fprintf(progress, "prefill: %d of %d messages written (%.0f/s)\n", w, total, float64(w)/time.Since(start).Seconds())
				}
			}
		}()
	}
	lastVersion := versionAt(perDomain - 1)
	// Several Updates in flight: on SQLite the store's group commit runs them
	// in one transaction (one commit for many chunks), each in a savepoint.
	var werr error
	var werrOnce sync.Once
	var ww sync.WaitGroup
	for range prefillWriters {
		ww.Add(1)
		go func() {
			defer ww.Done()
			for rows := range out {
				if gctx.Err() != nil {
					continue // drain: the generators stop at the cancel
				}
				if err := st.Update(gctx, func(tx *store.Tx) error { return writePrefillRows(gctx, tx, doms, rows) }); err != nil {
					werrOnce.Do(func() { werr = fmt.Errorf("prefill: write %d messages: %w", len(rows), err) })
					cancel()
					continue
				}
				written.Add(int64(len(rows)))
			}
		}()
	}
	ww.Wait()
	if werr != nil {
		return nil, werr
	}
	if genErr != nil {
		return nil, fmt.Errorf("prefill: generate messages: %w", genErr)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	// The domains' last version: the server's next POST on SQLite issues above it.
	if err := st.Update(ctx, func(tx *store.Tx) error {
		for _, d := range doms {
			if err := tx.SetDomainVersion(ctx, d.id, koppeltaal.FormatVersion(lastVersion)); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("prefill: %w", err)
	}
	closed = true
	if err := st.Close(); err != nil {
		return nil, fmt.Errorf("prefill: close the store: %w", err)
	}
	p.Seconds = time.Since(start).Seconds()
	return p, nil
}

// prefillDomains looks up, per provisioned domain, its id, its practitioner
// portal (the sender) and the instances the server routes
// CreateOrUpdatePatient to (tx.Subscribers, as a POST does), and maps them to
// indexes in specs.
func prefillDomains(ctx context.Context, st *store.Store, specs []InstanceSpec, sc *Scenario) ([]*prefillDomain, error) {
	byUser := map[string]int{}
	for i, s := range specs {
		byUser[s.Username] = i
	}
	var doms []*prefillDomain
	err := st.View(ctx, func(tx *store.Tx) error {
		doms = nil
		seen := map[string]*prefillDomain{}
		byID := map[int64]int{}
		for i, s := range specs {
			in, err := tx.InstanceByUsername(ctx, s.Username)
			if err != nil {
				return fmt.Errorf("prefill: instance %s: %w", s.Username, err)
			}
			byID[in.ID] = i
			if s.Role != RolePractitionerPortal || seen[s.Domain] != nil {
				continue
			}
			dom, err := tx.DomainByName(ctx, s.Domain)
			if err != nil {
				return fmt.Errorf("prefill: domain %s: %w", s.Domain, err)
			}
			d := &prefillDomain{PrefillDomain: PrefillDomain{Domain: s.Domain, Sender: i}, id: dom.ID, senderID: in.ID,
				base: domainBaseURL(s.Domain), source: s.Application, format: instanceFormat(s, i, sc.Format)}
			seen[s.Domain] = d
			doms = append(doms, d)
		}
		for _, d := range doms {
			subs, err := tx.Subscribers(ctx, d.id, EventPatient)
			if err != nil {
				return fmt.Errorf("prefill: subscribers in %s: %w", d.Domain, err)
			}
			for _, sub := range subs {
				i, ok := byID[sub.InstanceID]
				if !ok {
					return fmt.Errorf("prefill: domain %s: subscriber instance %d is not one of the load test's instances", d.Domain, sub.InstanceID)
				}
				d.recipients = append(d.recipients, sub.InstanceID)
				d.Subscribers = append(d.Subscribers, i)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(doms) == 0 {
		return nil, errors.New("prefill: no domain has a practitioner portal to send the messages")
	}
	return doms, nil
}

// genPrefillRow renders message n of domain di with the tool's message
// generator — as --backlog posts it, plus the version the server would have
// issued in the self link and MessageHeader.data — then does what the
// server does with a posted body: parse it and store its own encoding, the
// Patient's encoding and content digest, and the digest of the request.
func genPrefillRow(tag string, doms []*prefillDomain, di, n int, versionAt, at time.Time, due bool) (prefillRow, error) {
	d := doms[di]
	id := prefillID(tag, di, n)
	url := prefillPatientURL(d.base, n)
	v := koppeltaal.FormatVersion(versionAt)
	m := &message{domain: d.Domain, event: EventPatient, identifier: id, feedID: "urn:uuid:" + uuid.NewString(),
		mhURL: d.base + "MessageHeader/" + id, source: d.source, endpoint: d.base, patient: url}
	res := patientResource(n, 1)
	f := dstu1.FormatJSON
	if d.format == "xml" {
		f = dstu1.FormatXML
	}
	// The message as stored: the version the server issues filled in. (The
	// Patient's digest does not depend on its self link: it is the same as for
	// the request, which a sender posts without a version.)
	m.focal = entry{url: url, version: v, res: res}
	stored, err := dstu1.ParseBundle(m.render(d.format, at), f)
	if err != nil {
		return prefillRow{}, fmt.Errorf("parse generated message %s: %w", id, err)
	}
	if len(stored.Entries) != 2 || stored.Entries[1].Resource == nil {
		return prefillRow{}, fmt.Errorf("generated message %s: want a MessageHeader and a Patient entry, got %d entries", id, len(stored.Entries))
	}
	hash := koppeltaal.ContentHash(stored.Entries[1].Resource)
	return prefillRow{dom: di, n: n, id: id, feedID: m.feedID, patient: url, version: v, at: at.UnixMicro(), due: due,
		body: stored.Encode(f), contentHash: hash,
		requestHash: koppeltaal.RequestHash(EventPatient, []string{url}, []koppeltaal.HashedResource{{URL: url, ContentHash: hash}})}, nil
}

// writePrefillRows writes one batch in the current transaction, as
// koppeltaal's POST does for each message.
func writePrefillRows(ctx context.Context, tx *store.Tx, doms []*prefillDomain, rows []prefillRow) error {
	rvs := make([]store.ResourceVersion, 0, len(rows))
	for _, r := range rows {
		d := doms[r.dom]
		bodyID, err := tx.InsertBody(ctx, d.format, r.body)
		if err != nil {
			return err
		}
		msgID, err := tx.InsertMessage(ctx, store.Message{DomainID: d.id, SenderInstanceID: d.senderID, Event: EventPatient,
			MessageIdentifier: r.id, FeedID: r.feedID, PatientRef: r.patient, FocalRef: r.patient, FocalVersion: r.version,
			Version: r.version, BodyID: bodyID, CreatedAt: r.at})
		if err != nil {
			return err
		}
		rvs = append(rvs, store.ResourceVersion{DomainID: d.id, URL: r.patient, ResourceType: "Patient",
			Version: r.version, ContentHash: r.contentHash, InstanceID: d.senderID, MessageID: msgID})
		status := store.StatusNew
		if r.due {
			status = store.StatusSuccess
		}
		if _, err := tx.QueueForAll(ctx, store.Entry{DomainID: d.id, MessageID: msgID, MessageIdentifier: r.id, Event: EventPatient,
			PatientRef: r.patient, FocalRef: r.patient, Status: status, StatusChangedAt: r.at, Version: r.version,
			CreatedAt: r.at}, d.recipients); err != nil {
			return err
		}
		if err := tx.InsertReceipt(ctx, store.Receipt{SenderInstanceID: d.senderID, MessageIdentifier: r.id, RequestHash: r.requestHash,
			MessageID: msgID, Data: []string{r.patient + "/_history/" + r.version}, CreatedAt: r.at}); err != nil {
			return err
		}
	}
	// Every message's own Patient (distinct URLs, each row with its message
	// id): one multi-row upsert for the batch instead of two statements each.
	return tx.PutResourceVersions(ctx, rvs)
}

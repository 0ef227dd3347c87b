package koppeltaal

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store"
)

// ClaimFilter narrows GetNextNewAndClaim (SPEC.md §3.2).
type ClaimFilter struct {
	Patient string
	Event   string
	// IncludeExpired also claims entries of expired messages (include-expired=yes, SPEC.md §10.2).
	IncludeExpired bool
}

// Claim atomically claims the caller's oldest New message and returns the
// whole message bundle with the server entry metadata and ProcessingStatus
// (SPEC.md §5.3). When nothing waits it returns an empty search bundle.
func (s *Service) Claim(ctx context.Context, c *Caller, f ClaimFilter, base string) (*dstu1.Bundle, error) {
	patient, perr := c.patientScope(f.Patient)
	if perr != nil {
		return nil, perr
	}
	filter := store.Filter{Patient: patient, Event: f.Event, IncludeExpired: f.IncludeExpired}
	if s.st.Dialect() == store.SQLite {
		// An empty mailbox is the common answer to a poll: no turn of SQLite's one
		// writer for it. (On PostgreSQL a claim that finds nothing writes nothing and
		// costs the round trips of the check: it needs no check first.)
		waiting, err := s.st.HasNew(ctx, c.ID, filter)
		if err != nil {
			return nil, fmt.Errorf("claim next for %s: %w", c.Username, err)
		}
		if !waiting {
			return s.searchBundle(base, "/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", nil, 0, 0, 0), nil
		}
	}
	now := s.now()
	var e store.Entry
	found := false
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		e, err = tx.ClaimNext(ctx, c.ID, filter, store.Claim{
			Now: now.UnixMicro(), Deadline: now.Add(s.cfg.ClaimTimeout).UnixMicro(),
			Version: FormatVersion(now), APIVersion: c.APIVersion,
		})
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		return s.audited(ctx, tx, c, audit.ActionClaim, e.PatientRef, entryObject(e.ID), e.Event)
	})
	if err != nil {
		return nil, fmt.Errorf("claim next for %s: %w", c.Username, err)
	}
	if !found {
		return s.searchBundle(base, "/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", nil, 0, 0, 0), nil
	}
	s.metrics.Claimed.Inc()
	// Rendered after the commit, outside the single SQLite writer. Should it
	// fail, the claim stands and times out like one whose reply got lost.
	out, err := s.renderMessage(ctx, nil, c, e, base)
	if err != nil {
		return nil, fmt.Errorf("claim next for %s: entry %d: %w", c.Username, e.ID, err)
	}
	return out, nil
}

// ParseEntryRef reads a MessageHeader id from "<n>", "[base]/MessageHeader/<n>"
// or "[base]/MessageHeader/<n>/_history/<v>"; version is "" when absent.
func ParseEntryRef(ref string) (id int64, version string, err error) {
	ref = strings.TrimSpace(ref)
	ref, version = dstu1.SplitHistory(ref)
	if i := strings.LastIndex(ref, "/MessageHeader/"); i >= 0 {
		ref = ref[i+len("/MessageHeader/"):]
	}
	id, err = strconv.ParseInt(ref, 10, 64)
	if err != nil || id <= 0 {
		return 0, "", fail(NotFound, "not-found", "MessageHeader '%s' does not exist.", ref)
	}
	return id, version, nil
}

// Read returns the whole message of one of the caller's queue entries without
// changing its status. A version that is not the entry's current one is 404.
// Entries of other instances are indistinguishable from missing ones.
func (s *Service) Read(ctx context.Context, c *Caller, id int64, version, base string) (*dstu1.Bundle, error) {
	var out *dstu1.Bundle
	var e store.Entry
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var err error
		e, err = tx.EntryForInstance(ctx, c.ID, id)
		if errors.Is(err, store.ErrNotFound) || (err == nil && c.Patient != "" && e.PatientRef != c.Patient) {
			return fail(NotFound, "not-found", "MessageHeader %d does not exist.", id)
		}
		if err != nil {
			return err
		}
		if version != "" && version != e.Version {
			return fail(NotFound, "not-found", "MessageHeader %d has no version %s (current: %s).", id, version, e.Version)
		}
		out, err = s.renderMessage(ctx, tx, c, e, base)
		return err
	})
	patient := e.PatientRef
	if err != nil {
		patient = "" // nothing was shown: not even whose message the id is
	}
	s.record(ctx, c, audit.ActionRead, patient, entryObject(id), e.Event, err)
	return out, asKoppeltaalErr(err, "read message", c)
}

// entryObject names a queue entry in the audit trail.
func entryObject(id int64) string { return "MessageHeader/" + strconv.FormatInt(id, 10) }

func asKoppeltaalErr(err error, what string, c *Caller) error {
	if err == nil {
		return nil
	}
	var ke *Error
	if errors.As(err, &ke) {
		return ke
	}
	return fmt.Errorf("%s for %s: %w", what, c.Username, err)
}

// SearchQuery is a MessageHeader search (SPEC.md §3.3).
type SearchQuery struct {
	Patient          string
	Event            string
	ProcessingStatus string
	Identifier       string // MessageHeader.identifier (1.1.0 "search by identifier")
	Count            int    // 0: default page size; clamped to MaxCount
	Page             int    // 1-based
	Summary          bool
	IncludeExpired   bool // include-expired=yes: entries of expired messages too (SPEC.md §10.2)
}

var searchableStatus = map[string]bool{
	store.StatusNew: true, store.StatusClaimed: true, store.StatusSuccess: true, store.StatusFailed: true,
	store.StatusReplacedByNewVersion: true, store.StatusMaximumRetriesExceeded: true,
}

// Search returns a page of the caller's MessageHeaders (oldest first), with
// self/first/previous/next/last links that keep the filters.
func (s *Service) Search(ctx context.Context, c *Caller, q SearchQuery, base string) (*dstu1.Bundle, error) {
	if q.ProcessingStatus != "" && !searchableStatus[q.ProcessingStatus] {
		return nil, fail(Invalid, "invalid", "ProcessingStatus '%s' is not one of New, Claimed, Success, Failed, ReplacedByNewVersion, MaximumRetriesExceeded.", q.ProcessingStatus)
	}
	if q.Count <= 0 {
		q.Count = s.cfg.DefaultCount
	}
	if q.Count > s.cfg.MaxCount {
		q.Count = s.cfg.MaxCount
	}
	if q.Page <= 0 {
		q.Page = 1
	}
	patient, perr := c.patientScope(q.Patient)
	if perr != nil {
		return nil, perr
	}
	q.Patient = patient
	var out *dstu1.Bundle
	err := s.st.View(ctx, func(tx *store.Tx) error {
		es, total, err := tx.Search(ctx, c.ID, store.Filter{Patient: q.Patient, Event: q.Event, Status: q.ProcessingStatus,
			Identifier: q.Identifier, IncludeExpired: q.IncludeExpired},
			(q.Page-1)*q.Count, q.Count)
		if err != nil {
			return err
		}
		params := url.Values{}
		params.Set("_summary", "true")
		if q.Patient != "" {
			params.Set("Patient", q.Patient)
		}
		if q.Event != "" {
			params.Set("event", q.Event)
		}
		if q.ProcessingStatus != "" {
			params.Set("ProcessingStatus", q.ProcessingStatus)
		}
		if q.Identifier != "" {
			params.Set("identifier", q.Identifier)
		}
		if q.IncludeExpired {
			params.Set("include-expired", "yes")
		}
		params.Set("_count", strconv.Itoa(q.Count))
		out = s.searchBundle(base, "/MessageHeader/_search?"+params.Encode(), nil, total, q.Page, q.Count)
		s.recordSearch(ctx, c, q, es)
		for _, e := range es {
			msg, err := s.renderHeader(ctx, tx, c, e, base)
			if err != nil {
				return err
			}
			out.Entries = append(out.Entries, msg.Entries[0]) // summary: the MessageHeader only
		}
		return nil
	})
	return out, asKoppeltaalErr(err, "search messages", c)
}

// recordSearch records a search: one record per patient whose messages it
// returned (with their entries), or one for the patient asked about when it found none.
func (s *Service) recordSearch(ctx context.Context, c *Caller, q SearchQuery, es []store.Entry) {
	if len(es) == 0 {
		s.record(ctx, c, audit.ActionSearch, q.Patient, "MessageHeader", "0 results", nil)
		return
	}
	byPatient := map[string][]string{}
	var order []string
	for _, e := range es {
		if _, ok := byPatient[e.PatientRef]; !ok {
			order = append(order, e.PatientRef)
		}
		byPatient[e.PatientRef] = append(byPatient[e.PatientRef], strconv.FormatInt(e.ID, 10))
	}
	for _, p := range order {
		s.record(ctx, c, audit.ActionSearch, p, "MessageHeader/"+strings.Join(byPatient[p], ","), "", nil)
	}
}

// searchBundle builds a search result feed with paging links (page is 1-based; 0 = no paging links).
func (s *Service) searchBundle(base, self string, entries []*dstu1.Entry, total, page, count int) *dstu1.Bundle {
	b := dstu1.NewBundle("urn:uuid:" + uuid.NewString())
	b.Title = "Search on resources in collection 'MessageHeader'"
	b.Updated = s.instant(s.now())
	b.Authors = []dstu1.Person{{Name: "Koppelpoort"}}
	b.TotalResults, b.HasTotal = strconv.Itoa(total), true
	b.Entries = append([]*dstu1.Entry{}, entries...)
	b.SetLink("fhir-base", base)
	if page == 0 {
		b.SetLink("self", base+self)
		return b
	}
	link := func(p int) string { return base + self + "&page=" + strconv.Itoa(p) }
	last := (total + count - 1) / count
	if last < 1 {
		last = 1
	}
	b.SetLink("self", link(page))
	b.SetLink("first", link(1))
	if page > 1 {
		b.SetLink("previous", link(page-1))
	}
	if page < last {
		b.SetLink("next", link(page+1))
	}
	b.SetLink("last", link(last))
	return b
}

// renderMessage loads the stored message of entry e (through tx, or a read
// transaction of its own when tx is nil) and adds what the server
// adds for a recipient (SPEC.md §4.3): entry metadata, ProcessingStatus,
// IsExpired, and for 1.3.3 recipients only the focal version.
func (s *Service) renderMessage(ctx context.Context, tx *store.Tx, c *Caller, e store.Entry, base string) (*dstu1.Bundle, error) {
	m, b, err := s.load(ctx, tx, c, e, base, false)
	if err != nil {
		return nil, err
	}
	return s.personalise(c, e, m, b, base), nil
}

// load is loadMessage, or for an expired message the MessageHeader rebuilt
// from its row (also when the body went after e was read).
func (s *Service) load(ctx context.Context, tx *store.Tx, c *Caller, e store.Entry, base string, headOnly bool) (store.Message, *dstu1.Bundle, error) {
	if !e.IsExpired {
		m, b, err := s.loadMessage(ctx, tx, e, c.APIVersion == APIVersion133, headOnly)
		if !errors.Is(err, store.ErrNotFound) {
			return m, b, err
		}
	}
	var m store.Message
	read := func(tx *store.Tx) error {
		var err error
		m, err = tx.MessageByID(ctx, e.MessageID)
		return err
	}
	var err error
	if tx != nil {
		err = read(tx)
	} else {
		err = s.st.View(ctx, read)
	}
	if err != nil {
		return m, nil, err
	}
	if !m.IsExpired || !isMessageOf(m, e) {
		return m, nil, fmt.Errorf("queue entry %d: message %d has no body and is not expired", e.ID, m.ID)
	}
	return m, s.expiredMessage(m, c.DomainName, base), nil
}

// renderHeader is renderMessage for a summary: only the MessageHeader entry
// is needed, so a message that is not cached is not put in the cache either
// (searches page through old messages no one is about to claim).
func (s *Service) renderHeader(ctx context.Context, tx *store.Tx, c *Caller, e store.Entry, base string) (*dstu1.Bundle, error) {
	m, b, err := s.load(ctx, tx, c, e, base, true)
	if err != nil {
		return nil, err
	}
	return s.personalise(c, e, m, b, base), nil
}

// personalise sets the per-recipient fields on b, a private copy of message m.
func (s *Service) personalise(c *Caller, e store.Entry, m store.Message, b *dstu1.Bundle, base string) *dstu1.Bundle {
	changed := s.instant(time.UnixMicro(e.StatusChangedAt))
	head := b.Entries[0]
	head.SetTitle(fmt.Sprintf("MessageHeader with IID=%d", e.ID))
	head.SetID(fmt.Sprintf("%s/MessageHeader/%d", base, e.ID))
	head.SetUpdated(changed)
	head.SetSelfLink(fmt.Sprintf("%s/MessageHeader/%d/_history/%s", base, e.ID, e.Version))
	mh := b.MessageHeader()
	mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: e.Status, LastChanged: changed, Exception: e.Exception})
	mh.SetIsExpired(m.IsExpired || e.IsExpired)
	b.Updated = s.instant(s.now())
	return b
}

// loadMessage returns the stored message of queue entry e and a copy of its
// bundle that the caller may change in the bundle fields and the first
// (MessageHeader) entry only; with stripped, non-focal versions are removed
// (1.3.3 recipients). Parsed bundles come from s.msgs when possible (see
// msgCache). A nil tx reads a cache miss in a read transaction of its own (the
// message must be committed). With headOnly, a cache miss returns the bundle
// with its MessageHeader entry only and keeps that in s.heads, not in s.msgs.
func (s *Service) loadMessage(ctx context.Context, tx *store.Tx, e store.Entry, stripped, headOnly bool) (store.Message, *dstu1.Bundle, error) {
	id := e.MessageID
	k := msgKey{messageID: id, stripped: stripped}
	epoch := s.st.Epoch()
	if m, b, ok := s.msgs.get(k, e, epoch); ok {
		return m, b, nil
	}
	if headOnly {
		if m, b, ok := s.heads.get(k, e, epoch); ok {
			return m, b, nil
		}
	}
	var m store.Message
	var format string
	var body []byte
	read := func(tx *store.Tx) error {
		var err error
		if m, err = tx.MessageByID(ctx, id); err != nil {
			return err
		}
		if m.BodyID == 0 {
			return fmt.Errorf("message %d has no body: %w", id, store.ErrNotFound)
		}
		format, body, err = tx.Body(ctx, m.BodyID)
		return err
	}
	var err error
	if tx != nil {
		err = read(tx)
	} else {
		m, format, body, err = s.st.MessageWithBody(ctx, id)
	}
	if err != nil {
		return m, nil, err
	}
	if !isMessageOf(m, e) {
		// The queue row and the message row disagree: they cannot both be from one database.
		return m, nil, fmt.Errorf("queue entry %d does not match its message %d (%s %s %s created %d, entry %s %s %s created %d)",
			e.ID, m.ID, m.MessageIdentifier, m.Event, m.FocalRef, m.CreatedAt, e.MessageIdentifier, e.Event, e.FocalRef, e.CreatedAt)
	}
	// Checked when it was posted: a stricter value check of a newer version must not lock it away.
	b, err := dstu1.Limits{MaxBytes: 4 * s.cfg.MaxBodyBytes, SkipValueChecks: true}.ParseBundle(body, formatFromName(format))
	if err != nil {
		return m, nil, fmt.Errorf("stored message %d does not parse: %w", m.ID, err)
	}
	if b.MessageHeader() == nil {
		return m, nil, fmt.Errorf("stored message %d has no MessageHeader first", m.ID)
	}
	if stripped {
		b.StripNonFocalVersions()
	}
	if headOnly {
		b.Entries = b.Entries[:1]
		s.heads.put(k, m, headForm(b), headCacheSize, epoch)
		return m, b, nil
	}
	if !s.msgs.fits(len(body)) {
		return m, b, nil
	}
	cached, size := cacheForm(b, len(body))
	s.msgs.put(k, m, cached, size, epoch)
	return m, headCopy(cached), nil
}

// AckResult is the outcome of an accepted processing-status update.
type AckResult struct {
	Header   *dstu1.Resource // the MessageHeader as it is now
	Location string          // its new versioned URL
	Status   string
}

// Acknowledge applies a client's PUT of a MessageHeader (SPEC.md §3.5, rules of §5.4):
// only the owning instance, only Success, Failed (with exception) or New, only
// from Claimed (or New, for a claim the sweeper already returned). A versioned
// URL must name the entry's current version. Repeating the same Success or
// Failed is accepted and changes nothing.
func (s *Service) Acknowledge(ctx context.Context, c *Caller, id int64, version string, body []byte, f Format, base string) (*AckResult, error) {
	ps, err := s.readStatusUpdate(body, f)
	if err != nil {
		s.metrics.Rejected.WithLabelValues("acknowledge", string(err.Kind)).Inc()
		return nil, err
	}
	return s.acknowledge(ctx, c, id, version, ps, base)
}

// acknowledge applies a checked status update (see Acknowledge).
func (s *Service) acknowledge(ctx context.Context, c *Caller, id int64, version string, ps dstu1.ProcessingStatus, base string) (*AckResult, error) {
	now := s.now()
	var acked store.Entry
	var retired *store.Message // the message whose body this acknowledgement removed
	txErr := s.st.Update(ctx, func(tx *store.Tx) error {
		acked, retired = store.Entry{}, nil
		// A POST may replace the entry (ReplacedByNewVersion) between reading it and
		// the conditional update; on PostgreSQL that happens concurrently. Then read
		// it again and answer as if the acknowledgement had come after the POST.
		for attempt := 0; ; attempt++ {
			e, repeat, err := s.checkAck(ctx, tx, c, id, version, ps, base)
			if err != nil {
				return err
			}
			if repeat {
				acked = e // idempotent repeat (a client retrying after a lost reply)
				return nil
			}
			to := ps.Status
			if to == store.StatusNew && e.RetryCount >= s.cfg.MaxRetries {
				to = store.StatusMaximumRetriesExceeded // a New after the last allowed claim ends the retries
			}
			ver := FormatVersion(now)
			ok, err := tx.SetStatus(ctx, e.ID, store.StatusChange{From: e.Status, To: to, Exception: ps.Exception,
				Now: now.UnixMicro(), Version: ver})
			if err != nil {
				return err
			}
			if !ok {
				if attempt == 0 {
					continue
				}
				return fail(Conflict, "conflict", "MessageHeader %d changed concurrently; read it again.", id)
			}
			if err := s.audited(ctx, tx, c, audit.ActionAck, e.PatientRef, entryObject(e.ID), to); err != nil {
				return err
			}
			e.Status, e.Exception, e.StatusChangedAt, e.Version = to, ps.Exception, now.UnixMicro(), ver
			if to == store.StatusSuccess {
				if retired, err = s.retireIfRetrieved(ctx, tx, e.MessageID); err != nil {
					return err
				}
				e.IsExpired = retired != nil
			}
			acked = e
			return nil
		}
	})
	if txErr != nil {
		var ke *Error
		if errors.As(txErr, &ke) {
			s.metrics.Rejected.WithLabelValues("acknowledge", string(ke.Kind)).Inc()
		}
		return nil, asKoppeltaalErr(txErr, "acknowledge", c)
	}
	s.metrics.Acked.WithLabelValues(acked.Status).Inc()
	if retired != nil {
		s.msgs.drop(acked.MessageID)
		s.heads.drop(acked.MessageID)
		b := s.personalise(c, acked, *retired, s.expiredMessage(*retired, c.DomainName, base), base)
		return &AckResult{Header: b.Entries[0].Resource, Location: b.Entries[0].SelfLink(), Status: acked.Status}, nil
	}
	// Rendered after the commit, outside the single SQLite writer. Should it
	// fail, the status change stands; repeating the PUT is accepted.
	b, rerr := s.renderHeader(ctx, nil, c, acked, base)
	if rerr != nil {
		return nil, asKoppeltaalErr(rerr, "acknowledge", c)
	}
	return &AckResult{Header: b.Entries[0].Resource, Location: b.Entries[0].SelfLink(), Status: acked.Status}, nil
}

// checkAck reads entry id of the caller and checks that it may take status
// ps: the entry's version when the client named one, and the allowed
// transitions. repeat is true when the entry already has status ps (Success,
// Failed or New): an idempotent repeat that changes nothing. An identical
// repeat (Failed: with the same exception) is accepted whatever version the
// link names: it is the retry of a PUT whose reply was lost, and that PUT
// changed the version (issue 15).
func (s *Service) checkAck(ctx context.Context, tx *store.Tx, c *Caller, id int64, version string, ps dstu1.ProcessingStatus, base string) (e store.Entry, repeat bool, err error) {
	to := ps.Status
	e, err = tx.EntryForInstance(ctx, c.ID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Patient != "" && e.PatientRef != c.Patient) {
		return e, false, fail(NotFound, "not-found", "MessageHeader %d does not exist.", id)
	}
	if err != nil {
		return e, false, err
	}
	repeat = e.Status == to && (to == store.StatusSuccess || to == store.StatusFailed || to == store.StatusNew)
	if repeat && (to != store.StatusFailed || e.Exception == ps.Exception) {
		return e, true, nil
	}
	if version != "" && version != e.Version {
		// issue[0] is the exact text clients compare; the current state goes in a second issue.
		return e, false, &Error{Kind: Conflict, Issues: []Issue{
			{Severity: "error", Code: "conflict", Details: TextVersionNotCorrect, Resource: fmt.Sprintf("%s/MessageHeader/%d", base, id)},
			{Severity: "information", Code: "informational",
				Details: "The message is now at version " + e.Version + " with ProcessingStatus " + e.Status + "."}}}
	}
	if !repeat && e.Status != store.StatusClaimed && e.Status != store.StatusNew {
		return e, false, fail(Conflict, "conflict", "ProcessingStatus cannot change from %s to %s.", e.Status, to)
	}
	return e, repeat, nil
}

// readStatusUpdate extracts the requested ProcessingStatus from a PUT body: a
// MessageHeader resource, or (tolerated) a message bundle whose first entry is one.
func (s *Service) readStatusUpdate(body []byte, f Format) (dstu1.ProcessingStatus, *Error) {
	lim := dstu1.Limits{MaxBytes: s.cfg.MaxBodyBytes}
	var mh *dstu1.MessageHeader
	r, err := lim.ParseResource(body, f)
	if err == nil {
		mh = dstu1.AsMessageHeader(r)
	} else if b, berr := lim.ParseBundle(body, f); berr == nil {
		mh = b.MessageHeader()
	} else {
		return dstu1.ProcessingStatus{}, parseFailure("The MessageHeader", err)
	}
	if mh == nil {
		return dstu1.ProcessingStatus{}, fail(Invalid, "structure", "The body of a PUT on MessageHeader must be a MessageHeader.")
	}
	ps, ok := mh.ProcessingStatus()
	if !ok || ps.Status == "" {
		return ps, fail(Invalid, "required", "The MessageHeader has no %s extension with a ProcessingStatusStatus.", dstu1.ExtProcessingStatus)
	}
	switch ps.Status {
	case store.StatusSuccess, store.StatusNew:
		ps.Exception = "" // an exception only means something with Failed
	case store.StatusFailed:
		if strings.TrimSpace(ps.Exception) == "" {
			return ps, fail(Invalid, "required", "ProcessingStatus Failed requires a ProcessingStatusException that says what went wrong.")
		}
	default:
		return ps, fail(Invalid, "business-rule", "ProcessingStatus '%s' cannot be set by a client; use Success, Failed or New.", ps.Status)
	}
	return ps, nil
}

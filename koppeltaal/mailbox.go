package koppeltaal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/buildinfo"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/store"
	"go.opentelemetry.io/otel/attribute"
)

// Error texts clients look for (CLIENTS.md, SPEC.md §3.13). Do not reword: clients compare
// issue[0].details as an exact string, and the stale-version text has no final period (CLIENTS.md),
// although the documents print one.
const (
	TextVersionNotCorrect     = "The specified resource version is not correct"
	TextFocalWithoutVersion   = "No version specified for the focal resource, message is rejected."
	textUnsupportedResourceFn = "The resource type '%s' is not supported."
)

// TextValidatedOnly answers a valid message with the ValidateOnly tag (our wording: the reply is unspecified).
const TextValidatedOnly = "The message is valid. It was not processed: it carries the ValidateOnly tag."

// PostResult is the outcome of an accepted POST /Mailbox.
type PostResult struct {
	Response  *dstu1.Bundle // the response message (SPEC.md §4.8)
	MessageID int64
	Version   string   // version issued in this message
	Entries   []int64  // queue entries created (one per subscribed instance)
	Warnings  []string // accepted deviations (e.g. 1.3.5 sender without versions)
	// Duplicate is true when the request repeated an accepted POST (same sender, MessageHeader.identifier and
	// content — see messageHash): nothing was stored and Response repeats the original data references.
	Duplicate bool
	// ValidatedOnly is true when the message carried the ValidateOnly tag and passed every check a POST
	// makes (versions included, against the current state): nothing was stored or routed, Response is nil.
	ValidatedOnly bool
}

// errValidatedOnly ends the POST transaction of a ValidateOnly message after its checks, so that
// nothing it would write is kept.
var errValidatedOnly = errors.New("koppeltaal: validate only")

// errLockAgain ends a PostgreSQL POST transaction whose shared lock on a
// resource it meant to leave unchanged came too late: the resource changed
// first. The POST runs again with exclusive locks.
var errLockAgain = errors.New("koppeltaal: lock again")

// messageHash identifies "the same message" for retry detection (see RequestHash).
func messageHash(event string, data []string, ents []resourceEntry) string {
	rs := make([]HashedResource, len(ents))
	for i, e := range ents {
		rs[i] = HashedResource{URL: e.url, Version: e.version, ContentHash: e.hash}
	}
	return RequestHash(event, data, rs)
}

// HashedResource is one versioned entry of a message as RequestHash sees it:
// its URL, the version the sender based it on ("" for none) and ContentHash.
type HashedResource struct{ URL, Version, ContentHash string }

// RequestHash is the digest the server stores with an accepted POST to know a
// retry of it (post_receipts): event, data references and every versioned
// entry's URL, version and content. Envelope details a sender may regenerate
// when it retries (feed id and updated, MessageHeader timestamp) do not count.
// Exported for tools that write messages straight into a store (the load
// tool's prefill), so that what they write matches what a POST stores.
func RequestHash(event string, data []string, resources []HashedResource) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n", event, data)
	for _, r := range resources {
		fmt.Fprintf(h, "%s\x00%s\x00%s\n", r.URL, r.Version, r.ContentHash)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// resourceEntry is one non-MessageHeader entry with a self link: a resource the server versions.
type resourceEntry struct {
	entry   *dstu1.Entry
	url     string // self link without /_history
	version string // version the sender based its change on ("" = none)
	typ     string
	hash    string
	focal   bool
	slot    string // placeholder for its version in the pre-encoded body (see versionSlots)
}

// A POST /Mailbox runs through the mailbox port in three steps, which the HTTP handler (Post) and the
// gateway's local Koppeltaal output (in its routing transaction) both take:
//   - Check: parse and check the message; no database, nothing written (refusals are *Error);
//   - Accept: on a given store transaction — locks, retry lookup, version checks against the current
//     state, new versions, the stored body and message, and fan-out to every subscriber's queue; the
//     caller commits (the 200 means the queue rows exist). Everything the POST writes (and what is
//     written with it, such as an audit row) belongs in this step, on its transaction;
//   - Reply: the response message with the issued versions.

// Submission is a message that passed Check: parsed, checked, and its body encoded with a placeholder
// where each version goes (encoding happens before the transaction: on SQLite every request waits for
// the one writer).
type Submission struct {
	caller       *Caller
	bundle       *dstu1.Bundle
	header       *dstu1.MessageHeader
	ents         []resourceEntry
	focal        *resourceEntry
	focalURL     string
	patient      string
	event        string
	data         []string
	requestHash  string
	validateOnly bool
	// current: the sender bases its update on whatever version is current (a local sender that reads
	// the store's versions instead of mirroring them); version checks do not apply.
	current  bool
	format   Format
	slots    *versionSlots
	template []byte
	size     int
}

// Event is the message's event code.
func (sub *Submission) Event() string { return sub.event }

// Identifier is the message's MessageHeader.identifier.
func (sub *Submission) Identifier() string { return sub.header.Identifier() }

// BasedOnCurrentVersions makes the submission an update of each resource's current version, whatever
// versions it carries: for senders in this process (the gateway's local Koppeltaal output), which read
// the store instead of keeping a copy of the versions and so cannot be stale. Accept reads the current
// versions under its locks, in the same transaction as its writes.
func (sub *Submission) BasedOnCurrentVersions() { sub.current = true }

// Accepted is what Accept stored.
type Accepted struct {
	MessageID int64
	Version   string   // version issued in this message
	Entries   []int64  // queue entries created (one per subscribed instance)
	Warnings  []string // accepted deviations (e.g. 1.3.5 sender without versions)
	// Data are the reply's data references: the focal versioned URL first (SPEC.md §4.8).
	Data []string
	// Duplicate: the message repeats an accepted one (same sender, identifier and content — see
	// messageHash); nothing was stored and Data are the original reply's.
	Duplicate bool
	// ValidatedOnly: the message carried the ValidateOnly tag and passed every check; nothing was stored.
	ValidatedOnly bool
	stored        store.Message
}

// Post validates a message bundle, then in one transaction versions its
// resources, stores it and queues it for every subscribed instance of the
// sender's domain. Every check happens before the first write; a refused
// message changes nothing and comes back as *Error.
func (s *Service) Post(ctx context.Context, c *Caller, body []byte, f Format, base string) (*PostResult, error) {
	res, err := s.post(ctx, c, body, f, base)
	if err != nil {
		var ke *Error
		if errors.As(err, &ke) {
			s.metrics.Rejected.WithLabelValues("mailbox", string(ke.Kind)).Inc()
		}
		s.record(ctx, c, audit.ActionPost, c.Patient, "", "refused", err)
		return nil, err
	}
	return res, nil
}

func (s *Service) post(ctx context.Context, c *Caller, body []byte, f Format, base string) (_ *PostResult, err error) {
	var b *dstu1.Bundle
	defer func() {
		if err != nil {
			s.logRejected(c, b, err)
		}
	}()
	_, span := tracing.Start(ctx, "koppeltaal.parse", attribute.String("koppeltaal.format", formatName(f)), attribute.Int("koppeltaal.body_bytes", len(body)))
	b, err = s.parse(body, f)
	tracing.End(span, err)
	if err != nil {
		return nil, err
	}
	_, span = tracing.Start(ctx, "koppeltaal.check", attribute.String("koppeltaal.sender", c.Username))
	sub, err := s.CheckBundle(c, b, f, len(body))
	if err == nil {
		span.SetAttributes(attribute.String("koppeltaal.event", sub.event), attribute.Int("koppeltaal.resources", len(sub.ents)))
	}
	tracing.End(span, err)
	if err != nil {
		return nil, err
	}
	epoch := s.st.Epoch() // before the transaction: what it writes belongs to this epoch or a later one
	// The first attempt may lock the resources the message carries unchanged in
	// shared mode (PostgreSQL; only non-focal ones: the focal one always gets a
	// new version); if one of them changed before its lock was taken, the second
	// attempt locks everything exclusively.
	shareUnchanged := s.st.Dialect() == store.Postgres && slices.ContainsFunc(sub.ents, func(e resourceEntry) bool { return !e.focal })
	var acc *Accepted
	txCtx, txSpan := tracing.Start(ctx, "store.transaction", attribute.String("koppelpoort.store.dialect", string(s.st.Dialect())))
	for {
		err = s.st.Update(txCtx, func(tx *store.Tx) error {
			var err error
			acc, err = s.accept(txCtx, tx, sub, shareUnchanged)
			return err
		})
		if !errors.Is(err, errLockAgain) || !shareUnchanged {
			break
		}
		shareUnchanged = false
		s.metrics.PostLockRetries.Inc()
		s.log.Debug("koppeltaal: a resource carried unchanged was changed concurrently; locking all exclusively",
			"sender", c.Username, "identifier", sub.Identifier())
	}
	if errors.Is(err, errValidatedOnly) {
		tracing.End(txSpan, nil)
	} else {
		tracing.End(txSpan, err)
	}
	if errors.Is(err, errValidatedOnly) {
		s.log.Debug("koppeltaal: ValidateOnly message checked, not processed", "sender", c.Username,
			"identifier", sub.Identifier(), "warnings", len(acc.Warnings))
		return &PostResult{ValidatedOnly: true, Warnings: acc.Warnings}, nil
	}
	if err != nil {
		var ke *Error
		if errors.As(err, &ke) {
			return nil, ke
		}
		return nil, fmt.Errorf("post message %s from %s: %w", sub.Identifier(), c.Username, err)
	}
	s.accepted(sub, acc)
	res := &PostResult{Response: s.Reply(sub, acc, base), MessageID: acc.MessageID, Version: acc.Version,
		Entries: acc.Entries, Warnings: acc.Warnings, Duplicate: acc.Duplicate}
	if acc.Duplicate || len(acc.Entries) == 0 || !s.msgs.fits(len(body)) {
		return res, nil
	}
	// The recipients claim and acknowledge this message next: cache the tree just stored
	// (committed now, and not touched again here) so that they need not read and parse it.
	cached, size := cacheForm(sub.bundle, len(body))
	s.msgs.put(msgKey{messageID: acc.stored.ID}, acc.stored, cached, size, epoch)
	return res, nil
}

// Check parses body and makes every check of a POST that needs no database (see CheckBundle). A refusal
// is an *Error.
func (s *Service) Check(c *Caller, body []byte, f Format) (*Submission, error) {
	b, err := s.parse(body, f)
	if err != nil {
		return nil, err
	}
	return s.CheckBundle(c, b, f, len(body))
}

// parse reads a posted message bundle within the body limit.
func (s *Service) parse(body []byte, f Format) (*dstu1.Bundle, error) {
	b, err := dstu1.Limits{MaxBytes: s.cfg.MaxBodyBytes, MaxEntries: s.cfg.MaxEntries}.ParseBundle(body, f)
	if err != nil {
		return nil, parseFailure("The message", err)
	}
	return b, nil
}

// CheckBundle checks a parsed message bundle from c (size: about how large it is encoded in f) and
// encodes the body to store. b belongs to the Submission from then on.
func (s *Service) CheckBundle(c *Caller, b *dstu1.Bundle, f Format, size int) (*Submission, error) {
	mh, ents, err := s.checkMessage(c, b)
	if err != nil {
		return nil, err
	}
	event := mh.EventCode()
	data := mh.Data()
	focalURL, focalDataVersion := dstu1.SplitHistory(data[0])
	var focal *resourceEntry
	for i := range ents {
		if ents[i].url == focalURL {
			ents[i].focal = true
			focal = &ents[i]
		}
	}
	if focal != nil && focalDataVersion != "" && focal.version != "" && focal.version != focalDataVersion {
		return nil, &Error{Kind: Conflict, Issues: []Issue{{Severity: "error", Code: "conflict",
			Details: TextVersionNotCorrect, Resource: focalURL}}}
	}
	if focal != nil && focal.version == "" {
		focal.version = focalDataVersion
	}
	patient := mh.Patient()
	if patient == "" && event == EventCreateOrUpdatePatient {
		patient = focalURL
	}
	patient, _ = dstu1.SplitHistory(patient)
	if c.Patient != "" && patient != c.Patient {
		// A Bearer token acts for its launch patient only (SPEC.md §8.5).
		return nil, fail(Forbidden, "security", "The Bearer token only allows messages about its launch patient, not about %q.", patient)
	}

	sub := &Submission{caller: c, bundle: b, header: mh, ents: ents, focal: focal, focalURL: focalURL, patient: patient,
		event: event, data: data, requestHash: messageHash(event, data, ents), validateOnly: b.ValidateOnly(), format: f, size: size}
	// Encode outside the transaction (on SQLite, the one writer every request
	// waits for): the body with a placeholder where each version goes, filled
	// in once the versions are known. The body is also where each resource
	// version's content lives (resource_versions points at the message).
	slots := newVersionSlots()
	sub.slots = slots
	for i := range ents {
		ents[i].slot = slots.add()
		ents[i].entry.SetSelfLink(ents[i].url + "/_history/" + ents[i].slot)
	}
	if focal != nil {
		if err := mh.SetData(0, focalURL+"/_history/"+focal.slot); err != nil {
			return nil, err
		}
	}
	sub.template = encodeBundleSized(b, f, size)
	return sub, nil
}

// Accept stores a checked message on tx (see Submission): every statement on tx, none committed. A
// refusal (version conflict) is an *Error and wrote nothing; a ValidateOnly message gives its result
// with errValidatedOnly, so the caller abandons tx. Exclusive locks only; see post for the PostgreSQL
// variant with shared ones.
func (s *Service) Accept(ctx context.Context, tx *store.Tx, sub *Submission) (*Accepted, error) {
	acc, err := s.accept(ctx, tx, sub, false)
	if err == nil {
		s.accepted(sub, acc)
	}
	return acc, err
}

func (s *Service) accept(ctx context.Context, tx *store.Tx, sub *Submission, shareUnchanged bool) (*Accepted, error) {
	c, mh, b, ents, focal, focalURL := sub.caller, sub.header, sub.bundle, sub.ents, sub.focal, sub.focalURL
	event, data, patient, requestHash, validateOnly := sub.event, sub.data, sub.patient, sub.requestHash, sub.validateOnly
	f, slots, template, now := sub.format, sub.slots, sub.template, s.now()
	urls := make([]string, len(ents))
	for i, e := range ents {
		urls[i] = e.url
	}
	// Decision 7: the domain lock on SQLite; on PostgreSQL locks on this message's
	// resources (and focal reference: replacement of older entries) and on its
	// identifier, so posts about other resources run in parallel — shared locks
	// for the resources it carries unchanged. A ValidateOnly message is checked
	// as a new one (no receipt lookup).
	l := store.PostLock{DomainID: c.DomainID, SenderID: c.ID, Identifier: mh.Identifier(),
		Exclusive: append(slices.Clip(urls), focalURL), Read: urls}
	if !validateOnly {
		l.RequestHash = requestHash
	}
	if shareUnchanged {
		l.Exclusive, l.Unchanged = []string{focalURL}, map[string]string{}
		for _, e := range ents {
			if e.focal {
				l.Exclusive = append(l.Exclusive, e.url)
			} else {
				l.Unchanged[e.url] = e.hash
			}
		}
	}
	locked, err := tx.LockForPost(ctx, l)
	if err != nil {
		return nil, err
	}
	// A retry of a POST whose reply the sender lost: answer as the first time
	// (checked under the lock, before the version checks it would now fail).
	if locked.HasReceipt {
		return &Accepted{MessageID: locked.Receipt.MessageID, Duplicate: true, Data: locked.Receipt.Data}, nil
	}
	known, last := locked.Resources, locked.LastVersion
	for _, u := range locked.Shared {
		if cur, ok := known[u]; !ok || cur.ContentHash != l.Unchanged[u] {
			return nil, errLockAgain // changed between the lock statement's check and its shared lock
		}
	}
	for _, r := range known {
		// Strictly above each resource's current version (also where no domain
		// version is kept, PostgreSQL), whatever the clock says.
		last = max(last, r.CurrentVersion)
	}
	// Version checks (SPEC.md §7.3 B, CLIENTS.md): all before any write.
	var conflicts []Issue
	var warnings []string
	for _, e := range ents {
		cur, exists := known[e.url]
		checked := (e.focal || c.APIVersion == APIVersion135) && !sub.current
		switch {
		case !checked:
			// 1.3.3 senders: only the focal resource is version-checked.
		case e.version != "" && exists && e.version != cur.CurrentVersion:
			conflicts = append(conflicts, Issue{Severity: "error", Code: "conflict", Details: TextVersionNotCorrect, Resource: e.url})
		case e.version != "" && !exists:
			// A version this server never issued for a resource it does not know: the
			// sender's copy comes from another (the previous) Koppeltaal server. Refusing
			// would lock migrated clients out of their own resources; adopt it instead.
			warnings = append(warnings, fmt.Sprintf("resource %s sent with version %s that this server never issued; stored as new", e.url, e.version))
		case e.version == "" && exists && e.focal:
			conflicts = append(conflicts, Issue{Severity: "error", Code: "conflict", Details: TextFocalWithoutVersion, Resource: e.url})
		case e.version == "" && exists:
			warnings = append(warnings, fmt.Sprintf("resource %s sent without version; the server has %s", e.url, cur.CurrentVersion))
		}
	}
	if len(conflicts) > 0 {
		return nil, &Error{Kind: Conflict, Issues: conflicts}
	}
	if validateOnly {
		return &Accepted{ValidatedOnly: true, Warnings: warnings}, errValidatedOnly
	}
	// Storage loop: one new version for everything versioned in this message.
	v := NextVersion(now, last)
	if err := tx.PostVersionIssued(ctx, c.DomainID, v); err != nil {
		return nil, err
	}
	var issued []string // versioned URLs that got a new version, focal first
	finalVersion := map[string]string{}
	var puts []resourceEntry
	for _, e := range ents {
		cur, exists := known[e.url]
		if exists && !e.focal && cur.ContentHash == e.hash {
			finalVersion[e.url] = cur.CurrentVersion // unchanged: keeps its version (BV step 6)
			continue
		}
		finalVersion[e.url] = v
		puts = append(puts, e)
		if e.focal {
			issued = append([]string{e.url + "/_history/" + v}, issued...)
		} else {
			issued = append(issued, e.url+"/_history/"+v)
		}
	}
	// The stored (and forwarded) message carries the versions: self links and the focal data reference.
	for _, e := range ents {
		e.entry.SetSelfLink(e.url + "/_history/" + finalVersion[e.url])
	}
	focalVersion := ""
	if focal != nil {
		focalVersion = finalVersion[focalURL]
		if err := mh.SetData(0, focalURL+"/_history/"+focalVersion); err != nil {
			return nil, err
		}
	}
	filled := make(map[string]string, len(ents))
	for _, e := range ents {
		filled[e.slot] = finalVersion[e.url]
	}
	// Routing, synchronously in the same transaction: the 200 means every
	// subscriber's queue already holds the message.
	ctx, fanout := tracing.Start(ctx, "koppeltaal.fanout", attribute.String("koppeltaal.event", event))
	subs, err := tx.Subscribers(ctx, c.DomainID, event)
	if err != nil {
		tracing.End(fanout, err)
		return nil, err
	}
	recipients := make([]int64, len(subs))
	for i, sub := range subs {
		recipients[i] = sub.InstanceID
	}
	if c.APIVersion != APIVersion135 && len(issued) > 0 {
		// 1.3.3 senders get the focal version only (SPEC.md §4.8).
		issued = nil
		if focal != nil {
			issued = []string{focalURL + "/_history/" + focalVersion}
		}
	}
	if focal == nil {
		issued = append([]string{data[0]}, issued...)
	} else if len(issued) == 0 || !strings.HasPrefix(issued[0], focalURL+"/_history/") {
		issued = append([]string{focalURL + "/_history/" + focalVersion}, issued...)
	}
	stored := store.Message{
		DomainID: c.DomainID, SenderInstanceID: c.ID, Event: event, MessageIdentifier: mh.Identifier(),
		FeedID: b.ID, PatientRef: patient, FocalRef: focalURL, FocalVersion: focalVersion, Version: v,
		CreatedAt: now.UnixMicro(),
	}
	rvs := make([]store.ResourceVersion, len(puts))
	for i, e := range puts {
		rvs[i] = store.ResourceVersion{DomainID: c.DomainID, URL: e.url, ResourceType: e.typ, Version: v,
			ContentHash: e.hash, InstanceID: c.ID}
	}
	msgID, entries, err := tx.Accept(ctx, store.Accepted{Format: formatName(f), Body: slots.fill(template, filled),
		Message: stored, Versions: rvs, Recipients: recipients,
		Receipt: &store.Receipt{SenderInstanceID: c.ID, MessageIdentifier: mh.Identifier(), RequestHash: requestHash, Data: issued}})
	fanout.SetAttributes(attribute.Int("koppeltaal.recipients", len(recipients)))
	tracing.End(fanout, err)
	if err != nil {
		return nil, err
	}
	if err := s.audited(ctx, tx, c, audit.ActionPost, patient, fmt.Sprintf("Message/%d", msgID), event); err != nil {
		return nil, err
	}
	stored.ID = msgID
	return &Accepted{MessageID: msgID, Version: v, Entries: entries, Warnings: warnings, Data: issued, stored: stored}, nil
}

// accepted logs and counts an accepted message.
func (s *Service) accepted(sub *Submission, acc *Accepted) {
	c := sub.caller
	if len(acc.Warnings) > 0 {
		// Resource URLs name patients: details only at debug level.
		s.metrics.VersionWarnings.Add(float64(len(acc.Warnings)))
		s.vwarn.note(s.log, s.now(), c.Username, acc.MessageID, len(acc.Warnings))
		for _, w := range acc.Warnings {
			s.log.Debug("koppeltaal: version compatibility", "sender", c.Username, "message_id", acc.MessageID, "warning", w)
		}
	}
	if acc.Duplicate {
		s.log.Info("koppeltaal: repeated POST answered with the original reply", "sender", c.Username, "message_id", acc.MessageID)
		return
	}
	s.metrics.Posted.WithLabelValues(sub.event).Inc()
	s.metrics.Delivered.Add(float64(len(acc.Entries)))
	s.log.Debug("koppeltaal: message accepted", "sender", c.Username, "event", sub.event, "message_id", acc.MessageID,
		"version", acc.Version, "recipients", len(acc.Entries))
}

// Reply is the response message to an accepted submission (SPEC.md §4.8), for the FHIR base base.
func (s *Service) Reply(sub *Submission, acc *Accepted, base string) *dstu1.Bundle {
	return s.responseMessage(sub.caller, sub.header, acc.Data, base)
}

// logRejected logs a refused message with its sender, identifier, event and reason, so a 409 in the access
// log can be explained without the sender's help. Issue resources (URLs that name patients) are left out.
func (s *Service) logRejected(c *Caller, b *dstu1.Bundle, err error) {
	var ke *Error
	if !errors.As(err, &ke) {
		return // a server error: the HTTP layer logs it at ERROR
	}
	reasons := make([]string, len(ke.Issues))
	for i, is := range ke.Issues {
		reasons[i] = is.Details
	}
	attrs := []any{"sender", c.Username, "refusal", string(ke.Kind), "reason", strings.Join(reasons, "; ")}
	if b != nil {
		if mh := b.MessageHeader(); mh != nil {
			attrs = append(attrs, "message_identifier", mh.Identifier(), "event", mh.EventCode())
		}
	}
	s.log.Warn("koppeltaal: message rejected", attrs...)
}

// parseFailure is the refusal of a body that does not parse: 413 when it is too large; the documented text
// for a null in a JSON array (TO p20, clients may match it); otherwise 400 with the codec's error, which
// names the line, column, element path and what was expected, the path also as the issue's location.
func parseFailure(what string, err error) *Error {
	var loc string
	var se *dstu1.SyntaxError
	if errors.As(err, &se) {
		loc = se.Path
	}
	var e *Error
	switch {
	case errors.Is(err, dstu1.ErrTooLarge):
		return fail(TooLarge, "too-costly", "%v", err)
	case errors.Is(err, dstu1.ErrTooManyEntries):
		e = fail(TooLarge, "too-costly", "%v (koppeltaal.max_entries)", err)
	case errors.Is(err, dstu1.ErrNullInArray):
		e = fail(Invalid, "structure", "%s", dstu1.ErrNullInArray.Error())
	default:
		e = fail(Invalid, "structure", "%s cannot be parsed: %v", what, err)
	}
	e.Issues[0].Location = loc
	return e
}

// checkMessage does the structural checks of SPEC.md §3.1/§4 that need no database.
func (s *Service) checkMessage(c *Caller, b *dstu1.Bundle) (*dstu1.MessageHeader, []resourceEntry, error) {
	mh := b.MessageHeader()
	if mh == nil {
		return nil, nil, fail(Invalid, "structure", "The first entry of a message bundle must be a MessageHeader.")
	}
	for _, e := range b.Entries {
		if e.Resource == nil {
			return nil, nil, fail(Invalid, "structure", "A message bundle cannot hold deleted entries.")
		}
		if t := e.ResourceType(); !typeAllowed(mh.EventCode(), t) {
			return nil, nil, fail(Invalid, "not-supported", textUnsupportedResourceFn, t)
		}
	}
	if ds := b.Domains(); len(ds) > 1 {
		return nil, nil, fail(Invalid, "security",
			"The message has %d different domain tags (%s); a message belongs to exactly one domain.", len(ds), strings.Join(ds, ", "))
	}
	domain, ok := b.Domain()
	if !ok {
		return nil, nil, fail(Invalid, "security",
			"The message has no domain tag (category scheme %s, term %s<domain>).", dstu1.SchemeSecurity, dstu1.DomainTermPrefix)
	}
	if domain != c.DomainName {
		return nil, nil, fail(Forbidden, "security",
			"The domain '%s' of the message does not match the domain '%s' of application instance '%s'.", domain, c.DomainName, c.Username)
	}
	event := mh.EventCode()
	switch {
	case event == "":
		return nil, nil, fail(Invalid, "required", "MessageHeader.event.code is missing.")
	case event == EventCreateOrUpdateActivityDefinition:
		return nil, nil, fail(Invalid, "not-supported",
			"CreateOrUpdateActivityDefinition messages are sent by the server only; use the ActivityDefinition API (POST [base]/Other).")
	case !KnownEvent(event):
		return nil, nil, fail(Invalid, "not-supported", "The message event '%s' is not supported.", event)
	}
	if mh.Identifier() == "" {
		return nil, nil, fail(Invalid, "required", "MessageHeader.identifier is missing.")
	}
	if mh.Timestamp() == "" {
		return nil, nil, fail(Invalid, "required", "MessageHeader.timestamp is missing.")
	}
	if mh.Child("source") == nil {
		return nil, nil, fail(Invalid, "required", "MessageHeader.source is missing.")
	}
	completeSource(mh, c)
	if missing := mh.MissingRequired(); len(missing) > 0 {
		return nil, nil, fail(Invalid, "required", "The MessageHeader lacks %s, which DSTU1 requires.", strings.Join(missing, ", "))
	}
	data := mh.Data()
	if len(data) == 0 || data[0] == "" {
		return nil, nil, fail(Invalid, "required", "MessageHeader.data (the focal resource reference) is missing.")
	}
	if EventNeedsPatient(event) && mh.Patient() == "" {
		return nil, nil, fail(Invalid, "required",
			"MessageHeader extension %s is required for %s.", dstu1.ExtMessageHeaderPatient, event)
	}
	if err := checkFocalPatient(b, mh); err != nil {
		return nil, nil, err
	}
	var ents []resourceEntry
	seen := map[string]bool{}
	for i, e := range b.Entries {
		if i == 0 {
			continue
		}
		if e.Resource.Type() == "MessageHeader" {
			return nil, nil, fail(Invalid, "structure", "A message holds exactly one MessageHeader (entry %d is another).", i)
		}
		self := e.SelfLink()
		if self == "" {
			continue // not versioned, passed on as is (TO p20)
		}
		url, v := dstu1.SplitHistory(self)
		if seen[url] {
			return nil, nil, fail(Invalid, "structure", "Resource %s appears twice in the message.", url)
		}
		seen[url] = true
		ents = append(ents, resourceEntry{entry: e, url: url, version: v, typ: e.ResourceType(), hash: contentHash(e.Resource)})
	}
	return mh, ents, nil
}

// checkFocalPatient refuses a message whose MessageHeader#Patient names another patient than its focal
// resource does (issue 14 #15: it would be filed, searched and claimed under the extension's patient):
// the focal Patient of CreateOrUpdatePatient, CarePlan.patient, RelatedPerson.patient. Only a Patient in
// the extension is compared (TA lets a CarePlan message name a RelatedPerson there); a message without the
// extension, or whose focal resource names no patient, is not judged. References are compared without
// /_history/, a relative one resolved against the focal resource's base URL.
func checkFocalPatient(b *dstu1.Bundle, mh *dstu1.MessageHeader) error {
	ext, _ := dstu1.SplitHistory(mh.Patient())
	if ext == "" || resourceTypeOf(ext) != "Patient" {
		return nil
	}
	focalURL, _ := dstu1.SplitHistory(mh.Data()[0])
	var named string
	switch event := mh.EventCode(); event {
	case EventCreateOrUpdatePatient:
		named = focalURL
	case EventCreateOrUpdateCarePlan, EventCreateOrUpdateRelatedPerson:
		for _, e := range b.Entries[1:] {
			if self, _ := dstu1.SplitHistory(e.SelfLink()); self == focalURL && e.Resource != nil {
				named = resolveReference(focalURL, e.Resource.Str("patient", "reference"))
				break
			}
		}
	}
	switch {
	case named == "" || named == ext:
		return nil
	case named == focalURL:
		return fail(Invalid, "invalid", "The MessageHeader#Patient extension names %s, but the focal Patient of this %s message is %s.",
			ext, mh.EventCode(), named)
	}
	return fail(Invalid, "invalid",
		"The MessageHeader#Patient extension names %s, but the focal resource %s of this %s message is about patient %s.",
		ext, focalURL, mh.EventCode(), named)
}

// resourceTypeOf is the type segment of a resource URL ".../<Type>/<id>", or "".
func resourceTypeOf(url string) string {
	parts := strings.Split(strings.TrimSuffix(url, "/"), "/")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}

// resolveReference makes ref (absolute, or relative as "Patient/1") absolute against the base of the
// resource at from (".../CarePlan/7" → "..."), without /_history/; "" when ref is empty or cannot be resolved.
func resolveReference(from, ref string) string {
	ref, _ = dstu1.SplitHistory(strings.TrimSpace(ref))
	if ref == "" || strings.Contains(ref, "://") || strings.HasPrefix(ref, "urn:") {
		return ref
	}
	if strings.HasPrefix(ref, "#") || strings.HasPrefix(ref, "/") {
		return "" // a contained resource or a server-relative path: nothing to compare with
	}
	typ := resourceTypeOf(from)
	i := strings.LastIndex(from, "/"+typ+"/")
	if typ == "" || i < 0 {
		return ""
	}
	return from[:i] + "/" + ref
}

// ServerSource is MessageHeader.source of the replies the server writes (Mailbox replies; see
// InformationSource for its own CreateOrUpdateActivityDefinition messages), for the FHIR base URL base: all four fields filled —
// clients parse replies with the DSTU1 cardinalities (software and endpoint 1..1), and the old server's
// empty values broke them (CLIENTS.md). The product and its version come from internal/buildinfo.
func ServerSource(base string) dstu1.Source {
	return dstu1.Source{Name: "Koppeltaal", Software: buildinfo.Product, Version: buildinfo.Version(), Endpoint: base + "/Mailbox"}
}

// InformationSource is MessageHeader.source of the information messages the server sends on its own
// (CreateOrUpdateActivityDefinition), exactly as the old server wrote it (SPEC.md §3.7, the recorded
// example createorupdateactivitydefinition-message-edge.xml): software "Koppeltaal", version "v1.3.x",
// endpoint "not used". A module may tell server messages from application messages by these values.
var InformationSource = dstu1.Source{Software: "Koppeltaal", Version: "v1.3.x", Endpoint: "not used"}

// completeSource fills the elements DSTU1 requires in MessageHeader.source that a sender left out or empty
// (the Java test connector sends only an empty endpoint): software = the sending application, endpoint =
// "not used" (Koppeltaal does not use it; the old server wrote that in its own messages). Recipients parse
// the forwarded header with the DSTU1 cardinalities and would refuse the message otherwise.
func completeSource(mh *dstu1.MessageHeader, c *Caller) {
	src := mh.Child("source")
	filled := false
	fill := func(name, v string) {
		if cur := src.Child(name); cur == nil || (cur.Value == "" && len(cur.Children) == 0) {
			src.SetChild(dstu1.NewPrimitive(name, v))
			filled = true
		}
	}
	app := c.AppIdent
	if app == "" {
		app = c.Username
	}
	fill("software", app)
	fill("endpoint", "not used")
	if filled {
		mh.SortElements() // an added element goes last; XML needs schema order
	}
}

// responseMessage builds the reply to an accepted POST (SPEC.md §4.8, CLIENTS.md).
func (s *Service) responseMessage(c *Caller, req *dstu1.MessageHeader, data []string, base string) *dstu1.Bundle {
	id := "urn:uuid:" + uuid.NewString()
	b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), c.DomainName)
	ev := req.Event()
	mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{
		Identifier:         id,
		Timestamp:          s.instant(s.now()),
		Event:              ev,
		ResponseIdentifier: req.Identifier(),
		ResponseCode:       "ok",
		Source:             ServerSource(base),
		Data:               data,
	})
	b.AddEntry(mh.Resource, id, "")
	return b
}

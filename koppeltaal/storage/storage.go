// Package storage is the Koppeltaal Storage Service (SPEC.md §9): modules
// without a back end (browser games) keep state per patient as StorageItems
// (FHIR Other resources) or Binary resources under /FHIR/Koppeltaal. Items are
// kept in Koppelpoort's own store, belong to one application instance (so to
// one domain and application) and one patient, and are visible to that
// instance only; a Bearer token reaches only its launch patient's items.
package storage

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
)

// Options configure New.
type Options struct {
	Store  *store.Store
	Config koppeltaal.StorageConfig // defaults applied by New
	Logger *slog.Logger
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
	// Audit records every read and write of an item; nil: nothing recorded.
	Audit *audit.Recorder
}

// Service stores, finds and deletes items.
type Service struct {
	st  *store.Store
	cfg koppeltaal.StorageConfig
	log *slog.Logger
	now func() time.Time
	aud *audit.Recorder
}

// New returns the Storage Service over opts.Store.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("storage: Options.Store is nil")
	}
	opts.Config.SetDefaults()
	if err := opts.Config.Validate(); err != nil {
		return nil, err
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Service{st: opts.Store, cfg: opts.Config, log: opts.Logger, now: opts.Now, aud: opts.Audit}, nil
}

func fail(kind koppeltaal.Kind, code, format string, args ...any) *koppeltaal.Error {
	return koppeltaal.Fail(kind, code, format, args...)
}

// patientOf applies the caller's Bearer patient to a requested patient: a
// token may only name its own patient (403 otherwise) and gets it by default.
func patientOf(c *koppeltaal.Caller, requested string) (string, error) {
	if c.Patient == "" {
		return requested, nil
	}
	if requested != "" && requested != c.Patient {
		return "", fail(koppeltaal.Forbidden, "security", "The Bearer token only gives access to the storage items of its launch patient, not of %s.", requested)
	}
	return c.Patient, nil
}

// Create stores a new item for the caller and returns it.
func (s *Service) Create(ctx context.Context, c *koppeltaal.Caller, f Fields) (store.StorageItem, error) {
	var err error
	if f.Patient, err = patientOf(c, f.Patient); err != nil {
		return store.StorageItem{}, err
	}
	if err := s.checkWrite(f); err != nil {
		return store.StorageItem{}, err
	}
	now := s.now()
	it := store.StorageItem{DomainID: c.DomainID, InstanceID: c.ID, PatientRef: f.Patient, ObjectType: f.ObjectType,
		ObjectKey: f.ObjectKey, ContentType: f.ContentType, Content: f.Content, Size: int64(len(f.Content)),
		Version: koppeltaal.FormatVersion(now), CreatedAt: now.UnixMicro(), UpdatedAt: now.UnixMicro()}
	err = s.st.Update(ctx, func(tx *store.Tx) error {
		if err := s.checkQuota(ctx, tx, c.ID, f.Patient, 0, it.Size, true); err != nil {
			return err
		}
		id, err := tx.InsertStorageItem(ctx, it)
		if err != nil {
			return err
		}
		it.ID = id
		return s.audited(ctx, tx, c, audit.ActionStorageWrite, it, "created")
	})
	if err != nil {
		s.record(ctx, c, audit.ActionStorageWrite, store.StorageItem{PatientRef: f.Patient}, err)
	}
	return it, s.asError(err, "create storage item", c)
}

// Update replaces item id of the caller. version, when not empty, must be the
// item's current version (optimistic locking). The patient cannot change.
func (s *Service) Update(ctx context.Context, c *koppeltaal.Caller, id int64, version string, f Fields) (store.StorageItem, error) {
	var it store.StorageItem
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if it, err = s.own(ctx, tx, c, id); err != nil {
			return err
		}
		if version != "" && version != it.Version {
			// issue[0] is the exact text clients compare (CLIENTS.md); the current version goes in a second issue.
			return &koppeltaal.Error{Kind: koppeltaal.Conflict, Issues: []koppeltaal.Issue{
				{Severity: "error", Code: "conflict", Details: koppeltaal.TextVersionNotCorrect},
				{Severity: "information", Code: "informational", Details: "The item is at version " + it.Version + "."}}}
		}
		if f.Patient, err = patientOf(c, f.Patient); err != nil {
			return err
		}
		if f.Patient == "" {
			f.Patient = it.PatientRef
		}
		if f.Patient != it.PatientRef {
			return fail(koppeltaal.Invalid, "business-rule", "The patient of a StorageItem cannot change (item %d belongs to %s).", id, it.PatientRef)
		}
		if err := s.checkWrite(f); err != nil {
			return err
		}
		if err := s.checkQuota(ctx, tx, c.ID, it.PatientRef, it.Size, int64(len(f.Content)), false); err != nil {
			return err
		}
		now := s.now()
		it.ObjectType, it.ObjectKey, it.ContentType, it.Content = f.ObjectType, f.ObjectKey, f.ContentType, f.Content
		it.Size, it.UpdatedAt, it.Version = int64(len(f.Content)), now.UnixMicro(), koppeltaal.NextVersion(now, it.Version)
		if err := tx.UpdateStorageItem(ctx, it); err != nil {
			return err
		}
		return s.audited(ctx, tx, c, audit.ActionStorageWrite, it, "updated")
	})
	if err != nil {
		s.record(ctx, c, audit.ActionStorageWrite, store.StorageItem{ID: id}, err)
	}
	return it, s.asError(err, "update storage item", c)
}

// Get returns item id of the caller; another instance's item, or (Bearer)
// another patient's, is 404 like a missing one.
func (s *Service) Get(ctx context.Context, c *koppeltaal.Caller, id int64) (store.StorageItem, error) {
	var it store.StorageItem
	err := s.st.View(ctx, func(tx *store.Tx) error {
		var err error
		it, err = s.own(ctx, tx, c, id)
		return err
	})
	s.record(ctx, c, audit.ActionStorageRead, it, err)
	return it, s.asError(err, "read storage item", c)
}

// Delete deletes item id of the caller.
func (s *Service) Delete(ctx context.Context, c *koppeltaal.Caller, id int64) (store.StorageItem, error) {
	var it store.StorageItem
	err := s.st.Update(ctx, func(tx *store.Tx) error {
		var err error
		if it, err = s.own(ctx, tx, c, id); err != nil {
			return err
		}
		if err := tx.DeleteStorageItem(ctx, c.ID, id); err != nil {
			return err
		}
		return s.audited(ctx, tx, c, audit.ActionStorageDel, it, "")
	})
	if err != nil {
		s.record(ctx, c, audit.ActionStorageDel, store.StorageItem{ID: id}, err)
	}
	return it, s.asError(err, "delete storage item", c)
}

// Search returns a page of the caller's items of one patient and the total.
func (s *Service) Search(ctx context.Context, c *koppeltaal.Caller, q store.StorageQuery) ([]store.StorageItem, int, error) {
	var err error
	if q.Patient, err = patientOf(c, q.Patient); err != nil {
		return nil, 0, err
	}
	if q.Patient == "" {
		return nil, 0, fail(koppeltaal.Invalid, "required", "Searching storage items needs the patient parameter (the patient's URL).")
	}
	q.InstanceID = c.ID
	var items []store.StorageItem
	var total int
	err = s.st.View(ctx, func(tx *store.Tx) error {
		var err error
		items, total, err = tx.SearchStorageItems(ctx, q)
		return err
	})
	s.aud.Record(ctx, audit.Event{At: s.now(), Action: audit.ActionStorageRead, Actor: c.Actor(ctx), Patient: q.Patient,
		Object: "Other/StorageItem", Detail: fmt.Sprintf("search: %d of %d items", len(items), total), Status: statusOf(err)})
	return items, total, s.asError(err, "search storage items", c)
}

// own reads item id if the caller may see it.
func (s *Service) own(ctx context.Context, tx *store.Tx, c *koppeltaal.Caller, id int64) (store.StorageItem, error) {
	it, err := tx.StorageItemOf(ctx, c.ID, id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && c.Patient != "" && it.PatientRef != c.Patient) {
		return it, fail(koppeltaal.NotFound, "not-found", "%s does not exist.", Ref(id))
	}
	return it, err
}

// audited records an action on item it in tx.
func (s *Service) audited(ctx context.Context, tx *store.Tx, c *koppeltaal.Caller, action string, it store.StorageItem, detail string) error {
	return s.aud.InTx(ctx, tx, audit.Event{At: s.now(), Action: action, Actor: c.Actor(ctx), Patient: it.PatientRef,
		Object: Ref(it.ID), Detail: detail})
}

// record records a read, or a refused write (err), of item it.
func (s *Service) record(ctx context.Context, c *koppeltaal.Caller, action string, it store.StorageItem, err error) {
	ev := audit.Event{At: s.now(), Action: action, Actor: c.Actor(ctx), Status: statusOf(err)}
	if err == nil {
		ev.Patient = it.PatientRef
	}
	if it.ID != 0 {
		ev.Object = Ref(it.ID)
	}
	s.aud.Record(ctx, ev)
}

// statusOf is the HTTP status a service error answers with (0: none).
func statusOf(err error) int {
	var ke *koppeltaal.Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ke):
		return api.HTTPStatus(ke.Kind)
	case errors.Is(err, store.ErrDuplicateKey):
		return http.StatusConflict
	case errors.Is(err, store.ErrUnavailable):
		return http.StatusServiceUnavailable
	}
	return http.StatusInternalServerError
}

func (s *Service) checkWrite(f Fields) error {
	if err := f.check(); err != nil {
		return err
	}
	if int64(len(f.Content)) > s.cfg.MaxItemBytes {
		return fail(koppeltaal.TooLarge, "too-costly", "The item's content is %d bytes; the limit is %d bytes per item.", len(f.Content), s.cfg.MaxItemBytes)
	}
	return nil
}

// checkQuota refuses a write that would take the patient's items of this
// instance over the byte or item quota. oldSize is the size the write replaces.
func (s *Service) checkQuota(ctx context.Context, tx *store.Tx, instanceID int64, patient string, oldSize, newSize int64, adds bool) error {
	if err := tx.LockStoragePatient(ctx, instanceID, patient); err != nil {
		return err
	}
	n, bytes, err := tx.StorageUsage(ctx, instanceID, patient)
	if err != nil {
		return err
	}
	if adds && n+1 > int64(s.cfg.MaxPatientItems) {
		return fail(koppeltaal.Forbidden, "too-costly", "The quota of %d storage items for this patient is used up; delete items first.", s.cfg.MaxPatientItems)
	}
	if after := bytes - oldSize + newSize; after > s.cfg.MaxPatientBytes {
		return fail(koppeltaal.Forbidden, "too-costly", "The storage quota for this patient is %d bytes; %d are in use and this write would need %d.", s.cfg.MaxPatientBytes, bytes, after)
	}
	return nil
}

func (s *Service) asError(err error, what string, c *koppeltaal.Caller) error {
	var ke *koppeltaal.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ke):
		return ke
	case errors.Is(err, store.ErrDuplicateKey):
		return fail(koppeltaal.Conflict, "duplicate", "A StorageItem with this objectType and objectKey already exists for the patient; update it with PUT.")
	}
	return fmt.Errorf("%s for %s: %w", what, c.Username, err)
}

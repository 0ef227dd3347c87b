// Package activity is the ActivityDefinition registry of the Koppeltaal server
// (SPEC.md §3.7, CLIENTS.md): list, create, read and update ActivityDefinitions
// (FHIR Other resources coded ActivityDefinition) under /FHIR/Koppeltaal/Other,
// with optimistic locking, per-domain identifiers, IsDomainSpecific, archive
// and deactivate instead of delete, seeding from the configuration, and a
// server-generated CreateOrUpdateActivityDefinition message to subscribers in
// the same transaction as every write.
package activity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
)

// Event is the message event published on every create and update.
const Event = "CreateOrUpdateActivityDefinition"

// Extension URLs of the ActivityDefinition profile (SPEC.md §4.10; the
// …/Profile/ActivityDefinition# form is read too).
const (
	extBase           = dstu1.KoppeltaalBase + "ActivityDefinition#"
	ExtApplication    = extBase + "Application"
	ExtActivityName   = extBase + "ActivityName"
	ExtDescription    = extBase + "ActivityDescription"
	ExtIdentifier     = extBase + "ActivityDefinitionIdentifier"
	ExtKind           = extBase + "ActivityKind"
	ExtDefaultPerf    = extBase + "DefaultPerformer"
	ExtIsActive       = extBase + "IsActive"
	ExtIsDomainSpec   = extBase + "IsDomainSpecific"
	ExtIsArchived     = extBase + "IsArchived"
	ExtLaunchType     = extBase + "LaunchType"
	ExtSubActivity    = extBase + "SubActivity"
	ExtSubName        = extBase + "SubActivityName"
	ExtSubIdentifier  = extBase + "SubActivityIdentifier"
	ExtSubDescription = extBase + "SubActivityDescription"
	ExtSubIsActive    = extBase + "SubActivityIsActive"
)

func urls(u string) []string {
	return []string{u, strings.Replace(u, "/Koppeltaal/ActivityDefinition#", "/Koppeltaal/Profile/ActivityDefinition#", 1)}
}

// Definition is one stored ActivityDefinition.
type Definition struct {
	ID          int64  `db:"id"`
	DomainID    int64  `db:"domain_id"`
	Identifier  string `db:"identifier"`
	Application string `db:"application"` // the application the definition names
	// Owner is the application that defined it (its creator's, or for a seeded one the one it
	// names). Only the owner's instances change it, and it is visible outside its domain only
	// when it names its owner (see visibleWhere).
	Owner            string `db:"owner_application"`
	Version          string `db:"version"`
	IsActive         bool   `db:"is_active"`
	IsArchived       bool   `db:"is_archived"`
	IsDomainSpecific bool   `db:"is_domain_specific"`
	Content          []byte `db:"content"` // DSTU1 JSON
	UpdatedAt        int64  `db:"updated_at"`
}

const defCols = "id, domain_id, identifier, application, owner_application, version, is_active, is_archived, is_domain_specific, content, updated_at"

// Ref is the resource path of d: Other/ActivityDefinition:<id>.
func (d Definition) Ref() string { return fmt.Sprintf("Other/ActivityDefinition:%d", d.ID) }

// Resource decodes the stored resource.
func (d Definition) Resource() (*dstu1.Resource, error) {
	// Checked when it was stored: a stricter value check of a newer version must not lock it away.
	return dstu1.Limits{SkipValueChecks: true}.ParseResource(d.Content, dstu1.FormatJSON)
}

// Options configure New.
type Options struct {
	Store  *store.Store
	Logger *slog.Logger
	// MaxBodyBytes bounds a posted resource. Default koppeltaal.DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// OnPublish is called after a commit that queued messages (the notifier's wake-up).
	OnPublish func()
}

// Registry is the ActivityDefinition registry.
type Registry struct {
	st        *store.Store
	log       *slog.Logger
	limits    dstu1.Limits
	onPublish func()
	now       func() time.Time
}

// New returns the registry over opts.Store.
func New(opts Options) (*Registry, error) {
	if opts.Store == nil {
		return nil, errors.New("activity: New needs a Store")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = koppeltaal.DefaultMaxBodyBytes
	}
	if opts.OnPublish == nil {
		opts.OnPublish = func() {}
	}
	return &Registry{st: opts.Store, log: opts.Logger, limits: dstu1.Limits{MaxBytes: opts.MaxBodyBytes},
		onPublish: opts.OnPublish, now: time.Now}, nil
}

// SetClock replaces the clock (tests).
func (g *Registry) SetClock(now func() time.Time) { g.now = now }

func fail(kind koppeltaal.Kind, code, format string, args ...any) *koppeltaal.Error {
	return koppeltaal.Fail(kind, code, format, args...)
}

// fields are what the registry reads from a posted ActivityDefinition.
type fields struct {
	identifier, application, name string
	active, archived, domainSpec  bool
}

func boolExt(r *dstu1.Resource, url string, def bool) (bool, error) {
	e := r.Extension(urls(url)...)
	if e == nil {
		return def, nil
	}
	v := e.ExtensionValue()
	if v == nil || !v.HasValue {
		return def, nil
	}
	switch v.Value {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return def, fail(koppeltaal.Invalid, "invalid", "Extension %s must be true or false, not %q.", url, v.Value)
}

// check validates a posted resource and reads its fields (SPEC.md §4.10).
func check(r *dstu1.Resource) (fields, error) {
	var f fields
	if r.Type() != "Other" || r.KoppeltaalType() != dstu1.KindActivityDefinition {
		return f, fail(koppeltaal.Invalid, "not-supported",
			"The body must be an Other resource coded %s#%s (got %s).", dstu1.SystemOtherResourceUsage, dstu1.KindActivityDefinition, r.KoppeltaalType())
	}
	if e := r.Extension(urls(ExtApplication)...); e != nil {
		if v := e.ExtensionValue(); v != nil {
			f.application = v.Str("display")
			if f.application == "" {
				f.application = v.Str("reference")
			}
		}
	}
	if f.application == "" {
		return f, fail(koppeltaal.Invalid, "required", "ActivityDefinition extension %s (valueResource with display = application id) is required.", ExtApplication)
	}
	if e := r.Extension(urls(ExtActivityName)...); e != nil && e.ExtensionValue() != nil {
		f.name = e.ExtensionValue().Value
	}
	if strings.TrimSpace(f.name) == "" {
		return f, fail(koppeltaal.Invalid, "required", "ActivityDefinition extension %s is required.", ExtActivityName)
	}
	if e := r.Extension(urls(ExtIdentifier)...); e != nil && e.ExtensionValue() != nil {
		v := e.ExtensionValue()
		f.identifier = v.Value
		if !v.HasValue {
			f.identifier = v.Str("value") // valueIdentifier form of the spec
		}
	}
	if f.identifier == "" {
		f.identifier = r.Str("identifier", "value")
	}
	var err error
	if f.active, err = boolExt(r, ExtIsActive, true); err != nil {
		return f, err
	}
	if f.archived, err = boolExt(r, ExtIsArchived, false); err != nil {
		return f, err
	}
	if f.domainSpec, err = boolExt(r, ExtIsDomainSpec, false); err != nil {
		return f, err
	}
	for _, sub := range r.All("extension") {
		if sub.URL != ExtSubActivity && sub.URL != urls(ExtSubActivity)[1] {
			continue
		}
		if sub.Extension(urls(ExtSubIdentifier)...) == nil || sub.Extension(urls(ExtSubName)...) == nil {
			return f, fail(koppeltaal.Invalid, "required", "Every %s needs a SubActivityIdentifier and a SubActivityName.", ExtSubActivity)
		}
	}
	return f, nil
}

// ensureIdentifier gives a definition without ActivityDefinitionIdentifier a
// server-generated one (the identifier is what CarePlans and launches name).
func ensureIdentifier(r *dstu1.Resource, f *fields) {
	if f.identifier != "" {
		return
	}
	f.identifier = uuid.NewString()
	r.Add(dstu1.NewExtension(ExtIdentifier, dstu1.NewPrimitive("valueString", f.identifier)))
}

// setBool sets (or adds) a boolean extension.
func setBool(r *dstu1.Resource, url string, v bool) {
	val := "false"
	if v {
		val = "true"
	}
	if e := r.Extension(urls(url)...); e != nil {
		e.Children = []*dstu1.Node{dstu1.NewPrimitive("valueBoolean", val)}
		return
	}
	r.Add(dstu1.NewExtension(url, dstu1.NewPrimitive("valueBoolean", val)))
}

// Caller restrictions: a patient-scoped Bearer token reads but does not manage the catalogue.
func canWrite(c *koppeltaal.Caller) error {
	if c.Patient != "" {
		return fail(koppeltaal.Forbidden, "security", "A Bearer token from an SSO launch cannot create or change ActivityDefinitions; use the application-instance credentials.")
	}
	return nil
}

// List returns the definitions visible in the caller's domain: those created
// there, and those that are not domain specific whose providing application
// has an instance there. Archived ones only with includeArchived.
func (g *Registry) List(ctx context.Context, c *koppeltaal.Caller, includeArchived bool) ([]Definition, error) {
	var out []Definition
	err := g.st.View(ctx, func(tx *store.Tx) error {
		return tx.Select(ctx, &out, "SELECT "+defCols+" FROM activity_definitions ad WHERE "+visibleWhere+
			" AND (? OR ad.is_archived = ?) ORDER BY ad.id", c.DomainID, false, c.DomainID, includeArchived, false)
	})
	if err != nil {
		return nil, fmt.Errorf("list activity definitions for %s: %w", c.Username, err)
	}
	return out, nil
}

// Get returns one definition visible to the caller, or a 404 *koppeltaal.Error.
func (g *Registry) Get(ctx context.Context, c *koppeltaal.Caller, id int64) (Definition, error) {
	var d Definition
	err := g.st.View(ctx, func(tx *store.Tx) error {
		var err error
		d, err = visible(ctx, tx, c, id)
		return err
	})
	return d, err
}

// visibleWhere selects the definitions visible in a domain (arguments: the
// domain id, false, the domain id): those created there, and those that are
// not domain specific, name the application that defined them, and whose
// application has an instance there (SPEC.md §6.1 [inferred]). A definition
// naming another application than its owner's — one the server did not know
// when it was posted — stays in its domain.
const visibleWhere = `(ad.domain_id = ? OR (ad.is_domain_specific = ? AND ad.application = ad.owner_application
	AND ad.owner_application IN (SELECT a.ident FROM applications a JOIN app_instances i ON i.application_id = a.id
		WHERE i.domain_id = ?)))`

func visible(ctx context.Context, tx *store.Tx, c *koppeltaal.Caller, id int64) (Definition, error) {
	var d Definition
	err := tx.Get(ctx, &d, "SELECT "+defCols+" FROM activity_definitions ad WHERE ad.id = ? AND "+visibleWhere,
		id, c.DomainID, false, c.DomainID)
	if errors.Is(err, sql.ErrNoRows) {
		return d, fail(koppeltaal.NotFound, "not-found", "ActivityDefinition:%d does not exist.", id)
	}
	if err != nil {
		return d, fmt.Errorf("read activity definition %d: %w", id, err)
	}
	return d, nil
}

// Version returns the stored content of one version of a definition.
func (g *Registry) Version(ctx context.Context, c *koppeltaal.Caller, id int64, version string) (Definition, error) {
	var d Definition
	err := g.st.View(ctx, func(tx *store.Tx) error {
		var err error
		if d, err = visible(ctx, tx, c, id); err != nil {
			return err
		}
		if version == d.Version {
			return nil
		}
		err = tx.Get(ctx, &d.Content, "SELECT content FROM activity_definition_versions WHERE definition_id = ? AND version = ?", id, version)
		if errors.Is(err, sql.ErrNoRows) {
			return fail(koppeltaal.NotFound, "not-found", "ActivityDefinition:%d has no version %s.", id, version)
		}
		d.Version = version
		return err
	})
	return d, err
}

// Create stores a new definition posted by c and publishes it.
func (g *Registry) Create(ctx context.Context, c *koppeltaal.Caller, r *dstu1.Resource, base string) (Definition, error) {
	if err := canWrite(c); err != nil {
		return Definition{}, err
	}
	return g.write(ctx, writer{domainID: c.DomainID, instanceID: c.ID, app: c.AppIdent}, 0, "", r, base)
}

// Update replaces definition id (visible in c's domain) with r. A non-empty
// version must be the current one (optimistic locking, 409 otherwise).
func (g *Registry) Update(ctx context.Context, c *koppeltaal.Caller, id int64, version string, r *dstu1.Resource, base string) (Definition, error) {
	if err := canWrite(c); err != nil {
		return Definition{}, err
	}
	return g.write(ctx, writer{domainID: c.DomainID, instanceID: c.ID, app: c.AppIdent}, id, version, r, base)
}

// writer is who writes a definition: an application instance, or (instanceID
// 0, app "") the configuration, which may name any application.
type writer struct {
	domainID, instanceID int64
	app                  string
}

// mayName checks that w may publish a definition naming application app (issue
// 16): its own application, or one the server does not know (CLIENTS.md: such
// a definition is accepted; visibleWhere keeps it in its domain). Naming
// another registered application would publish in that application's domains.
func (w writer) mayName(ctx context.Context, tx *store.Tx, app string) error {
	if w.app == "" || app == w.app {
		return nil
	}
	var n int
	if err := tx.Get(ctx, &n, "SELECT COUNT(*) FROM applications WHERE ident = ?", app); err != nil {
		return fmt.Errorf("look up application %q: %w", app, err)
	}
	if n > 0 {
		return fail(koppeltaal.Forbidden, "security",
			"Application instances define ActivityDefinitions of their own application (%s) only, not of %s.", w.app, app)
	}
	return nil
}

// owner is the owner of a definition w creates that names app.
func (w writer) owner(app string) string {
	if w.app == "" {
		return app
	}
	return w.app
}

// write creates (id 0) or updates a definition in w's domain and queues the
// CreateOrUpdateActivityDefinition message, all in one transaction.
func (g *Registry) write(ctx context.Context, w writer, id int64, version string, r *dstu1.Resource, base string) (Definition, error) {
	domainID, instanceID := w.domainID, w.instanceID
	f, err := check(r)
	if err != nil {
		return Definition{}, err
	}
	ensureIdentifier(r, &f)
	// Extensions added here (and by the seeder) go after existing elements; XML needs schema order.
	r.SortElements()
	now := g.now()
	var d Definition
	queued := 0
	err = g.st.Update(ctx, func(tx *store.Tx) error {
		last, err := tx.LockDomainVersion(ctx, domainID)
		if err != nil {
			return err
		}
		if err := w.mayName(ctx, tx, f.application); err != nil {
			return err
		}
		owner := w.owner(f.application)
		if id != 0 {
			c := &koppeltaal.Caller{Instance: store.Instance{DomainID: domainID}}
			cur, err := visible(ctx, tx, c, id)
			if err != nil {
				return err
			}
			if cur.DomainID != domainID {
				return fail(koppeltaal.Forbidden, "security", "ActivityDefinition:%d belongs to another domain; it can only be changed there.", id)
			}
			if w.app != "" && cur.Owner != w.app {
				return fail(koppeltaal.Forbidden, "security", "ActivityDefinition:%d belongs to application %s; only its instances can change it.", id, cur.Owner)
			}
			if w.app == "" {
				owner = cur.Owner // seeding changes content, not ownership
				if owner == "" {
					owner = f.application
				}
			}
			if version != "" && version != cur.Version {
				return &koppeltaal.Error{Kind: koppeltaal.Conflict, Issues: []koppeltaal.Issue{{Severity: "error", Code: "conflict",
					Details: koppeltaal.TextVersionNotCorrect, Resource: base + "/" + cur.Ref() + "/_history/" + cur.Version}}}
			}
			if cur.Version > last {
				last = cur.Version
			}
		}
		var dup int64
		err = tx.Get(ctx, &dup, "SELECT id FROM activity_definitions WHERE domain_id = ? AND identifier = ? AND id <> ?", domainID, f.identifier, id)
		if err == nil {
			return fail(koppeltaal.Conflict, "duplicate", "ActivityDefinition identifier %q is already used by ActivityDefinition:%d in this domain.", f.identifier, dup)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("check identifier: %w", err)
		}
		v := koppeltaal.NextVersion(now, last)
		if err := tx.SetDomainVersion(ctx, domainID, v); err != nil {
			return err
		}
		content := r.JSON()
		if id == 0 {
			id, err = tx.InsertID(ctx, `INSERT INTO activity_definitions (domain_id, identifier, application, owner_application,
				version, is_active, is_archived, is_domain_specific, content, created_by, created_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
				domainID, f.identifier, f.application, owner, v, f.active, f.archived, f.domainSpec, content, nullID(instanceID),
				now.UnixMicro(), now.UnixMicro())
			if err != nil {
				return fmt.Errorf("create activity definition %q: %w", f.identifier, err)
			}
		} else if _, err := tx.Exec(ctx, `UPDATE activity_definitions SET identifier = ?, application = ?, owner_application = ?,
			version = ?, is_active = ?, is_archived = ?, is_domain_specific = ?, content = ?, updated_at = ? WHERE id = ?`,
			f.identifier, f.application, owner, v, f.active, f.archived, f.domainSpec, content, now.UnixMicro(), id); err != nil {
			return fmt.Errorf("update activity definition %d: %w", id, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO activity_definition_versions (definition_id, version, content, created_at) VALUES (?, ?, ?, ?)",
			id, v, content, now.UnixMicro()); err != nil {
			return fmt.Errorf("store version of activity definition %d: %w", id, err)
		}
		d = Definition{ID: id, DomainID: domainID, Identifier: f.identifier, Application: f.application, Owner: owner, Version: v,
			IsActive: f.active, IsArchived: f.archived, IsDomainSpecific: f.domainSpec, Content: content, UpdatedAt: now.UnixMicro()}
		queued, err = g.publish(ctx, tx, d, r, base, now)
		return err
	})
	if err != nil {
		var ke *koppeltaal.Error
		if errors.As(err, &ke) {
			return Definition{}, ke
		}
		return Definition{}, fmt.Errorf("write activity definition: %w", err)
	}
	g.log.Info("koppeltaal: activity definition stored", "id", d.ID, "identifier", d.Identifier, "version", d.Version, "queued", queued)
	if queued > 0 {
		g.onPublish()
	}
	return d, nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

// publish queues a CreateOrUpdateActivityDefinition message (SPEC.md §3.7,
// example createorupdateactivitydefinition-message-edge.xml) for the
// subscribed instances of every domain the definition is visible in.
func (g *Registry) publish(ctx context.Context, tx *store.Tx, d Definition, r *dstu1.Resource, base string, now time.Time) (int, error) {
	type dom struct {
		ID   int64  `db:"id"`
		Name string `db:"name"`
	}
	var doms []dom
	q := "SELECT id, name FROM domains WHERE id = ?"
	args := []any{d.DomainID}
	if !d.IsDomainSpecific && d.Application == d.Owner { // the domains visibleWhere shows it in
		q += ` OR id IN (SELECT i.domain_id FROM app_instances i JOIN applications a ON a.id = i.application_id WHERE a.ident = ?)`
		args = append(args, d.Owner)
	}
	if err := tx.Select(ctx, &doms, q+" ORDER BY id", args...); err != nil {
		return 0, fmt.Errorf("domains of activity definition %d: %w", d.ID, err)
	}
	self := base + "/" + d.Ref() + "/_history/" + d.Version
	queued := 0
	for _, dm := range doms {
		v := d.Version
		if dm.ID != d.DomainID {
			last, err := tx.LockDomainVersion(ctx, dm.ID)
			if err != nil {
				return 0, err
			}
			v = koppeltaal.NextVersion(now, last)
			if err := tx.SetDomainVersion(ctx, dm.ID, v); err != nil {
				return 0, err
			}
		}
		ident := uuid.NewString()
		b := dstu1.NewMessageBundle("urn:uuid:"+uuid.NewString(), dm.Name)
		mh := dstu1.NewMessageHeader(dstu1.MessageHeaderFields{
			ID: ident, Identifier: ident, Timestamp: now.UTC().Format(time.RFC3339),
			Event:  dstu1.Coding{System: dstu1.SystemMessageEvents, Code: Event, Display: Event},
			Source: koppeltaal.InformationSource,
			Data:   []string{self},
		})
		b.AddEntry(mh.Resource, "", "")
		b.AddEntry(r.Clone(), "", self)
		bodyID, err := tx.InsertBody(ctx, "json", b.JSON())
		if err != nil {
			return 0, err
		}
		focal := base + "/" + d.Ref()
		msgID, err := tx.InsertMessage(ctx, store.Message{DomainID: dm.ID, Event: Event, MessageIdentifier: ident,
			FeedID: b.ID, FocalRef: focal, FocalVersion: d.Version, Version: v, BodyID: bodyID, CreatedAt: now.UnixMicro()})
		if err != nil {
			return 0, err
		}
		subs, err := tx.Subscribers(ctx, dm.ID, Event)
		if err != nil {
			return 0, err
		}
		for _, s := range subs {
			eid, err := tx.InsertEntry(ctx, store.Entry{DomainID: dm.ID, InstanceID: s.InstanceID, MessageID: msgID,
				MessageIdentifier: ident, Event: Event, FocalRef: focal, Status: store.StatusNew, StatusChangedAt: now.UnixMicro(),
				Version: v, CreatedAt: now.UnixMicro()})
			if err != nil {
				return 0, err
			}
			if _, err := tx.ReplaceOlder(ctx, s.InstanceID, focal, Event, eid, now.UnixMicro(), v); err != nil {
				return 0, err
			}
			queued++
		}
	}
	return queued, nil
}

// Package supportapi is the Koppeltaal Support API (SPEC.md §11.1):
// /jsonapi/Koppeltaal/<Resource> in JSON:API 1.0, for administrators
// authenticated by admin.Accounts and limited to their scope. It provisions
// through the same functions as the configuration file (koppeltaal.PutDomain,
// PutApplication, PutInstance), so a change takes effect at once in this
// process and within the caches' bound (1 s) in every process sharing the
// database. Objects the configuration file declares are read-only here.
package supportapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/store"
)

// Prefix is where the Support API lives (SPEC.md §3.11).
const Prefix = "/jsonapi/Koppeltaal"

// maxBody bounds a POST/PATCH document.
const maxBody = 1 << 20

// Options configure New.
type Options struct {
	Accounts *admin.Accounts
	// Koppeltaal supplies the bcrypt cost for instance passwords and public_url for links.
	Koppeltaal koppeltaal.Config
	Logger     *slog.Logger
	// ServerName is the Server resource's Name (default "Koppelpoort").
	ServerName string
	// Version is the running binary's version, shown on the Server resource.
	Version string
	// Activities is the ActivityDefinition registry; nil: no ActivityDefinition resource writes.
	Activities *activity.Registry
	// FHIRBase is the base written into the messages an ActivityDefinition change publishes.
	FHIRBase string
	// Resources adds resource types (messages, OAuth clients, ...) registered by other packages.
	Resources []Resource
}

// API serves the Support API.
type API struct {
	acc      *admin.Accounts
	st       *store.Store
	kt       koppeltaal.Config
	log      *slog.Logger
	types    map[string]*Resource
	names    []string
	name     string
	version  string
	started  time.Time
	acts     *activity.Registry
	fhirBase string
}

// Resource is one resource type and the operations it allows (nil: not
// allowed; the operations matrix of SPEC.md §11.1). Every function gets the
// calling administrator in ctx (admin.PrincipalFrom) and must keep to its scope:
// objects outside it are ErrNotFound.
type Resource struct {
	Type string
	// NotAllowed explains, per HTTP method, what to do instead (e.g. "PATCH IsActive=false").
	NotAllowed map[string]string
	List       func(ctx context.Context, r *http.Request) ([]jsonapi.Resource, error)
	// Query serves large collections (messages) itself: filters, paging; total < 0 is unknown.
	Query  func(ctx context.Context, r *http.Request, q jsonapi.Query) (page []jsonapi.Resource, total int, more bool, err error)
	Get    func(ctx context.Context, id string) (jsonapi.Resource, error)
	Create func(ctx context.Context, req jsonapi.Request) (jsonapi.Resource, error)
	Patch  func(ctx context.Context, id string, req jsonapi.Request) (jsonapi.Resource, error)
	Delete func(ctx context.Context, id string) error
}

// New returns the Support API with the provisioning resources and opts.Resources.
func New(opts Options) (*API, error) {
	if opts.Accounts == nil {
		return nil, errors.New("supportapi: New needs Accounts")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ServerName == "" {
		opts.ServerName = "Koppelpoort"
	}
	kt := opts.Koppeltaal
	kt.SetDefaults()
	a := &API{acc: opts.Accounts, st: opts.Accounts.Store(), kt: kt, log: opts.Logger, types: map[string]*Resource{},
		name: opts.ServerName, version: opts.Version, started: time.Now(), acts: opts.Activities, fhirBase: opts.FHIRBase}
	for _, r := range append(a.provisioning(), opts.Resources...) {
		a.Register(r)
	}
	return a, nil
}

// Register adds a resource type; registering a type twice panics (a programming error found at start).
func (a *API) Register(r Resource) {
	if _, dup := a.types[r.Type]; dup {
		panic("supportapi: resource type " + r.Type + " registered twice")
	}
	rr := r
	a.types[r.Type] = &rr
	a.names = append(a.names, r.Type)
	sort.Strings(a.names)
}

// Types lists the registered resource types.
func (a *API) Types() []string { return append([]string(nil), a.names...) }

// Store is the store the API works on (for resources registered by other packages).
func (a *API) Store() *store.Store { return a.st }

// Audit records an administrative action of the caller in ctx inside tx.
func (a *API) Audit(ctx context.Context, tx *store.Tx, verb, object string, domainID int64, detail string) error {
	return a.acc.Auditor().Record(ctx, tx, adminAction(ctx, verb, object, domainID, detail, ""))
}

// AuditPatient is Audit for an action on patient's data.
func (a *API) AuditPatient(ctx context.Context, tx *store.Tx, verb, object string, domainID int64, detail, patient string) error {
	return a.acc.Auditor().Record(ctx, tx, adminAction(ctx, verb, object, domainID, detail, patient))
}

// AuditRead records that the caller in ctx read object (patient data: patient names whose); it is written
// outside any transaction (admin.Auditor.Read).
func (a *API) AuditRead(ctx context.Context, object string, domainID int64, detail, patient string) {
	a.acc.Auditor().Read(ctx, adminAction(ctx, "read", object, domainID, detail, patient))
}

// auditSearch records a list the caller read: one record per patient whose data it showed (as the
// Koppeltaal search does), none for rows without a patient. at returns row i's patient and domain.
func (a *API) auditSearch(ctx context.Context, typ string, n int, at func(i int) (patient string, domainID int64)) {
	type key struct {
		patient string
		domain  int64
	}
	count := map[key]int{}
	var order []key
	for i := 0; i < n; i++ {
		p, d := at(i)
		if p == "" {
			continue
		}
		k := key{p, d}
		if count[k] == 0 {
			order = append(order, k)
		}
		count[k]++
	}
	for _, k := range order {
		a.acc.Auditor().Read(ctx, adminAction(ctx, "search", typ, k.domain, fmt.Sprintf("%d shown", count[k]), k.patient))
	}
}

// adminAction is an action of the caller in ctx; patient is whose data it showed or changed ("" for none).
func adminAction(ctx context.Context, verb, object string, domainID int64, detail, patient string) admin.Action {
	return admin.Action{Principal: admin.PrincipalFrom(ctx), Verb: verb, Object: object, DomainID: domainID, Detail: detail, Patient: patient}
}

// Mount registers the Support API under Prefix.
func (a *API) Mount(r chi.Router) {
	r.Route(Prefix, func(r chi.Router) {
		r.Use(a.acc.Require)
		r.Get("/", a.index)
		r.Get("/{type}", a.handle(a.collection))
		r.Post("/{type}", a.handle(a.create))
		r.Get("/{type}/{id}", a.handle(a.read))
		r.Patch("/{type}/{id}", a.handle(a.patch))
		r.Delete("/{type}/{id}", a.handle(a.delete))
		r.NotFound(func(w http.ResponseWriter, r *http.Request) {
			jsonapi.WriteErrors(w, []jsonapi.Error{jsonapi.Errorf(404, "Resource not found", "%s is not a Support API endpoint", r.URL.Path)})
		})
		r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
			jsonapi.WriteErrors(w, []jsonapi.Error{jsonapi.Errorf(405, "Method not allowed", "%s is not allowed on %s", r.Method, r.URL.Path)})
		})
	})
}

// index lists the resource types and their operations (the operations matrix).
func (a *API) index(w http.ResponseWriter, r *http.Request) {
	var data []jsonapi.Resource
	for _, name := range a.names {
		t := a.types[name]
		ops := map[string]any{"GET": t.List != nil || t.Query != nil, "POST": t.Create != nil, "PATCH": t.Patch != nil, "DELETE": t.Delete != nil}
		data = append(data, jsonapi.Resource{Type: "ResourceType", ID: name, Attributes: map[string]any{"Operations": ops},
			Links: map[string]string{"self": a.root(r) + Prefix + "/" + name}})
	}
	jsonapi.Write(w, http.StatusOK, jsonapi.Document{Data: data})
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, t *Resource) error

func (a *API) handle(fn handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t := a.types[chi.URLParam(r, "type")]
		if t == nil {
			jsonapi.WriteErrors(w, []jsonapi.Error{jsonapi.Errorf(404, "Resource not found",
				"%q is not a resource type of this server (see %s/)", chi.URLParam(r, "type"), Prefix)})
			return
		}
		if err := fn(w, r, t); err != nil {
			errs := jsonapi.AsErrors(mapStoreErr(err))
			if errs[0].Status == "500" {
				a.log.Error("supportapi: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
			}
			jsonapi.WriteErrors(w, errs)
		}
	}
}

// mapStoreErr turns the store's sentinels into JSON:API errors.
func mapStoreErr(err error) error {
	var je jsonapi.Error
	var jes jsonapi.Errors
	switch {
	case errors.As(err, &je), errors.As(err, &jes):
		return err
	case errors.Is(err, store.ErrNotFound):
		return jsonapi.ErrNotFound
	case errors.Is(err, store.ErrStaleVersion):
		return jsonapi.Error{Status: "409", Title: "Stale version",
			Detail: "the object was changed since meta.version was read; GET it again and repeat the change",
			Source: &jsonapi.ErrorSource{Pointer: "/data/meta/version"}}
	case errors.Is(err, store.ErrConflict):
		return jsonapi.Errorf(409, "Conflict", "%v", err)
	case errors.Is(err, admin.ErrInvalid):
		return jsonapi.Errorf(400, "Invalid value", "%v", err)
	}
	return err
}

func (a *API) notAllowed(w http.ResponseWriter, t *Resource, method string) error {
	var allow []string
	if t.List != nil || t.Query != nil || t.Get != nil {
		allow = append(allow, "GET")
	}
	if t.Create != nil {
		allow = append(allow, "POST")
	}
	if t.Patch != nil {
		allow = append(allow, "PATCH")
	}
	if t.Delete != nil {
		allow = append(allow, "DELETE")
	}
	w.Header().Set("Allow", strings.Join(allow, ", "))
	detail := fmt.Sprintf("%s is not allowed on %s (allowed: %s)", method, t.Type, strings.Join(allow, ", "))
	if hint := t.NotAllowed[method]; hint != "" {
		detail += "; " + hint
	}
	return jsonapi.Errorf(http.StatusMethodNotAllowed, "Method not allowed", "%s", detail)
}

func (a *API) collection(w http.ResponseWriter, r *http.Request, t *Resource) error {
	q, err := jsonapi.ParseQuery(r.URL.Query())
	if err != nil {
		return err
	}
	var page []jsonapi.Resource
	var total int
	var more bool
	switch {
	case t.Query != nil:
		page, total, more, err = t.Query(r.Context(), r, q)
	case t.List != nil:
		var all []jsonapi.Resource
		if all, err = t.List(r.Context(), r); err == nil {
			page, total, err = jsonapi.Apply(all, q)
		}
	default:
		return a.notAllowed(w, t, "GET")
	}
	if err != nil {
		return err
	}
	root := a.root(r)
	for i := range page {
		a.selfLink(root, &page[i])
	}
	if page == nil {
		page = []jsonapi.Resource{}
	}
	jsonapi.Write(w, http.StatusOK, jsonapi.Document{Data: page, Meta: jsonapi.PageMeta(q, total),
		Links: jsonapi.PageLinks(r, root, q, total, more)})
	return nil
}

func (a *API) read(w http.ResponseWriter, r *http.Request, t *Resource) error {
	if t.Get == nil {
		return a.notAllowed(w, t, "GET")
	}
	res, err := t.Get(r.Context(), chi.URLParam(r, "id"))
	if err != nil {
		return err
	}
	a.writeOne(w, r, http.StatusOK, res)
	return nil
}

func (a *API) create(w http.ResponseWriter, r *http.Request, t *Resource) error {
	if t.Create == nil {
		return a.notAllowed(w, t, "POST")
	}
	req, err := jsonapi.ReadRequest(r, t.Type, maxBody)
	if err != nil {
		return err
	}
	if req.ID != "" {
		return jsonapi.Error{Status: "403", Title: "Client-generated id", Detail: "POST without an id: the server assigns it",
			Source: &jsonapi.ErrorSource{Pointer: "/data/id"}}
	}
	res, err := t.Create(r.Context(), req)
	if err != nil {
		return err
	}
	if res.ID == "" { // an action (DeadLetterReplay), not an object: nothing to link to
		jsonapi.Write(w, http.StatusOK, jsonapi.Document{Data: &res})
		return nil
	}
	a.selfLink(a.root(r), &res)
	w.Header().Set("Location", res.Links["self"])
	a.writeOne(w, r, http.StatusCreated, res)
	return nil
}

func (a *API) patch(w http.ResponseWriter, r *http.Request, t *Resource) error {
	if t.Patch == nil {
		return a.notAllowed(w, t, "PATCH")
	}
	req, err := jsonapi.ReadRequest(r, t.Type, maxBody)
	if err != nil {
		return err
	}
	id := chi.URLParam(r, "id")
	if req.ID != id {
		return jsonapi.Error{Status: "409", Title: "Id mismatch", Detail: fmt.Sprintf("data.id %q is not the id in the URL (%q)", req.ID, id),
			Source: &jsonapi.ErrorSource{Pointer: "/data/id"}}
	}
	if req.VersionString() == "" {
		return jsonapi.Error{Status: "428", Title: "Version required",
			Detail: "send the meta.version of the object as you read it (optimistic locking)", Source: &jsonapi.ErrorSource{Pointer: "/data/meta/version"}}
	}
	res, err := t.Patch(r.Context(), id, req)
	if err != nil {
		return err
	}
	a.writeOne(w, r, http.StatusOK, res)
	return nil
}

func (a *API) delete(w http.ResponseWriter, r *http.Request, t *Resource) error {
	if t.Delete == nil {
		return a.notAllowed(w, t, "DELETE")
	}
	if err := t.Delete(r.Context(), chi.URLParam(r, "id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (a *API) writeOne(w http.ResponseWriter, r *http.Request, status int, res jsonapi.Resource) {
	root := a.root(r)
	a.selfLink(root, &res)
	jsonapi.Write(w, status, jsonapi.Document{Data: &res, Links: map[string]string{"self": res.Links["self"]}})
}

func (a *API) selfLink(root string, res *jsonapi.Resource) {
	if res.Links == nil {
		res.Links = map[string]string{}
	}
	if res.Links["self"] == "" {
		res.Links["self"] = root + Prefix + "/" + res.Type + "/" + res.ID
	}
}

// root is the scheme://host the links use: public_url when configured, else the request's.
func (a *API) root(r *http.Request) string {
	if a.kt.PublicURL != "" {
		return strings.TrimSuffix(a.kt.PublicURL, "/")
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// Helpers shared by the resource implementations.

// Time renders a stored Unix-microsecond time for attributes ("" for 0).
func Time(us int64) string {
	if us == 0 {
		return ""
	}
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}

// VersionMeta is the meta member carrying the optimistic-lock version.
func VersionMeta(v int64) map[string]any { return map[string]any{"version": strconv.FormatInt(v, 10)} }

// ParseVersion reads meta.version of a PATCH as a row version.
func ParseVersion(req jsonapi.Request) (int64, error) {
	v, err := strconv.ParseInt(req.VersionString(), 10, 64)
	if err != nil || v < 1 {
		return 0, jsonapi.Error{Status: "400", Title: "Invalid version", Detail: fmt.Sprintf("meta.version %q is not a version this server issued", req.VersionString()),
			Source: &jsonapi.ErrorSource{Pointer: "/data/meta/version"}}
	}
	return v, nil
}

// ParseID reads a numeric resource id; anything else is 404.
func ParseID(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 1 {
		return 0, jsonapi.ErrNotFound
	}
	return n, nil
}

// Attrs decodes a request's attributes strictly: only names in allowed,
// immutable ones refused with 403, each value of the type its target has.
type Attrs struct {
	raw  map[string]json.RawMessage
	errs jsonapi.Errors
}

// NewAttrs checks the attribute names of req: each must be in writable;
// one in immutable is refused (403), any other is unknown (400).
func NewAttrs(req jsonapi.Request, writable, immutable []string) *Attrs {
	a := &Attrs{raw: req.Attributes}
	for name := range req.Attributes {
		switch {
		case contains(writable, name):
		case contains(immutable, name):
			a.errs = append(a.errs, jsonapi.AttrError(403, name, "Immutable attribute", "%s cannot be changed after creation", name))
		default:
			a.errs = append(a.errs, jsonapi.AttrError(400, name, "Unknown attribute",
				"%q is not a writable attribute here (writable: %s)", name, strings.Join(writable, ", ")))
		}
	}
	return a
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Has reports whether the request sets name.
func (a *Attrs) Has(name string) bool { _, ok := a.raw[name]; return ok }

// Get decodes attribute name into dst when present; it reports presence.
func (a *Attrs) Get(name string, dst any) bool {
	raw, ok := a.raw[name]
	if !ok {
		return false
	}
	if string(raw) == "null" {
		return true // null clears: dst keeps its zero value
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		a.errs = append(a.errs, jsonapi.AttrError(400, name, "Invalid attribute", "%s: %v", name, err))
	}
	return true
}

// Fail records an error about attribute name.
func (a *Attrs) Fail(status int, name, format string, args ...any) {
	a.errs = append(a.errs, jsonapi.AttrError(status, name, "Invalid attribute", format, args...))
}

// Err returns the collected errors (nil when none).
func (a *Attrs) Err() error {
	if len(a.errs) == 0 {
		return nil
	}
	return a.errs
}

// Forbidden is the error for an operation the caller's role does not allow.
func Forbidden(format string, args ...any) error {
	return jsonapi.Errorf(http.StatusForbidden, "Forbidden", format, args...)
}

// ManagedByFile is the error for a change to an object the configuration file declares.
func ManagedByFile(what string) error {
	return jsonapi.Errorf(http.StatusConflict, "Managed by the configuration file",
		"%s is declared in the configuration file; change it there (the file is applied when serve starts)", what)
}

func principal(ctx context.Context) *admin.Principal { return admin.PrincipalFrom(ctx) }

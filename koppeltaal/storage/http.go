package storage

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
)

// Extension registers the Storage Service on the FHIR route group: the
// StorageItem kind of /Other and the /Binary variant. Pass it in
// api.Options.Extensions.
func (s *Service) Extension(a *api.Server, r chi.Router) {
	h := &handlers{svc: s, a: a}
	a.HandleOther(dstu1.KindStorageItem, api.OtherHandlers{Search: h.search, Create: h.creator(h.readItem, h.replyItem),
		Read: h.read, Update: h.updater(h.readItem, h.replyItem), Delete: h.delete})
	createBinary, updateBinary := h.creator(h.readBinaryBody, h.replyBinary), h.updater(h.readBinaryBody, h.replyBinary)
	r.Get("/Binary", a.Auth(h.search))
	r.Get("/Binary/_search", a.Auth(h.search))
	r.Post("/Binary", a.Auth(createBinary))
	r.Get("/Binary/{ref}", a.Auth(h.readBinary))
	r.Get("/Binary/{ref}/_history/{version}", a.Auth(h.readBinary))
	r.Put("/Binary/{ref}", a.Auth(updateBinary))
	r.Put("/Binary/{ref}/_history/{version}", a.Auth(updateBinary))
	r.Delete("/Binary/{ref}", a.Auth(h.delete))
}

type handlers struct {
	svc *Service
	a   *api.Server
}

// itemID reads the id from "StorageItem:<n>" or "<n>" (the ref path parameter).
func itemID(r *http.Request) (int64, error) {
	ref := chi.URLParam(r, "ref")
	n := strings.TrimPrefix(ref, dstu1.KindStorageItem+":")
	id, err := strconv.ParseInt(n, 10, 64)
	if err != nil || id <= 0 {
		return 0, fail(koppeltaal.NotFound, "not-found", "%s is not a storage item of this server (want Other/StorageItem:<id> or Binary/<id>).", ref)
	}
	return id, nil
}

// patientParam is the patient query parameter (either spelling), unversioned.
func patientParam(q url.Values) string {
	p := q.Get("patient")
	if p == "" {
		p = q.Get("Patient")
	}
	p, _ = dstu1.SplitHistory(p)
	return p
}

// readItem reads a posted StorageItem (a lone Other; a one-entry feed is tolerated).
func (h *handlers) readItem(w http.ResponseWriter, r *http.Request) (Fields, error) {
	body, f, err := h.a.ReadBody(w, r)
	if err != nil {
		return Fields{}, err
	}
	lim := dstu1.Limits{MaxBytes: h.a.Service().Config().MaxBodyBytes}
	res, err := lim.ParseResource(body, f)
	if err != nil {
		if b, berr := lim.ParseBundle(body, f); berr == nil && len(b.Entries) == 1 && b.Entries[0].Resource != nil {
			res, err = b.Entries[0].Resource, nil
		}
	}
	if err != nil {
		return Fields{}, fail(koppeltaal.Invalid, "structure", "The StorageItem cannot be parsed: %v", err)
	}
	fields, err := FieldsFromResource(res)
	if err != nil {
		return fields, err
	}
	if p := patientParam(r.URL.Query()); p != "" {
		if fields.Patient != "" && fields.Patient != p {
			return fields, fail(koppeltaal.Invalid, "business-rule", "The patient parameter (%s) and the item's PatientIdentifier (%s) differ.", p, fields.Patient)
		}
		fields.Patient = p
	}
	return fields, nil
}

// creator and updater make the create and update handlers of both variants
// from how they read a body and how they answer.
type (
	bodyReader func(w http.ResponseWriter, r *http.Request) (Fields, error)
	replier    func(w http.ResponseWriter, r *http.Request, status int, it store.StorageItem, err error)
)

func (h *handlers) creator(read bodyReader, reply replier) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := read(w, r)
		if err != nil {
			h.a.WriteError(w, r, err)
			return
		}
		it, err := h.svc.Create(r.Context(), api.CallerFrom(r), f)
		reply(w, r, http.StatusCreated, it, err)
	}
}

func (h *handlers) updater(read bodyReader, reply replier) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id, err := itemID(r)
		if err != nil {
			h.a.WriteError(w, r, err)
			return
		}
		f, err := read(w, r)
		if err != nil {
			h.a.WriteError(w, r, err)
			return
		}
		it, err := h.svc.Update(r.Context(), api.CallerFrom(r), id, chi.URLParam(r, "version"), f)
		reply(w, r, http.StatusOK, it, err)
	}
}

func (h *handlers) read(w http.ResponseWriter, r *http.Request) {
	id, err := itemID(r)
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	it, err := h.svc.Get(r.Context(), api.CallerFrom(r), id)
	if err == nil {
		err = checkVersion(it, chi.URLParam(r, "version"))
	}
	h.replyItem(w, r, http.StatusOK, it, err)
}

func (h *handlers) delete(w http.ResponseWriter, r *http.Request) {
	id, err := itemID(r)
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	c := api.CallerFrom(r)
	if p := patientParam(r.URL.Query()); p != "" {
		// DELETE …?patient= (the Binary variant): the item must be that patient's.
		it, err := h.svc.Get(r.Context(), c, id)
		if err == nil && it.PatientRef != p {
			err = fail(koppeltaal.NotFound, "not-found", "%s does not exist for patient %s.", Ref(id), p)
		}
		if err != nil {
			h.a.WriteError(w, r, err)
			return
		}
	}
	if _, err := h.svc.Delete(r.Context(), c, id); err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func checkVersion(it store.StorageItem, version string) error {
	if version != "" && version != it.Version {
		return fail(koppeltaal.NotFound, "not-found", "%s has no version %s (current: %s).", Ref(it.ID), version, it.Version)
	}
	return nil
}

// replyItem answers a StorageItem with its versioned URL in Content-Location.
func (h *handlers) replyItem(w http.ResponseWriter, r *http.Request, status int, it store.StorageItem, err error) {
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	c := api.CallerFrom(r)
	loc := h.a.Base(r) + "/" + Ref(it.ID) + "/_history/" + it.Version
	w.Header().Set("Content-Location", loc)
	if status == http.StatusCreated {
		w.Header().Set("Location", loc)
	}
	h.a.WriteResource(w, r, status, Resource(it, c.AppIdent, c.DomainName))
}

// search lists the caller's items of one patient (SPEC.md §9; the parameter
// names are ours, see koppeltaal/README.md): _id, objectType, objectKey[:exact|:startswith|:contains],
// lastModified (repeatable, prefixes gt ge lt le eq or > >= < <=), _sort[:asc|:desc]=lastModified, _count, page.
func (h *handlers) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	sq, count, page, err := h.storageQuery(q)
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	items, total, err := h.svc.Search(r.Context(), api.CallerFrom(r), sq)
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	h.a.WriteBundle(w, r, http.StatusOK, h.bundle(r, items, total, page, count))
}

func (h *handlers) storageQuery(q url.Values) (store.StorageQuery, int, int, error) {
	cfg := h.a.Service().Config()
	sq := store.StorageQuery{Patient: patientParam(q), ObjectType: q.Get("objectType")}
	if v := q.Get("_id"); v != "" {
		id, err := strconv.ParseInt(strings.TrimPrefix(v, dstu1.KindStorageItem+":"), 10, 64)
		if err != nil || id <= 0 {
			return sq, 0, 0, fail(koppeltaal.Invalid, "value", "_id %q is not a storage item id.", v)
		}
		sq.ID = id
	}
	for param, m := range map[string]store.Match{"objectKey": store.MatchEquals, "objectKey:exact": store.MatchEquals,
		"objectKey:startswith": store.MatchPrefix, "objectKey:contains": store.MatchContains} {
		if v := q.Get(param); v != "" {
			if sq.ObjectKey != "" {
				return sq, 0, 0, fail(koppeltaal.Invalid, "value", "Give one objectKey parameter (objectKey, objectKey:startswith or objectKey:contains).")
			}
			sq.ObjectKey, sq.KeyMatch = v, m
		}
	}
	for _, v := range q["lastModified"] {
		if err := lastModified(&sq, v); err != nil {
			return sq, 0, 0, err
		}
	}
	for param, desc := range map[string]bool{"_sort": false, "_sort:asc": false, "_sort:desc": true} {
		v := q.Get(param)
		if v == "" {
			continue
		}
		if strings.HasPrefix(v, "-") {
			v, desc = v[1:], true
		}
		if v != "lastModified" && v != "_lastUpdated" {
			return sq, 0, 0, fail(koppeltaal.Invalid, "not-supported", "Storage items sort by lastModified only (got %s=%s).", param, v)
		}
		sq.Descending = desc
	}
	count, _ := strconv.Atoi(q.Get("_count"))
	if count <= 0 {
		count = cfg.DefaultCount
	}
	count = min(count, cfg.MaxCount)
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	sq.Offset, sq.Limit = (page-1)*count, count
	return sq, count, page, nil
}

// lastModified applies one lastModified parameter ("gt2024-01-01T00:00:00Z", ">=…", "…").
func lastModified(sq *store.StorageQuery, v string) error {
	op := "eq"
	for _, p := range []struct{ prefix, op string }{{">=", "ge"}, {"<=", "le"}, {">", "gt"}, {"<", "lt"},
		{"gt", "gt"}, {"ge", "ge"}, {"lt", "lt"}, {"le", "le"}, {"eq", "eq"}} {
		if rest, ok := strings.CutPrefix(v, p.prefix); ok {
			op, v = p.op, rest
			break
		}
	}
	t, err := parseInstant(v)
	if err != nil {
		return fail(koppeltaal.Invalid, "value", "lastModified %q: want [gt|ge|lt|le|eq]<instant>, e.g. ge2024-05-01T00:00:00Z.", v)
	}
	us := t.UnixMicro()
	switch op {
	case "gt":
		sq.UpdatedAfter, sq.AfterInclusive = us, false
	case "ge":
		sq.UpdatedAfter, sq.AfterInclusive = us, true
	case "lt":
		sq.UpdatedBefore, sq.BeforeInclusive = us, false
	case "le":
		sq.UpdatedBefore, sq.BeforeInclusive = us, true
	default:
		sq.UpdatedAfter, sq.AfterInclusive, sq.UpdatedBefore, sq.BeforeInclusive = us, true, us, true
	}
	return nil
}

func parseInstant(v string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("not an instant")
}

func (h *handlers) bundle(r *http.Request, items []store.StorageItem, total, page, count int) *dstu1.Bundle {
	base := h.a.Base(r)
	c := api.CallerFrom(r)
	b := dstu1.NewBundle("urn:uuid:" + uuid.NewString())
	b.Title = "Search on resources in collection 'Other'"
	b.Updated = time.Now().UTC().Format(time.RFC3339)
	b.Authors = []dstu1.Person{{Name: "Koppelpoort"}}
	b.TotalResults, b.HasTotal = strconv.Itoa(total), true
	b.SetLink("fhir-base", base)
	q := r.URL.Query()
	q.Del("page")
	self := base + strings.TrimPrefix(r.URL.Path, api.Prefix) + "?" + q.Encode()
	b.SetLink("self", fmt.Sprintf("%s&page=%d", self, page))
	if page > 1 {
		b.SetLink("previous", fmt.Sprintf("%s&page=%d", self, page-1))
	}
	if page*count < total {
		b.SetLink("next", fmt.Sprintf("%s&page=%d", self, page+1))
	}
	for _, it := range items {
		e := b.AddEntry(Resource(it, c.AppIdent, c.DomainName), base+"/"+Ref(it.ID), base+"/"+Ref(it.ID)+"/_history/"+it.Version)
		e.SetTitle("StorageItem " + strconv.FormatInt(it.ID, 10))
		e.SetUpdated(instant(it.UpdatedAt))
	}
	return b
}

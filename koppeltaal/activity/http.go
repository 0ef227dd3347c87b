package activity

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
)

// Extension registers the ActivityDefinition endpoints in the FHIR route
// group; pass it in api.Options.Extensions.
func (g *Registry) Extension(s *api.Server, r chi.Router) {
	h := &handlers{g: g, s: s}
	s.HandleOther(dstu1.KindActivityDefinition, api.OtherHandlers{Search: h.search, Create: h.create, Read: h.read, Update: h.update})
}

type handlers struct {
	g *Registry
	s *api.Server
}

func (h *handlers) search(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if code := q.Get("code"); code != dstu1.KindActivityDefinition {
		h.s.WriteError(w, r, fail(koppeltaal.Invalid, "not-supported",
			"Searching Other needs code=ActivityDefinition or code=StorageItem (got %q).", code))
		return
	}
	inc := strings.ToLower(q.Get("includearchived"))
	includeArchived := inc == "yes" || inc == "true"
	defs, err := h.g.List(r.Context(), api.CallerFrom(r), includeArchived)
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	base := h.s.Base(r)
	b := dstu1.NewBundle("urn:uuid:" + uuid.NewString())
	b.Title = "Search on resources in collection 'Other'"
	b.Updated = time.Now().UTC().Format(time.RFC3339)
	b.Authors = []dstu1.Person{{Name: "Koppelpoort"}}
	b.TotalResults, b.HasTotal = strconv.Itoa(len(defs)), true
	b.SetLink("fhir-base", base)
	self := base + "/Other/_search?code=ActivityDefinition"
	if includeArchived {
		self += "&includearchived=yes"
	}
	b.SetLink("self", self)
	for _, d := range defs {
		if err := addEntry(b, d, base); err != nil {
			h.s.WriteError(w, r, err)
			return
		}
	}
	h.s.WriteBundle(w, r, http.StatusOK, b)
}

func addEntry(b *dstu1.Bundle, d Definition, base string) error {
	res, err := d.Resource()
	if err != nil {
		return fmt.Errorf("stored activity definition %d does not parse: %w", d.ID, err)
	}
	e := b.AddEntry(res, base+"/"+d.Ref(), base+"/"+d.Ref()+"/_history/"+d.Version)
	e.SetTitle("ActivityDefinition " + d.Identifier)
	e.SetUpdated(time.UnixMicro(d.UpdatedAt).UTC().Format(time.RFC3339))
	return nil
}

// parseRef reads the id from "ActivityDefinition:<n>" (or a bare "<n>").
func parseRef(ref string) (int64, error) {
	n := strings.TrimPrefix(ref, dstu1.KindActivityDefinition+":")
	id, err := strconv.ParseInt(n, 10, 64)
	if err != nil || id <= 0 {
		return 0, fail(koppeltaal.NotFound, "not-found", "Other/%s is not an ActivityDefinition of this server (want Other/ActivityDefinition:<id>).", ref)
	}
	return id, nil
}

func (h *handlers) read(w http.ResponseWriter, r *http.Request) {
	id, err := parseRef(chi.URLParam(r, "ref"))
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	var d Definition
	if v := chi.URLParam(r, "version"); v != "" {
		d, err = h.g.Version(r.Context(), api.CallerFrom(r), id, v)
	} else {
		d, err = h.g.Get(r.Context(), api.CallerFrom(r), id)
	}
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	res, err := d.Resource()
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Location", h.s.Base(r)+"/"+d.Ref()+"/_history/"+d.Version)
	h.s.WriteResource(w, r, http.StatusOK, res)
}

// body reads the posted resource (a lone Other; a one-entry feed is tolerated).
func (h *handlers) body(w http.ResponseWriter, r *http.Request) (*dstu1.Resource, error) {
	body, f, err := h.s.ReadBody(w, r)
	if err != nil {
		return nil, err
	}
	res, err := h.g.limits.ParseResource(body, f)
	if err == nil {
		return res, nil
	}
	if b, berr := h.g.limits.ParseBundle(body, f); berr == nil && len(b.Entries) == 1 && b.Entries[0].Resource != nil {
		return b.Entries[0].Resource, nil
	}
	if errors.Is(err, dstu1.ErrTooLarge) {
		return nil, fail(koppeltaal.TooLarge, "too-costly", "%v", err)
	}
	return nil, fail(koppeltaal.Invalid, "structure", "The ActivityDefinition cannot be parsed: %v", err)
}

func (h *handlers) create(w http.ResponseWriter, r *http.Request) {
	if code := r.URL.Query().Get("code"); code != "" && code != dstu1.KindActivityDefinition {
		h.s.WriteError(w, r, fail(koppeltaal.Invalid, "not-supported", "Other with code=%s is not supported; only ActivityDefinition.", code))
		return
	}
	res, err := h.body(w, r)
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	d, err := h.g.Create(r.Context(), api.CallerFrom(r), res, h.s.Base(r))
	h.reply(w, r, http.StatusCreated, d, err)
}

func (h *handlers) update(w http.ResponseWriter, r *http.Request) {
	id, err := parseRef(chi.URLParam(r, "ref"))
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	res, err := h.body(w, r)
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	d, err := h.g.Update(r.Context(), api.CallerFrom(r), id, chi.URLParam(r, "version"), res, h.s.Base(r))
	h.reply(w, r, http.StatusOK, d, err)
}

// reply answers a write with the versioned URL in Content-Location (what the
// clients read) and Location, and the stored resource as body.
func (h *handlers) reply(w http.ResponseWriter, r *http.Request, status int, d Definition, err error) {
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	res, err := d.Resource()
	if err != nil {
		h.s.WriteError(w, r, err)
		return
	}
	loc := h.s.Base(r) + "/" + d.Ref() + "/_history/" + d.Version
	w.Header().Set("Content-Location", loc)
	w.Header().Set("Location", loc)
	h.s.WriteResource(w, r, status, res)
}

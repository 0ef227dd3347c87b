package api

import (
	"net/http"
	"slices"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
)

// OtherHandlers serve one kind of Other resource (an OtherResourceUsage code
// such as ActivityDefinition or StorageItem) under /Other. A nil handler
// answers 405. Handlers run after authentication.
type OtherHandlers struct {
	Search, Create, Read, Update, Delete http.HandlerFunc
}

// HandleOther registers the handlers of one kind of Other resource; call it
// from an extension (api.Options.Extensions). The server owns the /Other
// routes and picks the kind of a request from the reference's "<Kind>:"
// prefix (Other/StorageItem:12), else the code parameter, else
// ActivityDefinition (what deployed clients send without a code).
func (s *Server) HandleOther(kind string, h OtherHandlers) {
	if s.other == nil {
		s.other = map[string]OtherHandlers{}
	}
	if _, dup := s.other[kind]; dup {
		panic("koppeltaal api: Other kind " + kind + " registered twice")
	}
	s.other[kind] = h
}

// mountOther registers /Other routes that dispatch on the kind.
func (s *Server) mountOther(r chi.Router) {
	if len(s.other) == 0 {
		return
	}
	pick := func(sel func(OtherHandlers) http.HandlerFunc) http.HandlerFunc {
		return s.auth(func(w http.ResponseWriter, r *http.Request) {
			kind := otherKind(r)
			h, ok := s.other[kind]
			if !ok {
				kinds := make([]string, 0, len(s.other))
				for k := range s.other {
					kinds = append(kinds, k)
				}
				slices.Sort(kinds)
				s.writeError(w, r, fail(koppeltaal.Invalid, "not-supported", "Other resources coded %q are not supported; this server handles %s.", kind, strings.Join(kinds, ", ")))
				return
			}
			if f := sel(h); f != nil {
				f(w, r)
				return
			}
			s.writeError(w, r, fail(koppeltaal.NotAllowed, "not-supported", "%s is not allowed on %s resources.", r.Method, kind))
		})
	}
	search := pick(func(h OtherHandlers) http.HandlerFunc { return h.Search })
	read := pick(func(h OtherHandlers) http.HandlerFunc { return h.Read })
	update := pick(func(h OtherHandlers) http.HandlerFunc { return h.Update })
	r.Get("/Other/_search", search)
	r.Get("/Other", search)
	r.Post("/Other", pick(func(h OtherHandlers) http.HandlerFunc { return h.Create }))
	r.Get("/Other/{ref}", read)
	r.Get("/Other/{ref}/_history/{version}", read)
	r.Put("/Other/{ref}", update)
	r.Put("/Other/{ref}/_history/{version}", update)
	r.Delete("/Other/{ref}", pick(func(h OtherHandlers) http.HandlerFunc { return h.Delete }))
}

// otherKind is the kind a request on /Other is about.
func otherKind(r *http.Request) string {
	if kind, _, ok := strings.Cut(chi.URLParam(r, "ref"), ":"); ok {
		return kind
	}
	if code := r.URL.Query().Get("code"); code != "" {
		return code
	}
	return dstu1.KindActivityDefinition
}

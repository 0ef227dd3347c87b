package server

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"
)

// routable are the methods a router is asked about for an Allow header.
var routable = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
	http.MethodDelete, http.MethodOptions}

// Allow is the value of an Allow header (RFC 9110 §10.2.1) for path on
// routes, a router whose paths are relative to prefix: the methods it has a
// route for. "" when it has none.
func Allow(routes chi.Routes, prefix, path string) string {
	if routes == nil {
		return ""
	}
	path = strings.TrimSuffix(strings.TrimPrefix(path, prefix), "/")
	if path == "" {
		path = "/"
	}
	var ms []string
	for _, m := range routable {
		if routes.Match(chi.NewRouteContext(), m, path) {
			ms = append(ms, m)
		}
	}
	return strings.Join(ms, ", ")
}

// WriteStatusUnder is the body of a StatusWriter for an API mounted at prefix
// with routes: for a path under prefix it sets Cache-Control no-store (and
// Allow for a 405) and calls write with the status and a sentence saying what
// was wrong (api names the API, e.g. "Koppeltaal"); it reports whether the
// path was under prefix.
func WriteStatusUnder(w http.ResponseWriter, r *http.Request, status int, prefix string, routes chi.Routes, api string,
	write func(status int, detail string)) bool {
	if r.URL.Path != prefix && !strings.HasPrefix(r.URL.Path, prefix+"/") {
		return false
	}
	w.Header().Set("Cache-Control", "no-store")
	if status == http.StatusMethodNotAllowed {
		if allow := Allow(routes, prefix, r.URL.Path); allow != "" {
			w.Header().Set("Allow", allow)
		}
		write(status, r.Method+" is not allowed on "+r.URL.Path+".")
		return true
	}
	write(status, r.Method+" "+r.URL.Path+" is not "+api+" endpoint of this server.")
	return true
}

// NoStore marks every reply as not to be kept by any cache (replies carrying
// patient data, codes or tokens, and errors that echo a request).
func NoStore(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

package oauth

import (
	"net/http"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
)

// dynamicCORS lets configured browser origins call the wrapped endpoints (metadata, Token, the FHIR API):
// it answers preflight requests itself and adds the Access-Control headers to the others. Requests from
// other origins pass through without CORS headers, so the browser blocks them. The origins are asked for
// at every request (they change at runtime).
func dynamicCORS(origins func() []string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			origin := r.Header.Get("Origin")
			if origin == "" || !allowedOrigin(origins(), origin) {
				next.ServeHTTP(w, r)
				return
			}
			h := w.Header()
			h.Add("Vary", "Origin")
			h.Set("Access-Control-Allow-Origin", origin)
			h.Set("Access-Control-Expose-Headers", "Content-Location, Location, WWW-Authenticate")
			if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
				h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
				h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, Accept")
				h.Set("Access-Control-Max-Age", "600")
				w.WriteHeader(http.StatusNoContent)
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// Extension adds CORS for the configured origins to the FHIR API (metadata
// included); pass it in api.Options.Extensions before extensions that add routes.
func (s *Server) Extension(_ *api.Server, r chi.Router) { r.Use(dynamicCORS(s.Origins)) }

// Origins collects the allowed_origins of every application (as stored now).
func (s *Server) Origins() []string {
	_, origins, _ := s.loadClients()
	return origins
}

func allowedOrigin(origins []string, origin string) bool {
	for _, o := range origins {
		if strings.TrimSuffix(o, "/") == origin {
			return true
		}
	}
	return false
}

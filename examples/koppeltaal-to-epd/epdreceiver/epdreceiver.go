// Package epdreceiver is a small stand-in for an EPD's REST API, used by the koppeltaal-to-epd example:
// PUT /api/activities/{id} stores the activity status it receives (once per Idempotency-Key) and
// GET /api/activities lists what arrived.
package epdreceiver

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"sync"
)

// Receiver holds the received activity updates in memory.
type Receiver struct {
	// Token is the bearer token callers must send.
	Token string

	mu      sync.Mutex
	byID    map[string]map[string]any
	seenKey map[string]bool
	calls   int
}

// New returns a receiver that expects the bearer token.
func New(token string) *Receiver {
	return &Receiver{Token: token, byID: map[string]map[string]any{}, seenKey: map[string]bool{}}
}

// ServeHTTP implements the two endpoints.
func (rc *Receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if r.Header.Get("Authorization") != "Bearer "+rc.Token {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte(`{"error":"unauthorized"}`))
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/api/activities":
		json.NewEncoder(w).Encode(rc.list())
	case r.Method == http.MethodPut && strings.HasPrefix(r.URL.Path, "/api/activities/"):
		rc.calls++
		id := strings.TrimPrefix(r.URL.Path, "/api/activities/")
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || id == "" {
			w.WriteHeader(http.StatusBadRequest)
			w.Write([]byte(`{"error":"want a JSON object"}`))
			return
		}
		if key := r.Header.Get("Idempotency-Key"); key != "" {
			if rc.seenKey[key] {
				w.WriteHeader(http.StatusOK)
				w.Write([]byte(`{"status":"already received"}`))
				return
			}
			rc.seenKey[key] = true
		}
		rc.byID[id] = body
		w.WriteHeader(http.StatusCreated)
		w.Write([]byte(`{"status":"stored"}`))
	default:
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"error":"not found"}`))
	}
}

// Activities returns a copy of what arrived, by activity id.
func (rc *Receiver) Activities() map[string]map[string]any {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := map[string]map[string]any{}
	for k, v := range rc.byID {
		out[k] = v
	}
	return out
}

func (rc *Receiver) list() []map[string]any {
	ids := make([]string, 0, len(rc.byID))
	for id := range rc.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]map[string]any, 0, len(ids))
	for _, id := range ids {
		out = append(out, map[string]any{"id": id, "update": rc.byID[id]})
	}
	return out
}

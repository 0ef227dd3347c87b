package httplog

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// Filter selects entries for Query; zero fields do not filter.
type Filter struct {
	From, To    time.Time // requests started at or after From, before To
	Caller      string    // instance user name, OAuth client or administrator
	StatusClass int       // 2, 3, 4 or 5: only 2xx, 3xx, 4xx or 5xx replies
	Failed      bool      // only status >= 400
	PathPrefix  string    // e.g. /FHIR/Koppeltaal/MessageHeader
	RequestID   string    // the X-Request-Id of one request
	Cursor      string    // the next cursor of the page before; "" for the newest
	Limit       int       // default 100, at most 1000
	Bodies      bool      // read the kept bodies too
	// Visible, when set, keeps only the requests of its callers (an administrator's scope, the Support API).
	Visible *Scope
}

// Scope is whose requests a limited reader sees (store.HTTPLogScope): callers in
// Domains, the Instances (user names) and the OAuth Clients. Empty: nothing.
type Scope = store.HTTPLogScope

// ParseStatus reads a status filter: a class ("2xx" to "5xx") or "failed"
// (4xx and 5xx), as Filter.StatusClass and Filter.Failed; "" is no filter.
func ParseStatus(s string) (class int, failed bool, err error) {
	switch s = strings.ToLower(strings.TrimSpace(s)); {
	case s == "":
		return 0, false, nil
	case s == "failed":
		return 0, true, nil
	case len(s) == 3 && s[1:] == "xx" && s[0] >= '1' && s[0] <= '5':
		return int(s[0] - '0'), false, nil
	}
	return 0, false, fmt.Errorf("status %q: want 1xx to 5xx or failed", s)
}

// MaxLimit bounds a page of Query.
const MaxLimit = 1000

// Query returns the entries matching f, newest first, and the cursor of the
// next page ("" after the last). Each filter is served by an index of
// migration 0020. It is the read side the CLI and the Support API share.
func Query(ctx context.Context, st *store.Store, f Filter) ([]Entry, string, error) {
	sf := store.HTTPLogFilter{Caller: f.Caller, PathPrefix: f.PathPrefix, RequestID: f.RequestID, Limit: f.Limit,
		WithBodies: f.Bodies, Visible: f.Visible}
	if !f.From.IsZero() {
		sf.From = f.From.UnixMicro()
	}
	if !f.To.IsZero() {
		sf.To = f.To.UnixMicro()
	}
	switch {
	case f.StatusClass != 0 && (f.StatusClass < 1 || f.StatusClass > 5):
		return nil, "", fmt.Errorf("httplog: status class %d: want 1 to 5 (1xx to 5xx)", f.StatusClass)
	case f.StatusClass != 0:
		sf.StatusMin, sf.StatusMax = f.StatusClass*100, f.StatusClass*100+100
	}
	if f.Failed && sf.StatusMin < 400 {
		sf.StatusMin = 400
	}
	if sf.Limit <= 0 {
		sf.Limit = 100
	}
	if sf.Limit > MaxLimit {
		sf.Limit = MaxLimit
	}
	if f.Cursor != "" {
		at, id, err := parseCursor(f.Cursor)
		if err != nil {
			return nil, "", err
		}
		sf.BeforeAt, sf.BeforeID = at, id
	}
	rows, err := st.QueryHTTPLog(ctx, sf)
	if err != nil {
		return nil, "", err
	}
	out := make([]Entry, len(rows))
	for i, r := range rows {
		out[i] = entryOf(r)
	}
	next := ""
	if len(rows) == sf.Limit {
		next = out[len(out)-1].Cursor()
	}
	return out, next, nil
}

// Get returns entry id with its kept bodies; store.ErrNotFound when there is
// none (never logged, or removed after its retention).
func Get(ctx context.Context, st *store.Store, id int64) (Entry, error) {
	r, err := st.HTTPLogEntry(ctx, id)
	if err != nil {
		return Entry{}, err
	}
	return entryOf(r), nil
}

func entryOf(r store.HTTPLogRow) Entry {
	return Entry{ID: r.ID, At: time.UnixMicro(r.At).UTC(), Method: r.Method, Path: r.Path, Query: r.Query,
		Caller: Caller{Kind: r.CallerKind, Name: r.Caller, Domain: r.Domain}, Status: r.Status,
		Duration: time.Duration(r.DurationUS) * time.Microsecond, RequestID: r.RequestID, SourceIP: r.SourceIP,
		RequestBody: string(r.RequestBody), ResponseBody: string(r.ResponseBody)}
}

// Cursor is the Filter.Cursor of the entries older than e (Query's order: newest first).
func (e Entry) Cursor() string { return fmt.Sprintf("%d.%d", e.At.UnixMicro(), e.ID) }

// parseCursor reads a cursor of Query: "<at µs>.<id>".
func parseCursor(c string) (at, id int64, err error) {
	a, b, ok := strings.Cut(c, ".")
	if ok {
		at, err = strconv.ParseInt(a, 10, 64)
		if err == nil {
			id, err = strconv.ParseInt(b, 10, 64)
		}
	}
	if !ok || err != nil || at <= 0 || id <= 0 {
		return 0, 0, fmt.Errorf("httplog: cursor %q is not one Query returned", c)
	}
	return at, id, nil
}

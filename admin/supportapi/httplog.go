package supportapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/koppelpoort/koppelpoort/admin/jsonapi"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/store"
)

// httpLogResource is HttpLog, the HTTP request log (the old server's IntegrationMessageLogs, SPEC.md
// §10.1/§11): read-only, newest first, read through httplog.Query — the read `koppelpoort httplog` uses.
func (a *API) httpLogResource() Resource {
	return Resource{Type: "HttpLog", Query: a.queryHTTPLog, Get: a.getHTTPLog,
		NotAllowed: map[string]string{"POST": "the server logs every request itself", "PATCH": "the log is read-only",
			"DELETE": "entries are removed after http_log.success_days or failure_days"}}
}

// httpLogFilters are the filters HttpLog takes: attribute → the operators allowed.
var httpLogFilters = map[string][]string{
	"At": {"ge", "gt", "lt", "le"}, "Caller": {"eq"}, "Status": {"eq"}, "Path": {"startswith"}, "RequestId": {"eq"}, "id": {"lt"},
}

// maxHTTPLogDepth bounds offset + page: one entry more than the page is read to know whether there is a next.
const maxHTTPLogDepth = httplog.MaxLimit - 1

// httpLogScope is whose requests the caller sees (nil: all). A system administrator sees every request,
// unauthenticated ones and administrators' included; a domain administrator those of the callers in its
// domains (instances, their Bearer tokens); an application administrator those of its applications'
// instances (in any domain) and OAuth clients (Bearer tokens, Authorize, Token). Administrators' own
// requests and unauthenticated ones name no domain: only system administrators see them.
func httpLogScope(v *view) *httplog.Scope {
	if v.scope.All {
		return nil
	}
	s := &httplog.Scope{}
	for _, id := range v.scope.DomainIDs {
		if d, ok := v.domains[id]; ok {
			s.Domains = append(s.Domains, d.Name)
		}
	}
	for _, id := range v.scope.ApplicationIDs {
		if app, ok := v.apps[id]; ok {
			s.Clients = append(s.Clients, app.Ident)
		}
	}
	for _, in := range v.insts {
		if v.scope.HasApplication(in.ApplicationID) {
			s.Instances = append(s.Instances, in.Username)
		}
	}
	return s
}

func sees(s *httplog.Scope, e httplog.Entry) bool {
	return s == nil || s.Sees(e.Caller.Kind, e.Caller.Name, e.Caller.Domain)
}

// httpLogFilter turns the JSON:API query into an httplog.Filter within scope.
func (a *API) httpLogFilter(ctx context.Context, scope *httplog.Scope, q jsonapi.Query) (httplog.Filter, error) {
	f := httplog.Filter{Visible: scope}
	var errs jsonapi.Errors
	bad := func(param, format string, args ...any) {
		errs = append(errs, jsonapi.Error{Status: "400", Title: "Invalid filter", Detail: fmt.Sprintf(format, args...),
			Source: &jsonapi.ErrorSource{Parameter: param}})
	}
	if q.Search != "" || len(q.Sort) > 0 {
		bad("search", "HttpLog takes filters, not search or sort (newest first)")
	}
	for _, fl := range q.Filters {
		param := "filter[" + fl.Attr + "][" + fl.Op + "]"
		ops, ok := httpLogFilters[fl.Attr]
		if !ok || !contains(ops, fl.Op) {
			bad(param, "HttpLog filters: At (ge, gt, lt, le), Caller, Status (2xx..5xx or failed), RequestId (eq), Path (startswith), id (lt)")
			continue
		}
		if len(fl.Values) != 1 {
			bad(param, "one value per HttpLog filter")
			continue
		}
		val := fl.Values[0]
		switch fl.Attr {
		case "At":
			t, err := jsonapi.ParseTime(val)
			if err != nil {
				bad(param, "At %q: want RFC 3339 (2026-12-01T10:00:00Z) or a date", val)
				continue
			}
			switch fl.Op {
			case "ge":
				f.From = t
			case "gt":
				f.From = t.Add(time.Microsecond)
			case "lt":
				f.To = t
			case "le":
				f.To = t.Add(time.Microsecond)
			}
		case "Caller":
			f.Caller = val
		case "Status":
			var err error
			if f.StatusClass, f.Failed, err = httplog.ParseStatus(val); err != nil {
				bad(param, "%v", err)
			}
		case "Path":
			f.PathPrefix = val
		case "RequestId":
			f.RequestID = val
		case "id":
			// Keyset paging: older than entry id in the log's order (start time, id).
			n, err := strconv.ParseInt(val, 10, 64)
			if err != nil || n < 1 {
				bad(param, "id %q is not an HttpLog id", val)
				continue
			}
			e, err := httplog.Get(ctx, a.st, n)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return f, err
			}
			if err != nil || !sees(scope, e) {
				bad(param, "entry %d is not in the log (removed after its retention?); start again from the newest", n)
				continue
			}
			f.Cursor = e.Cursor()
		}
	}
	if len(errs) > 0 {
		return f, errs
	}
	return f, nil
}

func (a *API) queryHTTPLog(ctx context.Context, _ *http.Request, q jsonapi.Query) ([]jsonapi.Resource, int, bool, error) {
	if q.Offset()+q.Size > maxHTTPLogDepth {
		return nil, 0, false, jsonapi.Error{Status: "400", Title: "Page too deep",
			Detail: fmt.Sprintf("pages go %d entries deep; narrow the search or page with filter[id][lt]=<oldest id seen>", maxHTTPLogDepth),
			Source: &jsonapi.ErrorSource{Parameter: "page[number]"}}
	}
	var scope *httplog.Scope
	if err := a.withView(ctx, func(_ *store.Tx, v *view) error { scope = httpLogScope(v); return nil }); err != nil {
		return nil, 0, false, err
	}
	f, err := a.httpLogFilter(ctx, scope, q)
	if err != nil {
		return nil, 0, false, err
	}
	f.Limit = q.Offset() + q.Size + 1
	entries, _, err := httplog.Query(ctx, a.st, f)
	if err != nil {
		return nil, 0, false, err
	}
	more := len(entries) > q.Offset()+q.Size
	entries = entries[min(q.Offset(), len(entries)):min(q.Offset()+q.Size, len(entries))]
	out := make([]jsonapi.Resource, len(entries))
	for i, e := range entries {
		out[i] = httpLogOut(e, false)
	}
	return out, -1, more, nil
}

// getHTTPLog reads one entry with the bodies http_log.bodies kept; reading bodies is audited (patient data).
func (a *API) getHTTPLog(ctx context.Context, id string) (jsonapi.Resource, error) {
	n, err := ParseID(id)
	if err != nil {
		return jsonapi.Resource{}, err
	}
	var scope *httplog.Scope
	var domainID int64
	e, err := httplog.Get(ctx, a.st, n)
	if errors.Is(err, store.ErrNotFound) {
		return jsonapi.Resource{}, jsonapi.ErrNotFound
	} else if err != nil {
		return jsonapi.Resource{}, err
	}
	err = a.withView(ctx, func(_ *store.Tx, v *view) error {
		scope = httpLogScope(v)
		for _, d := range v.domains {
			if d.Name == e.Caller.Domain {
				domainID = d.ID
			}
		}
		return nil
	})
	if err != nil {
		return jsonapi.Resource{}, err
	}
	if !sees(scope, e) {
		return jsonapi.Resource{}, jsonapi.ErrNotFound
	}
	if e.RequestBody != "" || e.ResponseBody != "" {
		a.AuditRead(ctx, "HttpLog/"+id, domainID, "with bodies", "")
	}
	return httpLogOut(e, true), nil
}

// httpLogOut renders an entry; detail adds the kept bodies.
func httpLogOut(e httplog.Entry, detail bool) jsonapi.Resource {
	at := map[string]any{"At": e.At.Format(time.RFC3339Nano), "Method": e.Method, "Path": e.Path, "Query": e.Query,
		"CallerKind": e.Caller.Kind, "Caller": e.Caller.Name, "Domain": e.Caller.Domain, "Status": e.Status,
		"DurationMs": float64(e.Duration.Microseconds()) / 1000, "RequestId": e.RequestID, "SourceIp": e.SourceIP}
	if detail {
		at["RequestBody"], at["ResponseBody"] = e.RequestBody, e.ResponseBody
	}
	return jsonapi.Resource{Type: "HttpLog", ID: strconv.FormatInt(e.ID, 10), Attributes: at}
}

package jsonapi

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Operators are the filter operators of SPEC.md §11.1.
var Operators = []string{"eq", "in", "ne", "not", "gt", "ge", "lt", "le", "contains", "startswith"}

// Filter is one filter[Attr][op]=values parameter. Values holds the
// comma-separated alternatives of eq/ne/in/not (OR); repeated identical
// filters are merged into one Filter with all their values (OR as well).
type Filter struct {
	Attr   string
	Op     string
	Values []string
}

// Query is the parsed query string of a collection request.
type Query struct {
	Page, Size int
	Filters    []Filter
	Search     string
	// Sort lists attributes, "-" in front for descending (JSON:API sort=).
	Sort []string
}

// Paging defaults (SPEC.md §11.1: page 1, size 15).
const (
	DefaultPageSize = 15
	MaxPageSize     = 500
)

var filterParam = regexp.MustCompile(`^filter\[([A-Za-z][A-Za-z0-9_.]*)\](?:\[([a-z]+)\])?$`)

// ParseQuery reads page[number], page[size], filter[...], search and sort.
// Unknown parameters and operators are errors (with source.parameter).
func ParseQuery(v url.Values) (Query, error) {
	q := Query{Page: 1, Size: DefaultPageSize}
	var errs Errors
	bad := func(param, format string, args ...any) {
		errs = append(errs, Error{Status: "400", Title: "Invalid query parameter", Detail: fmt.Sprintf(format, args...),
			Source: &ErrorSource{Parameter: param}})
	}
	byKey := map[string]int{}
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		vals := v[k]
		switch {
		case k == "page[number]" || k == "page[size]":
			n, err := strconv.Atoi(vals[0])
			if err != nil || n < 1 {
				bad(k, "%s must be a positive integer, not %q", k, vals[0])
				continue
			}
			if k == "page[number]" {
				q.Page = n
			} else if n > MaxPageSize {
				bad(k, "page[size] %d is larger than the maximum %d", n, MaxPageSize)
			} else {
				q.Size = n
			}
		case k == "search":
			q.Search = strings.TrimSpace(vals[0])
		case k == "sort":
			for _, s := range strings.Split(vals[0], ",") {
				if s = strings.TrimSpace(s); s != "" {
					q.Sort = append(q.Sort, s)
				}
			}
		case filterParam.MatchString(k):
			m := filterParam.FindStringSubmatch(k)
			op := m[2]
			if op == "" {
				op = "eq"
			}
			if !containsStr(Operators, op) {
				bad(k, "unknown filter operator %q (want one of %s)", op, strings.Join(Operators, ", "))
				continue
			}
			var values []string
			for _, val := range vals {
				if op == "eq" || op == "ne" || op == "in" || op == "not" {
					values = append(values, strings.Split(val, ",")...)
				} else {
					values = append(values, val)
				}
			}
			key := m[1] + "\x00" + op
			if i, ok := byKey[key]; ok {
				q.Filters[i].Values = append(q.Filters[i].Values, values...)
				continue
			}
			byKey[key] = len(q.Filters)
			q.Filters = append(q.Filters, Filter{Attr: m[1], Op: op, Values: values})
		default:
			bad(k, "unknown query parameter %q (want page[number], page[size], filter[Attr], filter[Attr][op], search or sort)", k)
		}
	}
	if len(errs) > 0 {
		return q, errs
	}
	return q, nil
}

func containsStr(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// Offset is the index of the first resource on the requested page.
func (q Query) Offset() int { return (q.Page - 1) * q.Size }

// Filter returns the filter on attr with op, if any.
func (q Query) Filter(attr, op string) (Filter, bool) {
	for _, f := range q.Filters {
		if f.Attr == attr && f.Op == op {
			return f, true
		}
	}
	return Filter{}, false
}

// Apply filters, searches, sorts and pages an in-memory collection (the
// provisioning resources are small; messages are filtered in SQL). Filters on
// unknown attributes are errors. It returns the page and the total count.
func Apply(all []Resource, q Query) ([]Resource, int, error) {
	known := map[string]bool{"id": true}
	for _, r := range all {
		for k := range r.Attributes {
			known[k] = true
		}
	}
	var errs Errors
	for _, f := range q.Filters {
		if !known[f.Attr] && len(all) > 0 {
			errs = append(errs, Error{Status: "400", Title: "Invalid filter", Detail: fmt.Sprintf("%s has no attribute %q", all[0].Type, f.Attr),
				Source: &ErrorSource{Parameter: "filter[" + f.Attr + "]"}})
		}
	}
	for _, s := range q.Sort {
		if a := strings.TrimPrefix(s, "-"); !known[a] && len(all) > 0 {
			errs = append(errs, Error{Status: "400", Title: "Invalid sort", Detail: fmt.Sprintf("%s has no attribute %q", all[0].Type, a),
				Source: &ErrorSource{Parameter: "sort"}})
		}
	}
	if len(errs) > 0 {
		return nil, 0, errs
	}
	var out []Resource
	for _, r := range all {
		if matchesAll(r, q) {
			out = append(out, r)
		}
	}
	for i := len(q.Sort) - 1; i >= 0; i-- {
		attr, desc := strings.TrimPrefix(q.Sort[i], "-"), strings.HasPrefix(q.Sort[i], "-")
		sort.SliceStable(out, func(a, b int) bool {
			c := compare(valueString(attrOf(out[a], attr)), valueString(attrOf(out[b], attr)))
			if desc {
				return c > 0
			}
			return c < 0
		})
	}
	total := len(out)
	start := min(q.Offset(), total)
	end := min(start+q.Size, total)
	return out[start:end], total, nil
}

func attrOf(r Resource, name string) any {
	if name == "id" {
		return r.ID
	}
	return r.Attributes[name]
}

func matchesAll(r Resource, q Query) bool {
	for _, f := range q.Filters {
		if !Matches(attrOf(r, f.Attr), f) {
			return false
		}
	}
	if q.Search == "" {
		return true
	}
	needle := strings.ToLower(q.Search)
	if strings.Contains(strings.ToLower(r.ID), needle) {
		return true
	}
	for _, v := range r.Attributes {
		if strings.Contains(strings.ToLower(valueString(v)), needle) {
			return true
		}
	}
	return false
}

// Matches reports whether an attribute value passes f. Lists (roles,
// subscriptions) match when any element does for eq/in/contains/startswith,
// and when none does for ne/not.
func Matches(v any, f Filter) bool {
	if list, ok := v.([]string); ok {
		any := false
		for _, e := range list {
			if Matches(e, Filter{Attr: f.Attr, Op: positive(f.Op), Values: f.Values}) {
				any = true
				break
			}
		}
		if f.Op == "ne" || f.Op == "not" {
			return !any
		}
		return any
	}
	s := valueString(v)
	switch f.Op {
	case "eq", "in":
		return containsFold(f.Values, s)
	case "ne", "not":
		return !containsFold(f.Values, s)
	case "contains":
		return strings.Contains(strings.ToLower(s), strings.ToLower(f.Values[0]))
	case "startswith":
		return strings.HasPrefix(strings.ToLower(s), strings.ToLower(f.Values[0]))
	case "gt":
		return compare(s, f.Values[0]) > 0
	case "ge":
		return compare(s, f.Values[0]) >= 0
	case "lt":
		return compare(s, f.Values[0]) < 0
	case "le":
		return compare(s, f.Values[0]) <= 0
	}
	return false
}

func positive(op string) string {
	if op == "ne" || op == "not" {
		return "eq"
	}
	return op
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// compare orders numbers numerically, times chronologically and the rest as text.
func compare(a, b string) int {
	if fa, err := strconv.ParseFloat(a, 64); err == nil {
		if fb, err := strconv.ParseFloat(b, 64); err == nil {
			switch {
			case fa < fb:
				return -1
			case fa > fb:
				return 1
			}
			return 0
		}
	}
	if ta, err := time.Parse(time.RFC3339Nano, a); err == nil {
		if tb, err := parseTimeLoose(b); err == nil {
			return ta.Compare(tb)
		}
	}
	return strings.Compare(a, b)
}

// parseTimeLoose accepts RFC 3339 or a date (2026-12-01).
func parseTimeLoose(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Parse("2006-01-02", s)
}

// ParseTime parses a filter value as a time: RFC 3339 or a date (midnight UTC).
func ParseTime(s string) (time.Time, error) { return parseTimeLoose(s) }

func valueString(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	case int64:
		return strconv.FormatInt(x, 10)
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case []string:
		return strings.Join(x, ",")
	default:
		return fmt.Sprint(x)
	}
}

// PageLinks returns self/first/prev/next/last links for a collection at
// self (the request URL) with total results; total < 0 means unknown (then
// next is given when more is true, and last is left out).
func PageLinks(r *http.Request, base string, q Query, total int, more bool) map[string]string {
	link := func(page int) string {
		v := r.URL.Query()
		v.Set("page[number]", strconv.Itoa(page))
		v.Set("page[size]", strconv.Itoa(q.Size))
		return base + r.URL.Path + "?" + strings.NewReplacer("%5B", "[", "%5D", "]").Replace(v.Encode())
	}
	links := map[string]string{"self": link(q.Page), "first": link(1)}
	if q.Page > 1 {
		links["prev"] = link(q.Page - 1)
	}
	if total >= 0 {
		last := max(1, (total+q.Size-1)/q.Size)
		links["last"] = link(last)
		if q.Page < last {
			links["next"] = link(q.Page + 1)
		}
	} else if more {
		links["next"] = link(q.Page + 1)
	}
	return links
}

// PageMeta is meta.page of a collection (total < 0: unknown, left out).
func PageMeta(q Query, total int) map[string]any {
	page := map[string]any{"number": q.Page, "size": q.Size}
	if total >= 0 {
		page["total-records"] = total
	}
	return map[string]any{"page": page}
}

// Package jsonapi is the JSON:API 1.0 wire format of the Support API (SPEC.md
// §11.1): documents, resource objects, the errors document, paging links and
// the filter/search/page query parameters, with in-memory filtering for small
// collections. It knows nothing about Koppeltaal.
package jsonapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
)

// MediaType is the JSON:API media type, for Content-Type and Accept.
const MediaType = "application/vnd.api+json"

// Version is the jsonapi member of every document.
type Version struct {
	Version string `json:"version"`
}

var v10 = Version{Version: "1.0"}

// Document is a top-level JSON:API document.
type Document struct {
	Data     any               `json:"data,omitempty"` // *Resource, []Resource
	Errors   []Error           `json:"errors,omitempty"`
	JSONAPI  Version           `json:"jsonapi"`
	Meta     map[string]any    `json:"meta,omitempty"`
	Links    map[string]string `json:"links,omitempty"`
	Included []Resource        `json:"included,omitempty"`
}

// Resource is a resource object.
type Resource struct {
	Type          string                  `json:"type"`
	ID            string                  `json:"id,omitempty"`
	Attributes    map[string]any          `json:"attributes,omitempty"`
	Relationships map[string]Relationship `json:"relationships,omitempty"`
	Links         map[string]string       `json:"links,omitempty"`
	Meta          map[string]any          `json:"meta,omitempty"`
}

// Identifier is a resource identifier object.
type Identifier struct {
	Type string `json:"type"`
	ID   string `json:"id"`
}

// Relationship is a to-one (Data *Identifier) or to-many (Data []Identifier) relationship.
type Relationship struct {
	Data  any               `json:"data"`
	Links map[string]string `json:"links,omitempty"`
}

// ToOne is a to-one relationship (nil id: empty).
func ToOne(typ, id string) Relationship {
	if id == "" {
		return Relationship{Data: nil}
	}
	return Relationship{Data: &Identifier{Type: typ, ID: id}}
}

// Error is one error object.
type Error struct {
	Status string       `json:"status"`
	Code   string       `json:"code,omitempty"`
	Title  string       `json:"title"`
	Detail string       `json:"detail,omitempty"`
	Source *ErrorSource `json:"source,omitempty"`
}

// ErrorSource points at the part of the request that is wrong.
type ErrorSource struct {
	Pointer   string `json:"pointer,omitempty"`
	Parameter string `json:"parameter,omitempty"`
}

func (e Error) Error() string {
	if e.Detail != "" {
		return e.Status + " " + e.Title + ": " + e.Detail
	}
	return e.Status + " " + e.Title
}

// Errorf builds an error object with an HTTP status, a title and a formatted detail.
func Errorf(status int, title, format string, args ...any) Error {
	return Error{Status: strconv.Itoa(status), Title: title, Detail: fmt.Sprintf(format, args...)}
}

// Errors is several error objects returned as one error.
type Errors []Error

func (es Errors) Error() string {
	msgs := make([]string, len(es))
	for i, e := range es {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "; ")
}

// Common errors.
var (
	ErrNotFound = Error{Status: "404", Title: "Resource not found"}
)

// AsErrors turns err into error objects: an Error or Errors as they are,
// anything else a 500 whose detail is not shown (it is logged by the caller).
func AsErrors(err error) []Error {
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	var e Error
	if errors.As(err, &e) {
		return []Error{e}
	}
	return []Error{{Status: "500", Title: "Internal server error", Detail: "The error is logged on the server."}}
}

// WriteErrors writes the errors document: with one error its status, with
// several 400 (SPEC.md §11.1).
func WriteErrors(w http.ResponseWriter, errs []Error) {
	status := http.StatusBadRequest
	if len(errs) == 1 {
		if n, err := strconv.Atoi(errs[0].Status); err == nil {
			status = n
		}
	}
	Write(w, status, Document{Errors: errs})
}

// Write writes doc with status and the JSON:API media type.
func Write(w http.ResponseWriter, status int, doc Document) {
	doc.JSONAPI = v10
	b, err := json.Marshal(doc)
	if err != nil {
		status = http.StatusInternalServerError
		b = []byte(`{"errors":[{"status":"500","title":"Internal server error"}],"jsonapi":{"version":"1.0"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", MediaType)
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// Request is the data member of a POST or PATCH body.
type Request struct {
	Type          string                     `json:"type"`
	ID            string                     `json:"id"`
	Attributes    map[string]json.RawMessage `json:"attributes"`
	Relationships map[string]struct {
		Data json.RawMessage `json:"data"`
	} `json:"relationships"`
	Meta struct {
		Version json.RawMessage `json:"version"`
	} `json:"meta"`
}

// VersionString returns meta.version as a string ("" when absent); numbers and strings are accepted.
func (r Request) VersionString() string {
	v := strings.TrimSpace(string(r.Meta.Version))
	if v == "" || v == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(r.Meta.Version, &s) == nil {
		return s
	}
	return v
}

// RelatedID returns the id of a to-one relationship in the request, or "".
func (r Request) RelatedID(name string) string {
	rel, ok := r.Relationships[name]
	if !ok {
		return ""
	}
	var id Identifier
	if json.Unmarshal(rel.Data, &id) != nil {
		return ""
	}
	return id.ID
}

// ReadRequest decodes a POST/PATCH body of at most limit bytes: the media
// type must be JSON:API (or application/json, for curl), the type must be
// typ, unknown top-level members are refused.
func ReadRequest(r *http.Request, typ string, limit int64) (Request, error) {
	var out Request
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, params, err := mime.ParseMediaType(ct)
		if err != nil || (mt != MediaType && mt != "application/json") {
			return out, Errorf(http.StatusUnsupportedMediaType, "Unsupported media type", "send %s", MediaType)
		}
		if mt == MediaType && len(params) > 0 { // JSON:API 1.0 §Content Negotiation
			return out, Errorf(http.StatusUnsupportedMediaType, "Unsupported media type", "%s must not have media type parameters", MediaType)
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return out, Errorf(http.StatusBadRequest, "Unreadable body", "%v", err)
	}
	if int64(len(body)) > limit {
		return out, Errorf(http.StatusRequestEntityTooLarge, "Body too large", "the body is larger than %d bytes", limit)
	}
	var doc struct {
		Data *Request `json:"data"`
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&doc); err != nil {
		return out, Error{Status: "400", Title: "Invalid document", Detail: err.Error(), Source: &ErrorSource{Pointer: ""}}
	}
	if doc.Data == nil {
		return out, Error{Status: "400", Title: "Invalid document", Detail: "the document has no data member", Source: &ErrorSource{Pointer: "/data"}}
	}
	if doc.Data.Type != typ {
		return out, Error{Status: "409", Title: "Wrong type", Detail: fmt.Sprintf("data.type is %q; this endpoint takes %q", doc.Data.Type, typ),
			Source: &ErrorSource{Pointer: "/data/type"}}
	}
	return *doc.Data, nil
}

// AttrError points at one attribute of the request.
func AttrError(status int, attr, title, format string, args ...any) Error {
	e := Errorf(status, title, format, args...)
	e.Source = &ErrorSource{Pointer: "/data/attributes/" + attr}
	return e
}

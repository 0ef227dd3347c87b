package storage

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
)

// The Binary variant (SPEC.md §3.8, named in the adapters page only): the body
// is the content itself with its Content-Type, or a FHIR Binary resource
// (Content-Type with "fhir": {"resourceType":"Binary","contentType":…,"content":<base64>}
// or <Binary xmlns="http://hl7.org/fhir" contentType="…">base64</Binary>). A
// Binary carries no patient, type or key: they are the query parameters
// patient, objectType and objectKey. A read returns the content as is, unless
// the client asks for FHIR (_format=json|xml, or an Accept naming fhir).

func (h *handlers) readBinary(w http.ResponseWriter, r *http.Request) {
	id, err := itemID(r)
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	it, err := h.svc.Get(r.Context(), api.CallerFrom(r), id)
	if err == nil {
		err = checkVersion(it, chi.URLParam(r, "version"))
	}
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	w.Header().Set("Content-Location", h.a.Base(r)+"/Binary/"+strconv.FormatInt(it.ID, 10)+"/_history/"+it.Version)
	body, ctype := it.Content, it.ContentType
	if wantsFHIR(r) {
		body, ctype = binaryResource(it, api.ResponseFormat(r) == dstu1.FormatXML)
	}
	w.Header().Set("Content-Type", ctype)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

func wantsFHIR(r *http.Request) bool {
	return r.URL.Query().Get("_format") != "" || strings.Contains(strings.ToLower(r.Header.Get("Accept")), "fhir")
}

// replyBinary answers a write with the versioned URL and no body.
func (h *handlers) replyBinary(w http.ResponseWriter, r *http.Request, status int, it store.StorageItem, err error) {
	if err != nil {
		h.a.WriteError(w, r, err)
		return
	}
	loc := h.a.Base(r) + "/Binary/" + strconv.FormatInt(it.ID, 10) + "/_history/" + it.Version
	w.Header().Set("Content-Location", loc)
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(status)
}

// readBinaryBody reads the content (raw, or a FHIR Binary) and the query parameters.
func (h *handlers) readBinaryBody(w http.ResponseWriter, r *http.Request) (Fields, error) {
	q := r.URL.Query()
	f := Fields{Patient: patientParam(q), ObjectType: q.Get("objectType"), ObjectKey: q.Get("objectKey"),
		ContentType: r.Header.Get("Content-Type")}
	// Base64 in a FHIR Binary takes 4/3 of the content, plus the envelope.
	limit := h.svc.cfg.MaxItemBytes*4/3 + 4096
	body, err := h.a.ReadRaw(w, r, limit)
	if err != nil {
		if ke := (*koppeltaal.Error)(nil); errors.As(err, &ke) && ke.Kind == koppeltaal.TooLarge {
			return f, fail(koppeltaal.TooLarge, "too-costly", "The content is larger than the limit of %d bytes per item.", h.svc.cfg.MaxItemBytes)
		}
		return f, err
	}
	f.Content = body
	if ct := strings.ToLower(f.ContentType); strings.Contains(ct, "fhir") {
		ctype, content, err := parseBinary(body, strings.Contains(ct, "xml"))
		if err != nil {
			return f, fail(koppeltaal.Invalid, "structure", "The FHIR Binary cannot be parsed: %v", err)
		}
		f.ContentType, f.Content = ctype, content
	}
	if f.ContentType == "" {
		f.ContentType = "application/octet-stream"
	}
	return f, nil
}

type xmlBinary struct {
	XMLName     xml.Name `xml:"http://hl7.org/fhir Binary"`
	ID          string   `xml:"id,attr,omitempty"`
	ContentType string   `xml:"contentType,attr"`
	Content     string   `xml:",chardata"`
}

type jsonBinary struct {
	ResourceType string `json:"resourceType"`
	ID           string `json:"id,omitempty"`
	ContentType  string `json:"contentType"`
	Content      string `json:"content"`
}

func parseBinary(body []byte, isXML bool) (contentType string, content []byte, err error) {
	var ct, b64 string
	if isXML {
		var xb xmlBinary
		if err := xml.Unmarshal(body, &xb); err != nil {
			return "", nil, err
		}
		ct, b64 = xb.ContentType, xb.Content
	} else {
		var jb jsonBinary
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&jb); err != nil {
			return "", nil, err
		}
		if jb.ResourceType != "Binary" {
			return "", nil, errors.New(`resourceType is not "Binary"`)
		}
		ct, b64 = jb.ContentType, jb.Content
	}
	content, err = base64.StdEncoding.DecodeString(strings.Join(strings.Fields(b64), ""))
	if err != nil {
		return "", nil, errors.New("content is not base64")
	}
	return ct, content, nil
}

// binaryResource renders an item as a FHIR Binary in XML or JSON.
func binaryResource(it store.StorageItem, asXML bool) ([]byte, string) {
	id := strconv.FormatInt(it.ID, 10)
	content := base64.StdEncoding.EncodeToString(it.Content)
	if asXML {
		b, _ := xml.Marshal(xmlBinary{ID: id, ContentType: it.ContentType, Content: content})
		return b, api.ContentTypeXML
	}
	b, _ := json.Marshal(jsonBinary{ResourceType: "Binary", ID: id, ContentType: it.ContentType, Content: content})
	return b, api.ContentTypeJSON
}

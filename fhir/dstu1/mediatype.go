package dstu1

import (
	"mime"
	"strings"
)

// Media types the codec writes. Koppeltaal clients accept a +fhir suffix and a charset; JSON clients need
// a JSON content type on every reply, errors included (CLIENTS.md).
const (
	MediaTypeXML  = "application/xml+fhir; charset=utf-8"
	MediaTypeJSON = "application/json+fhir; charset=utf-8"
)

// MediaType returns the Content-Type for output in format f.
func MediaType(f Format) string {
	if f == FormatJSON {
		return MediaTypeJSON
	}
	return MediaTypeXML
}

// FormatFromMediaType maps a Content-Type or Accept media type (parameters allowed) to a format:
// application/json, application/json+fhir, application/fhir+json and text/json are JSON;
// application/xml, text/xml, application/xml+fhir, application/fhir+xml and application/atom+xml are XML.
// ok is false for anything else (including empty and */*).
func FormatFromMediaType(mediaType string) (f Format, ok bool) {
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(strings.SplitN(mediaType, ";", 2)[0]))
	}
	switch mt {
	case "application/json", "application/json+fhir", "application/fhir+json", "text/json":
		return FormatJSON, true
	case "application/xml", "text/xml", "application/xml+fhir", "application/fhir+xml", "application/atom+xml":
		return FormatXML, true
	}
	return 0, false
}

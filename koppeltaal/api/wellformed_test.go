package api_test

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// wellFormed checks a reply body: XML parses with encoding/xml (strict), JSON is valid UTF-8 and valid JSON.
func wellFormed(body []byte, f dstu1.Format) error {
	if f == dstu1.FormatJSON {
		if !utf8.Valid(body) {
			return errString("invalid UTF-8")
		}
		var v any
		return json.Unmarshal(body, &v)
	}
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// TestErrorRepliesAreWellFormed (issue 16 item 6): whatever a request puts
// into a path or query — NUL, control characters, non-characters, invalid
// UTF-8 — the OperationOutcome that echoes it is well-formed XML and valid
// UTF-8 JSON.
func TestErrorRepliesAreWellFormed(t *testing.T) {
	h := newHarness(t, storetest.Backend{Name: "sqlite", DSN: t.TempDir() + "/kp.db"}, twoDomains())
	paths := []string{
		"/FHIR/Koppeltaal/MessageHeader/1%00", "/FHIR/Koppeltaal/MessageHeader/1%01", "/FHIR/Koppeltaal/MessageHeader/%EF%BF%BE",
		"/FHIR/Koppeltaal/MessageHeader/%ff%fe", "/FHIR/Koppeltaal/MessageHeader/%ED%A0%80", "/FHIR/Koppeltaal/MessageHeader/_search?_query=x%00y",
		"/FHIR/Koppeltaal/MessageHeader/_search?ProcessingStatus=x%ff", "/FHIR/Koppeltaal/MessageHeader/_search?ProcessingStatus=%1b%5b31m",
		"/FHIR/Koppeltaal/MessageHeader/_search?_id=%00", "/FHIR/Koppeltaal/nope%00%ff", "/FHIR/Koppeltaal/Other/_search?code=%00%ff",
	}
	for _, p := range paths {
		for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
			r := h.do(req{method: "GET", path: p, user: "game@a", pass: "ga", accept: ctypeOf(f)})
			if r.Status < 400 {
				t.Errorf("%s: %d", p, r.Status)
			}
			if err := wellFormed(r.Body, f); err != nil || !strings.Contains(string(r.Body), "OperationOutcome") {
				t.Errorf("%s in %v: not a well-formed OperationOutcome (%v): %q", p, f, err, r.Body)
			}
		}
	}
	// The same through a body: a PUT whose status is garbage.
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		body := `{"resourceType":"MessageHeader","extension":[{"url":"` + dstu1.ExtProcessingStatus +
			`","extension":[{"url":"` + dstu1.ExtProcessingStatus + `Status","valueCode":"x\u0000\ufffe"}]}]}`
		r := h.do(req{method: "PUT", path: "/FHIR/Koppeltaal/MessageHeader/1", user: "game@a", pass: "ga", accept: ctypeOf(f),
			ctype: "application/json", body: []byte(body)})
		if err := wellFormed(r.Body, f); err != nil || r.Status == http.StatusOK {
			t.Errorf("PUT with a garbage status in %v: %d (%v) %q", f, r.Status, err, r.Body)
		}
	}
}

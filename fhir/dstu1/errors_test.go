package dstu1

import (
	"errors"
	"strings"
	"testing"
)

func TestRejections(t *testing.T) {
	deepXML := `<Patient xmlns="http://hl7.org/fhir">` + strings.Repeat(`<extension url="u">`, 70) + strings.Repeat(`</extension>`, 70) + `</Patient>`
	deepJSON := `{"resourceType":"Patient","x":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`
	manyXML := `<Patient xmlns="http://hl7.org/fhir">` + strings.Repeat(`<identifier/>`, 50) + `</Patient>`
	tests := []struct {
		name   string
		body   string
		format Format
		limits Limits
		bundle bool
		want   error  // sentinel, or nil for "any *SyntaxError"
		where  string // substring of the error (location/path)
	}{
		{"doctype", `<!DOCTYPE feed [<!ENTITY x SYSTEM "file:///etc/passwd">]><feed xmlns="http://www.w3.org/2005/Atom">&x;</feed>`, FormatXML, Limits{}, true, ErrDTD, "line 1"},
		{"entity", `<Patient xmlns="http://hl7.org/fhir"><active value="&x;"/></Patient>`, FormatXML, Limits{}, false, nil, "line 1"},
		{"too large xml", `<Patient xmlns="http://hl7.org/fhir"/>`, FormatXML, Limits{MaxBytes: 10}, false, ErrTooLarge, ""},
		{"too large json", `{"resourceType":"Patient"}`, FormatJSON, Limits{MaxBytes: 10}, false, ErrTooLarge, ""},
		{"too deep xml", deepXML, FormatXML, Limits{}, false, ErrTooDeep, "Patient/extension/extension"},
		{"too deep json", deepJSON, FormatJSON, Limits{}, false, ErrTooDeep, "line 1"},
		{"too many elements", manyXML, FormatXML, Limits{MaxElements: 20}, false, ErrTooManyElements, "identifier"},
		{"invalid utf8 xml", "<Patient xmlns=\"http://hl7.org/fhir\">\n<name><text value=\"\xff\"/></name></Patient>", FormatXML, Limits{}, false, ErrInvalidUTF8, "line 2"},
		{"invalid utf8 json", "{\"resourceType\":\"Patient\",\n\"x\":\"\xc3\"}", FormatJSON, Limits{}, false, ErrInvalidUTF8, "line 2"},
		{"null in array", `{"resourceType":"Patient","name":[{"given":[null]}]}`, FormatJSON, Limits{}, false, ErrNullInArray, "name[0].given[0]"},
		{"null entry", `{"resourceType":"Bundle","entry":[null]}`, FormatJSON, Limits{}, true, ErrNullInArray, "entry[0]"},
		{"unknown resource xml", `<CareTeam xmlns="http://hl7.org/fhir"/>`, FormatXML, Limits{}, false, ErrNotFHIR, "CareTeam"},
		{"unknown resource json", `{"resourceType":"CareTeam"}`, FormatJSON, Limits{}, false, ErrNotFHIR, "line 1 column 17"},
		{"bundle as resource", `{"resourceType":"Bundle"}`, FormatJSON, Limits{}, false, ErrNotFHIR, ""},
		{"resource as bundle", `<Patient xmlns="http://hl7.org/fhir"/>`, FormatXML, Limits{}, true, ErrNotFHIR, "feed"},
		{"wrong namespace", `<Patient xmlns="http://hl7.org/fhir"><name xmlns="urn:x"/></Patient>`, FormatXML, Limits{}, false, ErrNotFHIR, "Patient/name"},
		{"text in resource", `<Patient xmlns="http://hl7.org/fhir">hello</Patient>`, FormatXML, Limits{}, false, ErrNotFHIR, "Patient"},
		{"value on complex", `<Patient xmlns="http://hl7.org/fhir"><gender value="male"/></Patient>`, FormatXML, Limits{}, false, ErrNotFHIR, "Patient/gender"},
		{"bad boolean", `<Patient xmlns="http://hl7.org/fhir"><active value="yes"/></Patient>`, FormatXML, Limits{}, false, ErrNotFHIR, "active"},
		{"bad number json", `{"resourceType":"Patient","extension":[{"url":"u","valueInteger":"x"}]}`, FormatJSON, Limits{}, false, ErrNotFHIR, "extension[0].valueInteger"},
		{"repeat of single", `<Patient xmlns="http://hl7.org/fhir"><active value="true"/><active value="false"/></Patient>`, FormatXML, Limits{}, false, ErrNotFHIR, "active"},
		{"array for single", `{"resourceType":"Patient","active":[true]}`, FormatJSON, Limits{}, false, ErrNotFHIR, "active"},
		{"object for primitive", `{"resourceType":"Patient","active":{"value":true}}`, FormatJSON, Limits{}, false, ErrNotFHIR, "active"},
		{"extension without url", `{"resourceType":"Patient","extension":[{"valueString":"x"}]}`, FormatJSON, Limits{}, false, ErrNotFHIR, "extension[0]"},
		{"bad narrative", `{"resourceType":"Patient","text":{"status":"generated","div":"<div xmlns=\"http://www.w3.org/1999/xhtml\"><p></div>"}}`, FormatJSON, Limits{}, false, ErrNotFHIR, "text.div"},
		{"narrative not div", `{"resourceType":"Patient","text":{"status":"generated","div":"<script>x</script>"}}`, FormatJSON, Limits{}, false, ErrNotFHIR, "text.div"},
		{"NUL in string", `{"resourceType":"Patient","language":"a\u0000b"}`, FormatJSON, Limits{}, false, ErrNotFHIR, "language"},
		{"duplicate key", `{"resourceType":"Patient","active":true,"active":false}`, FormatJSON, Limits{}, false, nil, "line 1 column 41"},
		{"trailing comma", "{\"resourceType\":\"Patient\",\n}", FormatJSON, Limits{}, false, nil, "line 2 column 1"},
		{"unclosed xml", "<Patient xmlns=\"http://hl7.org/fhir\">\n<active value=\"true\"/>", FormatXML, Limits{}, false, nil, "line 2"},
		{"two roots", `<Patient xmlns="http://hl7.org/fhir"/><Patient xmlns="http://hl7.org/fhir"/>`, FormatXML, Limits{}, false, nil, ""},
		{"two contents", `<feed xmlns="http://www.w3.org/2005/Atom"><entry><content type="text/xml"><Patient xmlns="http://hl7.org/fhir"/><Patient xmlns="http://hl7.org/fhir"/></content></entry></feed>`, FormatXML, Limits{}, true, ErrNotFHIR, "content"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.bundle {
				_, err = tt.limits.ParseBundle([]byte(tt.body), tt.format)
			} else {
				_, err = tt.limits.ParseResource([]byte(tt.body), tt.format)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("%T %v is not a *SyntaxError", err, err)
			}
			if tt.want != nil && !errors.Is(err, tt.want) {
				t.Fatalf("error %q, want %v", err, tt.want)
			}
			if !strings.Contains(err.Error(), tt.where) {
				t.Fatalf("error %q does not say where (%q)", err, tt.where)
			}
		})
	}
}

func TestNullInArrayText(t *testing.T) {
	_, err := ParseResource([]byte(`{"resourceType":"Patient","name":[{"given":[null]}]}`), FormatJSON)
	if !strings.Contains(err.Error(), "The FHIR serialization does not support arrays with empty (null) elements") {
		t.Fatalf("error text %q", err)
	}
}

// A null in a primitive array is legal when "_name" carries that repetition's id or extensions.
func TestNullPrimitiveWithExtras(t *testing.T) {
	body := `{"resourceType":"Patient","name":[{"given":["A",null],"_given":[null,{"_id":"g2","extension":[{"url":"u","valueString":"x"}]}]}]}`
	r, err := ParseResource([]byte(body), FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	given := r.Child("name").All("given")
	if len(given) != 2 || given[0].Value != "A" || given[1].HasValue || given[1].ID != "g2" || given[1].Extension("u") == nil {
		t.Fatalf("given = %+v", given)
	}
	for _, f := range []Format{FormatXML, FormatJSON} {
		out := r.XML()
		if f == FormatJSON {
			out = r.JSON()
		}
		back, err := ParseResource(out, f)
		if err != nil {
			t.Fatalf("%v: %v\n%s", f, err, out)
		}
		if ok, d := EqualResource(r, back); !ok {
			t.Fatalf("%v: %s\n%s", f, d, out)
		}
	}
}

func TestLimitsReadBody(t *testing.T) {
	l := Limits{MaxBytes: 8}
	if _, err := l.ReadBody(strings.NewReader("123456789")); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err = %v", err)
	}
	b, err := l.ReadBody(strings.NewReader("12345678"))
	if err != nil || string(b) != "12345678" {
		t.Fatalf("ReadBody = %q, %v", b, err)
	}
}

// Unknown elements survive their own wire form and follow the documented rule across forms.
func TestUnknownElements(t *testing.T) {
	xmlBody := `<Patient xmlns="http://hl7.org/fhir"><active value="true"/><nickname value="Bo"/><hobby><name value="chess"/></hobby><hobby><name value="go"/></hobby></Patient>`
	r, err := ParseResource([]byte(xmlBody), FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	js := string(r.JSON())
	if !strings.Contains(js, `"nickname":"Bo"`) || !strings.Contains(js, `"hobby":[{"name":"chess"},{"name":"go"}]`) {
		t.Fatalf("XML→JSON unknowns: %s", js)
	}
	jsonBody := `{"resourceType":"Patient","tags":["x"],"score":1.50,"flag":false,"blob":{"a":{"b":"c"}}}`
	r, err = ParseResource([]byte(jsonBody), FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.JSON()); got != jsonBody {
		t.Fatalf("JSON→JSON:\n got %s\nwant %s", got, jsonBody)
	}
	back, err := ParseResource(r.XML(), FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	if ok, d := EqualResource(r, back); !ok {
		t.Fatal(d)
	}
}

func TestUnknownNamesThatClashWithJSON(t *testing.T) {
	for _, body := range []string{
		`<Patient xmlns="http://hl7.org/fhir"><id value="x"/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><resourceType value="x"/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><_active value="x"/></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><extension url="u"><url value="x"/></extension></Patient>`,
		`<Patient xmlns="http://hl7.org/fhir"><e/><e value="x"/></Patient>`,
	} {
		if _, err := ParseResource([]byte(body), FormatXML); !errors.Is(err, ErrNotFHIR) {
			t.Errorf("%s: err = %v", body, err)
		}
	}
}

func TestNestedResourceTypeMember(t *testing.T) {
	_, err := ParseResource([]byte(`{"resourceType":"Patient","name":[{"resourceType":"x"}]}`), FormatJSON)
	if !errors.Is(err, ErrNotFHIR) || !strings.Contains(err.Error(), "name[0]") {
		t.Fatalf("err = %v", err)
	}
}

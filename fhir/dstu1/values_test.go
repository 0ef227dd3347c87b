package dstu1

import (
	"errors"
	"strings"
	"testing"
)

// TestCheckValue: what each DSTU1 primitive type accepts, including the forms deployed clients send that the
// schema is stricter about (values.go).
func TestCheckValue(t *testing.T) {
	good := map[primitive][]string{
		primBoolean: {"true", "false"},
		primInteger: {"0", "-1", "+7", "2147483647", "-2147483648", "007"},
		primDecimal: {"0", "3.14", "-0.5", "1e3", "1E-7", "33.333333333333336", "0.0000000000000000000000000001",
			"1234567890123456789012345678", "100.000"},
		primDateTime: {"2019", "2019-03", "2019-03-19", "2019-03-19T12", "2019-03-19T12:00", "2019-03-19T12:00:02",
			"2019-03-19T12:00:02.188", "2019-03-19T12:00:02Z", "2019-03-19T12:00:02+02:00", "2016-02-29",
			"2026-11-28T14:02", "2026-11-28T10:00:00.123456", "1980-12-11T00:00:00+01:00", "2019-03-19T24:00:00"},
		primDate:         {"2019", "2019-03", "2019-03-19", "1972-02-28"},
		primInstant:      {"2026-11-28T10:00:00+01:00", "2026-11-28T10:00:00Z", "2026-11-28T10:00:00.5Z", "2026-11-28T10:00", "2026-11-28T10:00:00"},
		primUri:          {"http://ggz.koppeltaal.nl/fhir/Koppeltaal/MessageEvents", "not used", "None", "urn:uuid:x", ""},
		primId:           {"5ce95052-e8df-45bb-840d-672ecec205b3", "urn:uuid:cab1c156-125c-49d2-9765-cab3e9fddff2", "ref001", ""},
		primCode:         {"CreateOrUpdatePatient", "in progress", "Active", ""},
		primOid:          {"urn:oid:2.16.840.1.113883.2.4.6.3", "urn:oid:0"},
		primUuid:         {"urn:uuid:cab1c156-125c-49d2-9765-cab3e9fddff2", "urn:uuid:CAB1C156-125C-49D2-9765-CAB3E9FDDFF2"},
		primBase64Binary: {"eyJsZXZlbCI6M30=", "eyJsZXZlbCI6M30", "eyJs\nZXZl bCI6M30="},
		primString:       {"", "anything at all"},
	}
	bad := map[primitive][]string{
		primBoolean:      {"yes", "True", "1", ""},
		primInteger:      {"1.5", "2147483648", "-2147483649", "12345678901234567890123", "abc", "1e3", "", "+-1"},
		primDecimal:      {"abc", "1.2.3", ".", "1e", strings.Repeat("9", 29), strings.Repeat("9", 400), "1e400", "1e-400", "0x10", ""},
		primDateTime:     {"yesterday", "2019-13-01", "2019-02-30", "2019-03-19T25:00", "2019-03-19T12:60", "2019-03-19 12:00", "19-03-2019", "2019-03-19T12:00:02+0200", "2019-03-19T12:00:02.", "2019-03-19T24:01:00", ""},
		primDate:         {"2019-03-19T12:00:00", "2019-3-1", "12-04-1990", ""},
		primInstant:      {"2026-11-28", "2026-11-28T10", "yesterday", "1701436800", ""},
		primUri:          {"http://exa mple.com/", "http://x/%zz"},
		primId:           {"a b", "tab\there"},
		primCode:         {" leading", "trailing ", "two  spaces", "new\nline"},
		primOid:          {"2.16.840", "urn:oid:1..2", "urn:oid:01"},
		primUuid:         {"cab1c156-125c-49d2-9765-cab3e9fddff2", "urn:uuid:cab1c156"},
		primBase64Binary: {"not base64!", "a==="},
	}
	for p, vs := range good {
		for _, v := range vs {
			if err := checkValue(p, v); err != nil {
				t.Errorf("%s %q refused: %v", primDescription[p], v, err)
			}
		}
	}
	for p, vs := range bad {
		for _, v := range vs {
			if err := checkValue(p, v); err == nil {
				t.Errorf("%s %q accepted", primDescription[p], v)
			}
		}
	}
}

// TestMalformedValues: wrong JSON types, nulls, single values for repeating elements and invalid primitives
// are refused in both forms with the path of the element and what was expected; with SkipValueChecks (a
// server's own stored bodies) invalid primitive values are read as they are.
func TestMalformedValues(t *testing.T) {
	const mh = `{"resourceType":"Bundle","id":"urn:uuid:1","entry":[{"content":{"resourceType":"MessageHeader",` +
		`"identifier":"m1","timestamp":"2026-11-28T10:00:00Z","event":{"code":"CreateOrUpdatePatient"},` +
		`"source":{"software":"s","endpoint":"http://x"},"data":[{"reference":"http://x/Patient/1"}]}},` +
		`{"id":"http://x/Patient/1","content":{"resourceType":"Patient","name":[{"text":"P"}]}}]}`
	if _, err := ParseBundle([]byte(mh), FormatJSON); err != nil {
		t.Fatalf("the base message is refused: %v", err)
	}
	json := []struct{ from, to, where, what string }{
		{`"identifier":"m1"`, `"identifier":12345`, "entry[0].content.identifier", "expected a JSON string, found a number"},
		{`"data":[{"reference":"http://x/Patient/1"}]`, `"data":{"reference":"http://x/Patient/1"}`, "entry[0].content.data", "repeats: expected a JSON array"},
		{`"timestamp":"2026-11-28T10:00:00Z"`, `"timestamp":1701436800`, "entry[0].content.timestamp", "expected a JSON string"},
		{`"timestamp":"2026-11-28T10:00:00Z"`, `"timestamp":"yesterday"`, "entry[0].content.timestamp", "expected an instant"},
		{`"reference":"http://x/Patient/1"}]`, `"reference":7}]`, "entry[0].content.data[0].reference", "expected a JSON string"},
		{`"identifier":"m1"`, `"identifier":"m1","extension":null`, "entry[0].content.extension", "is null: expected a value"},
		{`"name":[{"text":"P"}]`, `"name":{"text":"P"}`, "entry[1].content.name", "repeats: expected a JSON array"},
		{`{"id":"http://x/Patient/1"`, `{"id":17`, "entry[1].id", "expected a JSON string"},
		{`"name":[{"text":"P"}]`, `"name":[{"text":"P"}],"extension":[{"url":"u","valueInteger":` + strings.Repeat("9", 400) + `}]`, "entry[1].content.extension[0].valueInteger", "expected an integer"},
		{`"name":[{"text":"P"}]`, `"name":[{"text":"P"}],"extension":[{"url":"u","valueDecimal":` + strings.Repeat("9", 400) + `}]`, "entry[1].content.extension[0].valueDecimal", "expected a decimal"},
		{`"name":[{"text":"P"}]`, `"name":[{"text":"P"}],"active":"true"`, "entry[1].content.active", "expected a JSON boolean, found a string"},
		{`"name":[{"text":"P"}]`, `"name":[{"text":"P"}],"birthDate":"12-04-1990"`, "entry[1].content.birthDate", "expected a dateTime"},
		{`"id":"urn:uuid:1"`, `"id":"urn:uuid:1","updated":"yesterday"`, "updated", "expected an Atom date"},
		{`"id":"urn:uuid:1"`, `"id":"urn:uuid:1","link":["self"]`, "link[0]", "a link must be a JSON object"},
		{`"id":"urn:uuid:1"`, `"id":"urn:uuid:1","category":[{"term":1}]`, "category[0].term", "expected a JSON string"},
	}
	for _, c := range json {
		body := strings.Replace(mh, c.from, c.to, 1)
		if body == mh {
			t.Fatalf("%s: nothing replaced", c.to)
		}
		_, err := ParseBundle([]byte(body), FormatJSON)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Path != c.where || !strings.Contains(se.Msg, c.what) {
			t.Errorf("%s: %v, want path %s and %q", c.to, err, c.where, c.what)
		}
	}

	base, _ := ParseBundle([]byte(mh), FormatJSON)
	xml := string(base.XML())
	xmlCases := []struct{ from, to, where, what string }{
		{`<timestamp value="2026-11-28T10:00:00Z"/>`, `<timestamp value="2026-13-28T10:00:00Z"/>`, "feed/entry[0]/content/MessageHeader/timestamp", "expected an instant"},
		{`<text value="P"/>`, `<text value="P"/></name><birthDate value="1990-02-30"/><name>`, "feed/entry[1]/content/Patient/birthDate", "expected a dateTime"},
		{`<text value="P"/>`, `<text value="P"/></name><active value="yes"/><name>`, "feed/entry[1]/content/Patient/active", "boolean"},
		{`<text value="P"/>`, `<text value="P"/></name><multipleBirthInteger value="1.5"/><name>`, "feed/entry[1]/content/Patient/multipleBirthInteger", "expected an integer"},
		{`<endpoint value="http://x"/>`, `<endpoint value="http://exa mple/"/>`, "feed/entry[0]/content/MessageHeader/source/endpoint", "expected a URI"},
		{`<identifier value="m1"/>`, `<identifier value="m 1"/>`, "feed/entry[0]/content/MessageHeader/identifier", "expected an id"},
		{`<updated>`, `<updated>yesterday</updated><updated>`, "feed/updated", "expected an Atom date"},
	}
	if !strings.Contains(xml, "<updated>") {
		xml = strings.Replace(xml, "<id>urn:uuid:1</id>", "<id>urn:uuid:1</id><updated>2026-11-28T10:00:00Z</updated>", 1)
	}
	for _, c := range xmlCases {
		body := strings.Replace(xml, c.from, c.to, 1)
		if body == xml {
			t.Fatalf("%s: nothing replaced in %s", c.to, xml)
		}
		_, err := ParseBundle([]byte(body), FormatXML)
		var se *SyntaxError
		if !errors.As(err, &se) || se.Path != c.where || !strings.Contains(se.Msg, c.what) {
			t.Errorf("%s: %v, want path %s and %q", c.to, err, c.where, c.what)
		}
		if strings.Contains(c.what, "expected a") && c.where != "feed/updated" {
			if _, err := (Limits{SkipValueChecks: true}).ParseBundle([]byte(body), FormatXML); err != nil {
				t.Errorf("%s with SkipValueChecks: %v", c.to, err)
			}
		}
	}
}

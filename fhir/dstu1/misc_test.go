package dstu1

import (
	"errors"
	"strings"
	"testing"
)

func TestFormatFromMediaType(t *testing.T) {
	tests := []struct {
		in   string
		want Format
		ok   bool
	}{
		{"application/json", FormatJSON, true},
		{"application/json+fhir; charset=utf-8", FormatJSON, true},
		{"application/fhir+json", FormatJSON, true},
		{"application/xml", FormatXML, true},
		{"application/xml+fhir;charset=utf-8", FormatXML, true},
		{"text/xml", FormatXML, true},
		{"application/atom+xml", FormatXML, true},
		{"APPLICATION/JSON", FormatJSON, true},
		{"text/html", 0, false},
		{"", 0, false},
		{"*/*", 0, false},
	}
	for _, tt := range tests {
		if f, ok := FormatFromMediaType(tt.in); f != tt.want || ok != tt.ok {
			t.Errorf("FormatFromMediaType(%q) = %v, %v", tt.in, f, ok)
		}
	}
	if MediaType(FormatJSON) != MediaTypeJSON || MediaType(FormatXML) != MediaTypeXML {
		t.Error("MediaType")
	}
}

func TestSniff(t *testing.T) {
	for in, want := range map[string]Format{" {\"a\":1}": FormatJSON, "\n<feed/>": FormatXML, "\ufeff<x/>": FormatXML, "hello": 0, "": 0} {
		if got := Sniff([]byte(in)); got != want {
			t.Errorf("Sniff(%q) = %v", in, got)
		}
	}
}

func TestDeletedEntryAndFeedMetadata(t *testing.T) {
	body := `<feed xmlns="http://www.w3.org/2005/Atom">
  <title>Search results</title>
  <id>urn:uuid:1</id>
  <updated>2026-11-28T12:00:00Z</updated>
  <author><name>Koppelpoort</name><uri>https://kt.example</uri></author>
  <link rel="self" href="https://kt.example/FHIR/Koppeltaal/MessageHeader/_search?_count=10"/>
  <link rel="next" href="https://kt.example/FHIR/Koppeltaal/MessageHeader/_search?_count=10&amp;page=2"/>
  <os:totalResults xmlns:os="http://a9.com/-/spec/opensearch/1.1/">12</os:totalResults>
  <entry>
    <title type="text">MessageHeader with IID=3</title>
    <id>https://kt.example/FHIR/Koppeltaal/MessageHeader/3</id>
    <updated>2026-11-28T12:00:00Z</updated>
    <published>2026-11-28T11:00:00Z</published>
    <author><name>sender</name></author>
    <category term="http://example.org/tag" label="x" scheme="http://hl7.org/fhir/tag"/>
    <content type="text/xml"><MessageHeader xmlns="http://hl7.org/fhir"><identifier value="3"/></MessageHeader></content>
    <summary type="xhtml"><div xmlns="http://www.w3.org/1999/xhtml">MessageHeader <b>3</b></div></summary>
  </entry>
  <at:deleted-entry xmlns:at="http://purl.org/atompub/tombstones/1.0" ref="https://kt.example/FHIR/Koppeltaal/Patient/9" when="2026-11-28T10:00:00Z">
    <link rel="self" href="https://kt.example/FHIR/Koppeltaal/Patient/9/_history/4"/>
  </at:deleted-entry>
</feed>`
	b, err := ParseBundle([]byte(body), FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	if b.Title != "Search results" || !b.HasTotal || b.TotalResults != "12" || b.Link("next") == "" || len(b.Authors) != 1 || b.Authors[0].URI != "https://kt.example" {
		t.Fatalf("feed metadata: %+v", b)
	}
	e := b.Entries[0]
	if e.Published == "" || e.Summary != `<div xmlns="http://www.w3.org/1999/xhtml">MessageHeader <b>3</b></div>` || len(e.Categories) != 1 {
		t.Fatalf("entry metadata: %+v", e)
	}
	d := b.Entries[1]
	if d.Resource != nil || d.Deleted != "2026-11-28T10:00:00Z" || d.ID != "https://kt.example/FHIR/Koppeltaal/Patient/9" || d.SelfLink() == "" {
		t.Fatalf("deleted entry: %+v", d)
	}
	js := b.JSON()
	if !strings.Contains(string(js), `"totalResults":"12"`) || !strings.Contains(string(js), `"deleted":"2026-11-28T10:00:00Z"`) {
		t.Fatalf("JSON: %s", js)
	}
	for _, f := range []Format{FormatXML, FormatJSON} {
		out := b.XML()
		if f == FormatJSON {
			out = js
		}
		back, err := ParseBundle(out, f)
		if err != nil {
			t.Fatalf("%v: %v\n%s", f, err, out)
		}
		if ok, diff := Equal(b, back); !ok {
			t.Fatalf("%v: %s\n%s", f, diff, out)
		}
	}
}

func TestEmptySearchBundleJSON(t *testing.T) {
	b := NewBundle("urn:uuid:0")
	b.HasTotal, b.TotalResults = true, "0"
	if got := string(b.JSON()); got != `{"resourceType":"Bundle","id":"urn:uuid:0","totalResults":"0","entry":[]}` {
		t.Fatalf("JSON = %s", got)
	}
	if _, err := ParseBundle(b.XML(), FormatXML); err != nil {
		t.Fatal(err)
	}
}

func TestWalkAndEqualDifferences(t *testing.T) {
	b := mustBundle(t, "testdata/examples/createorupdatecareplan-request-vzvztest-careteam.xml")
	refs := 0
	b.Entries[1].Resource.Walk(func(n *Node) bool {
		if n.Name == "reference" {
			refs++
		}
		return true
	})
	if refs != 6 {
		t.Fatalf("CarePlan has %d references, want 6", refs)
	}
	c := b.Clone()
	c.Entries[3].Resource.Get("name", "given").Value = "Nino"
	ok, diff := Equal(b, c)
	if ok || !strings.Contains(diff, "entry[3].content: Patient.name[0].given[0]: value \"N.\" != \"Nino\"") {
		t.Fatalf("Equal = %v, %q", ok, diff)
	}
}

func TestSortElements(t *testing.T) {
	r := NewResource("Patient")
	r.Add(
		NewPrimitive("active", "true"),
		NewElement("name", NewPrimitive("given", "A"), NewPrimitive("family", "B"), NewExtension("u", NewPrimitive("valueString", "x"))),
		NewPrimitive("hobby", "chess"), // unknown: stays last
		NewExtension("http://x/ext", NewPrimitive("valueBoolean", "true")),
		NewElement("identifier", NewPrimitive("value", "1")),
	)
	r.SortElements()
	want := `<Patient xmlns="http://hl7.org/fhir">
  <extension url="http://x/ext">
    <valueBoolean value="true"/>
  </extension>
  <identifier>
    <value value="1"/>
  </identifier>
  <name>
    <extension url="u">
      <valueString value="x"/>
    </extension>
    <family value="B"/>
    <given value="A"/>
  </name>
  <active value="true"/>
  <hobby value="chess"/>
</Patient>
`
	if got := string(r.XML()); got != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
}

func TestUnknownFormat(t *testing.T) {
	body := []byte("hello")
	_, err := ParseBundle(body, Sniff(body))
	var se *SyntaxError
	if !errors.As(err, &se) || !errors.Is(err, ErrNotFHIR) || !strings.Contains(err.Error(), "neither XML nor JSON") {
		t.Fatalf("err = %v", err)
	}
	if _, err := ParseResource(body, 0); !errors.Is(err, ErrNotFHIR) {
		t.Fatalf("err = %v", err)
	}
}

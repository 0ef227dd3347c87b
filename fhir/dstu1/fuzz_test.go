package dstu1

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"io"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzSeeds adds every fixture of the given extension as a seed.
func fuzzSeeds(f *testing.F, ext string) {
	for _, dir := range []string{"testdata/examples", "testdata/schema-examples", "testdata/clients"} {
		files, _ := filepath.Glob(filepath.Join(dir, "*"+ext))
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
}

// fuzzLimits keep single fuzz inputs cheap.
var fuzzLimits = Limits{MaxBytes: 1 << 20, MaxDepth: 64, MaxElements: 20000}

// checkRoundTrip asserts the invariants for anything the parser accepted: both writers produce output
// that parses again and is Equal to the accepted message.
func checkRoundTrip(t *testing.T, b *Bundle, r *Resource) {
	for _, f := range []Format{FormatXML, FormatJSON} {
		var out []byte
		switch {
		case b != nil && f == FormatXML:
			out = b.XML()
		case b != nil:
			out = b.JSON()
		case f == FormatXML:
			out = r.XML()
		default:
			out = r.JSON()
		}
		if b != nil {
			back, err := fuzzLimits.ParseBundle(out, f)
			if err != nil {
				t.Fatalf("accepted bundle, but own %v output is rejected: %v\n%s", f, err, out)
			}
			if ok, d := Equal(b, back); !ok {
				t.Fatalf("%v round trip differs: %s\n%s", f, d, out)
			}
			continue
		}
		back, err := fuzzLimits.ParseResource(out, f)
		if err != nil {
			t.Fatalf("accepted resource, but own %v output is rejected: %v\n%s", f, err, out)
		}
		if ok, d := EqualResource(r, back); !ok {
			t.Fatalf("%v round trip differs: %s\n%s", f, d, out)
		}
	}
}

func FuzzParseXML(f *testing.F) {
	fuzzSeeds(f, ".xml")
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, err := fuzzLimits.ParseBundle(data, FormatXML); err == nil {
			checkRoundTrip(t, b, nil)
		} else if _, ok := err.(*SyntaxError); !ok {
			t.Fatalf("error %T is not a *SyntaxError: %v", err, err)
		}
		if r, err := fuzzLimits.ParseResource(data, FormatXML); err == nil {
			checkRoundTrip(t, nil, r)
		}
	})
}

func FuzzParseJSON(f *testing.F) {
	fuzzSeeds(f, ".json")
	f.Fuzz(func(t *testing.T, data []byte) {
		if b, err := fuzzLimits.ParseBundle(data, FormatJSON); err == nil {
			checkRoundTrip(t, b, nil)
		} else if _, ok := err.(*SyntaxError); !ok {
			t.Fatalf("error %T is not a *SyntaxError: %v", err, err)
		}
		if r, err := fuzzLimits.ParseResource(data, FormatJSON); err == nil {
			checkRoundTrip(t, nil, r)
		}
	})
}

// FuzzXMLScanner checks the hand-written tokenizer against encoding/xml: whatever it accepts, encoding/xml
// (strict) accepts too, with the same elements in the same namespaces.
func FuzzXMLScanner(f *testing.F) {
	fuzzSeeds(f, ".xml")
	f.Add([]byte(`<a xmlns="u" xmlns:p="v"><p:b p:x="1" y='2'>t&amp;&#x41;<![CDATA[<c>]]></p:b><!-- c --><?pi x?></a>`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if !utf8.Valid(data) {
			return // rejected before tokenizing
		}
		var ours []string
		sc := newXMLScanner(data)
		for {
			tok, err := sc.next()
			if err != nil {
				return // rejections need not agree: encoding/xml is more lenient (DTDs, entities)
			}
			if tok.kind == xEOF {
				break
			}
			if tok.kind == xStart {
				ours = append(ours, tok.space+" "+tok.local)
			}
		}
		var theirs []string
		d := xml.NewDecoder(bytes.NewReader(data))
		for {
			tok, err := d.Token()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("scanner accepted, encoding/xml rejects: %v", err)
			}
			if se, ok := tok.(xml.StartElement); ok {
				theirs = append(theirs, se.Name.Space+" "+se.Name.Local)
			}
		}
		if !slices.Equal(ours, theirs) {
			t.Fatalf("elements differ:\n ours   %q\n theirs %q", ours, theirs)
		}
	})
}

// valueElements are the Extension value[x] elements of each primitive type, to put a fuzzed value in.
var valueElements = []string{"valueBoolean", "valueInteger", "valueDecimal", "valueBase64Binary", "valueInstant",
	"valueString", "valueUri", "valueDate", "valueDateTime", "valueCode"}

// FuzzPrimitiveValues puts a value into each primitive type, in both wire forms: the two readers agree on
// whether it is valid (checkValue), an accepted value survives both writers unchanged, and a value refused
// for its type alone is read with SkipValueChecks.
func FuzzPrimitiveValues(f *testing.F) {
	for _, v := range []string{"2019-03-19T12:00:02+02:00", "2019-02-30", "1.5", "-2147483649", "yesterday", "true",
		"eyJsZXZlbCI6M30=", "not used", "urn:uuid:x", "1e400", " code", "12-04-1990", "2026-11-28T14:02"} {
		for i := range valueElements {
			f.Add(v, uint8(i))
		}
	}
	f.Fuzz(func(t *testing.T, v string, which uint8) {
		name := valueElements[int(which)%len(valueElements)]
		ext := NewExtension("http://x/e", NewPrimitive(name, v))
		r := NewResource("Patient")
		r.Add(ext)
		d, _ := lookup(typeExtension, name)
		valueErr := checkValue(schemaTypes[d.typ].prim, v)
		// JSON: the value as the writer puts it (a number, boolean or string), when the writer can.
		if checkPrimitive(kindOf(d.typ), v) != nil || !utf8.ValidString(v) || !validXMLChars(v) {
			return
		}
		for _, form := range []Format{FormatXML, FormatJSON} {
			out := r.Encode(form)
			back, err := fuzzLimits.ParseResource(out, form)
			if (err == nil) != (valueErr == nil) {
				t.Fatalf("%s %q in %v: parse error %v, checkValue %v\n%s", name, v, form, err, valueErr, out)
			}
			if err == nil {
				if got := back.Child("extension").Child(name); got == nil || got.Value != v {
					t.Fatalf("%s %q in %v came back as %+v", name, v, form, got)
				}
				continue
			}
			if _, err := (Limits{SkipValueChecks: true}).ParseResource(out, form); err != nil {
				t.Fatalf("%s %q in %v: refused also without value checks: %v", name, v, form, err)
			}
		}
	})
}

// wellFormedXML parses data with encoding/xml in strict mode.
func wellFormedXML(data []byte) error {
	d := xml.NewDecoder(bytes.NewReader(data))
	for {
		if _, err := d.Token(); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// FuzzWriteStrings puts any string where the writers put text: OperationOutcome details (and its XHTML
// narrative), an extension value, a bundle's link and entry id (attributes and Atom elements). Both writers
// must produce a well-formed document — XML that encoding/xml accepts, JSON that is valid UTF-8 — whatever
// the string holds, and a string XML can carry comes back unchanged (issue 16 item 6).
func FuzzWriteStrings(f *testing.F) {
	for _, s := range []string{"MessageHeader '1\x00' does not exist.", "\x01", "\uFFFE", "x\xffy", "\xed\xa0\x80",
		"<&>\"'\r\n\t", "\u2028\u2029", "]]>", "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		oo := NewOperationOutcome("", Issue{Severity: "error", Type: "invalid", Details: s, Resource: s})
		oo.Add(NewExtension("http://x/e", NewPrimitive("valueString", s)))
		b := NewBundle("urn:uuid:" + s)
		b.Title = s
		b.SetLink("self", "http://x/"+s)
		b.AddEntry(oo, "http://x/"+s, "http://x/"+s+"/_history/1")
		for _, out := range [][]byte{oo.XML(), b.XML()} {
			if err := wellFormedXML(out); err != nil {
				t.Fatalf("XML not well-formed (%v):\n%q", err, out)
			}
		}
		for _, out := range [][]byte{oo.JSON(), b.JSON()} {
			if !utf8.Valid(out) || !json.Valid(out) {
				t.Fatalf("JSON not valid:\n%q", out)
			}
		}
		if !utf8.ValidString(s) || !validXMLChars(s) {
			return
		}
		for _, form := range []Format{FormatXML, FormatJSON} {
			back, err := (Limits{SkipValueChecks: true}).ParseBundle(b.Encode(form), form)
			if err != nil {
				t.Fatalf("%v: own output refused: %v", form, err)
			}
			got := back.Entries[0].Resource.Child("issue").Str("details")
			if got != s {
				t.Fatalf("%v: details %q came back as %q", form, s, got)
			}
		}
	})
}

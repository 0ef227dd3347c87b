package dstu1

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ParseBundle parses a bundle (Atom feed XML or DSTU1 JSON Bundle) with the default limits.
func ParseBundle(data []byte, f Format) (*Bundle, error) { return Limits{}.ParseBundle(data, f) }

// ParseResource parses a single resource (not a bundle) with the default limits.
func ParseResource(data []byte, f Format) (*Resource, error) { return Limits{}.ParseResource(data, f) }

// ParseBundle parses a bundle in format f within the limits l.
func (l Limits) ParseBundle(data []byte, f Format) (*Bundle, error) {
	l = l.withDefaults()
	if err := l.precheck(data, f); err != nil {
		return nil, err
	}
	switch f {
	case FormatXML:
		r := newXMLReader(data, l)
		return r.bundle()
	case FormatJSON:
		return parseJSONBundle(data, l)
	}
	return nil, fmt.Errorf("parse bundle: unknown format %d", f)
}

// ParseResource parses a single resource in format f within the limits l. The XML root may be in the FHIR
// namespace or, as the SoapUI Koppeltaal examples do, in the Atom namespace with FHIR-namespaced children.
func (l Limits) ParseResource(data []byte, f Format) (*Resource, error) {
	l = l.withDefaults()
	if err := l.precheck(data, f); err != nil {
		return nil, err
	}
	switch f {
	case FormatXML:
		r := newXMLReader(data, l)
		return r.singleResource()
	case FormatJSON:
		return parseJSONResource(data, l)
	}
	return nil, fmt.Errorf("parse resource: unknown format %d", f)
}

type xmlReader struct {
	dec *xml.Decoder
	lim Limits
	// atomRoot: the single resource's root was in the Atom namespace (SoapUI examples); its descendants
	// may then be in the Atom namespace too.
	atomRoot bool
	depth    int
	count    int
	path     []string
}

func newXMLReader(data []byte, l Limits) *xmlReader {
	d := xml.NewDecoder(bytes.NewReader(data))
	d.Strict = true
	// No CharsetReader: only UTF-8 documents are accepted. No Entity map: only the five XML entities.
	return &xmlReader{dec: d, lim: l, path: make([]string, 0, 16)}
}

func (r *xmlReader) fail(sentinel error, format string, args ...any) *SyntaxError {
	line, col := r.dec.InputPos()
	return &SyntaxError{Format: FormatXML, Line: line, Column: col, Path: strings.Join(r.path, "/"),
		Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// next returns the next token that matters: comments and processing instructions are skipped, a DTD is
// refused, limits are enforced.
func (r *xmlReader) next() (xml.Token, error) {
	for {
		tok, err := r.dec.Token()
		if err != nil {
			if err == io.EOF {
				return nil, r.fail(nil, "unexpected end of document")
			}
			var se *xml.SyntaxError
			if errors.As(err, &se) {
				line, col := r.dec.InputPos()
				return nil, &SyntaxError{Format: FormatXML, Line: se.Line, Column: col * boolInt(line == se.Line),
					Path: strings.Join(r.path, "/"), Msg: se.Msg}
			}
			return nil, r.fail(nil, "%v", err)
		}
		switch t := tok.(type) {
		case xml.Directive:
			return nil, r.fail(ErrDTD, "found <!%s>", firstWord(string(t)))
		case xml.Comment, xml.ProcInst:
			continue
		case xml.StartElement:
			r.depth++
			r.count++
			r.path = append(r.path, t.Name.Local)
			if r.depth > r.lim.MaxDepth {
				return nil, r.fail(ErrTooDeep, "depth %d exceeds limit %d", r.depth, r.lim.MaxDepth)
			}
			if r.count > r.lim.MaxElements {
				return nil, r.fail(ErrTooManyElements, "more than %d elements", r.lim.MaxElements)
			}
		case xml.EndElement:
			r.depth--
			// The path is popped by the caller after it reports errors for the element.
		}
		return tok, nil
	}
}

func (r *xmlReader) pop() { r.path = r.path[:len(r.path)-1] }

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

func firstWord(s string) string {
	if i := strings.IndexAny(s, " \t\r\n"); i > 0 {
		return s[:i]
	}
	return s
}

// root returns the document element; anything but whitespace, comments and the XML declaration before
// it is an error.
func (r *xmlReader) root() (xml.StartElement, error) {
	for {
		tok, err := r.next()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			return t, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return xml.StartElement{}, r.fail(nil, "text before the document element")
			}
		}
	}
}

// end checks that nothing but whitespace and comments follows the document element.
func (r *xmlReader) end() error {
	for {
		tok, err := r.dec.Token()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return r.fail(nil, "after the document element: %v", err)
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return r.fail(nil, "text after the document element")
			}
		case xml.Comment, xml.ProcInst:
		case xml.Directive:
			return r.fail(ErrDTD, "found <!%s>", firstWord(string(t)))
		default:
			return r.fail(nil, "content after the document element")
		}
	}
}

func (r *xmlReader) bundle() (*Bundle, error) {
	start, err := r.root()
	if err != nil {
		return nil, err
	}
	if start.Name.Local != "feed" || start.Name.Space != NSAtom {
		return nil, r.fail(ErrNotFHIR, "expected an Atom <feed> (namespace %s), found <%s> in namespace %q", NSAtom, start.Name.Local, start.Name.Space)
	}
	b := &Bundle{}
	if err := r.feed(b); err != nil {
		return nil, err
	}
	r.pop()
	return b, r.end()
}

func (r *xmlReader) singleResource() (*Resource, error) {
	start, err := r.root()
	if err != nil {
		return nil, err
	}
	if start.Name.Space != NSFHIR && start.Name.Space != NSAtom {
		return nil, r.fail(ErrNotFHIR, "expected a FHIR resource in namespace %s, found <%s> in namespace %q", NSFHIR, start.Name.Local, start.Name.Space)
	}
	if start.Name.Local == "feed" {
		return nil, r.fail(ErrNotFHIR, "expected a single resource, found a bundle (<feed>)")
	}
	r.atomRoot = start.Name.Space == NSAtom
	n, err := r.resource(start)
	if err != nil {
		return nil, err
	}
	return &Resource{Node: n}, r.end()
}

func (r *xmlReader) feed(b *Bundle) error {
	for {
		tok, err := r.next()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return r.fail(nil, "unexpected text in <feed>")
			}
		case xml.StartElement:
			if err := r.feedChild(b, t); err != nil {
				return err
			}
			r.pop()
		}
	}
}

func (r *xmlReader) feedChild(b *Bundle, t xml.StartElement) error {
	var err error
	switch {
	case t.Name.Space == NSAtom:
		switch t.Name.Local {
		case "id":
			b.ID, err = r.text()
		case "title":
			b.Title, err = r.text()
		case "updated":
			b.Updated, err = r.text()
		case "published":
			b.Published, err = r.text()
		case "author":
			var p Person
			p, err = r.person()
			b.Authors = append(b.Authors, p)
		case "link":
			b.Links = append(b.Links, linkOf(t))
			err = r.skip()
		case "category":
			b.Categories = append(b.Categories, categoryOf(t))
			err = r.skip()
		case "entry":
			var e *Entry
			e, err = r.entry()
			b.Entries = append(b.Entries, e)
		default:
			err = r.skip() // other Atom metadata (generator, icon, ...) is not used by FHIR
		}
	case t.Name.Space == NSOpenSearch && t.Name.Local == "totalResults":
		b.TotalResults, err = r.text()
		b.HasTotal = true
	case t.Name.Space == NSTombstones && t.Name.Local == "deleted-entry":
		var e *Entry
		e, err = r.deletedEntry(t)
		b.Entries = append(b.Entries, e)
	default:
		err = r.skip() // signatures, relevance scores, foreign markup
	}
	return err
}

func (r *xmlReader) entry() (*Entry, error) {
	e := &Entry{}
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return e, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, r.fail(nil, "unexpected text in <entry>")
			}
		case xml.StartElement:
			if t.Name.Space != NSAtom {
				err = r.skip()
			} else {
				switch t.Name.Local {
				case "id":
					e.ID, err = r.text()
				case "title":
					e.Title, err = r.text()
				case "updated":
					e.Updated, err = r.text()
				case "published":
					e.Published, err = r.text()
				case "author":
					var p Person
					p, err = r.person()
					e.Authors = append(e.Authors, p)
				case "link":
					e.Links = append(e.Links, linkOf(t))
					err = r.skip()
				case "category":
					e.Categories = append(e.Categories, categoryOf(t))
					err = r.skip()
				case "summary":
					e.Summary, err = r.summary()
				case "content":
					if e.Resource != nil {
						return nil, r.fail(ErrNotFHIR, "entry has more than one <content>")
					}
					e.Resource, err = r.content()
				default:
					err = r.skip()
				}
			}
			if err != nil {
				return nil, err
			}
			r.pop()
		}
	}
}

func (r *xmlReader) deletedEntry(t xml.StartElement) (*Entry, error) {
	e := &Entry{}
	for _, a := range t.Attr {
		switch a.Name.Local {
		case "ref":
			e.ID = a.Value
		case "when":
			e.Deleted = a.Value
		}
	}
	if e.Deleted == "" {
		return nil, r.fail(ErrNotFHIR, "deleted-entry without a when attribute")
	}
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return e, nil
		case xml.StartElement:
			if t.Name.Space == NSAtom && t.Name.Local == "link" {
				e.Links = append(e.Links, linkOf(t))
			}
			if err := r.skip(); err != nil {
				return nil, err
			}
			r.pop()
		}
	}
}

// content reads <content type="text/xml"> holding exactly one FHIR resource.
func (r *xmlReader) content() (*Resource, error) {
	var res *Resource
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if res == nil {
				return nil, r.fail(ErrNotFHIR, "entry <content> holds no resource")
			}
			return res, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, r.fail(ErrNotFHIR, "entry <content> holds text instead of a FHIR resource")
			}
		case xml.StartElement:
			if res != nil {
				return nil, r.fail(ErrNotFHIR, "entry <content> holds more than one resource")
			}
			if t.Name.Space != NSFHIR {
				return nil, r.fail(ErrNotFHIR, "<%s> in entry content is not in the FHIR namespace %s", t.Name.Local, NSFHIR)
			}
			n, err := r.resource(t)
			if err != nil {
				return nil, err
			}
			r.pop()
			res = &Resource{Node: n}
		}
	}
}

// text reads the character content of a simple element (Atom id, title, ...), trimmed.
func (r *xmlReader) text() (string, error) {
	var sb strings.Builder
	for {
		tok, err := r.next()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return strings.TrimSpace(sb.String()), nil
		case xml.CharData:
			sb.Write(t)
		case xml.StartElement:
			return "", r.fail(ErrNotFHIR, "unexpected element <%s> inside a text element", t.Name.Local)
		}
	}
}

func (r *xmlReader) person() (Person, error) {
	var p Person
	for {
		tok, err := r.next()
		if err != nil {
			return p, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			return p, nil
		case xml.StartElement:
			switch t.Name.Local {
			case "name":
				p.Name, err = r.text()
			case "uri":
				p.URI, err = r.text()
			default:
				err = r.skip()
			}
			if err != nil {
				return p, err
			}
			r.pop()
		}
	}
}

// summary reads an Atom summary: an XHTML div (type="xhtml") or plain text, returned as XHTML.
func (r *xmlReader) summary() (string, error) {
	var out string
	var text strings.Builder
	for {
		tok, err := r.next()
		if err != nil {
			return "", err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if out == "" && strings.TrimSpace(text.String()) != "" {
				out = xhtmlParagraph(strings.TrimSpace(text.String()))
			}
			return out, nil
		case xml.CharData:
			text.Write(t)
		case xml.StartElement:
			if out != "" || t.Name.Space != NSXHTML || t.Name.Local != "div" {
				return "", r.fail(ErrNotFHIR, "entry summary must hold one XHTML <div>, found <%s>", t.Name.Local)
			}
			if out, err = r.xhtml(t); err != nil {
				return "", err
			}
			r.pop()
		}
	}
}

// skip consumes the rest of the current element.
func (r *xmlReader) skip() error {
	for depth := 1; depth > 0; {
		tok, err := r.next()
		if err != nil {
			return err
		}
		switch tok.(type) {
		case xml.StartElement:
			depth++
		case xml.EndElement:
			depth--
			if depth > 0 {
				r.pop()
			}
		}
	}
	return nil
}

func linkOf(t xml.StartElement) Link {
	var l Link
	for _, a := range t.Attr {
		switch a.Name.Local {
		case "rel":
			l.Rel = a.Value
		case "href":
			l.Href = a.Value
		}
	}
	return l
}

func categoryOf(t xml.StartElement) Category {
	var c Category
	for _, a := range t.Attr {
		switch a.Name.Local {
		case "term":
			c.Term = a.Value
		case "label":
			c.Label = a.Value
		case "scheme":
			c.Scheme = a.Value
		}
	}
	return c
}

// resource reads a resource element (its start tag already read).
func (r *xmlReader) resource(start xml.StartElement) (*Node, error) {
	t, ok := resourceType(start.Name.Local)
	if !ok {
		return nil, r.fail(ErrNotFHIR, "unknown resource type %q", start.Name.Local)
	}
	if start.Name.Local == "Binary" {
		return nil, r.fail(ErrNotFHIR, "Binary resources are not supported")
	}
	return r.element(start, t, true)
}

// element reads one FHIR element of schema type t (typeUnknown when the schema does not know it).
func (r *xmlReader) element(start xml.StartElement, t int, known bool) (*Node, error) {
	n := &Node{Name: start.Name.Local}
	k := kindOf(t)
	for _, a := range start.Attr {
		if a.Name.Space != "" {
			continue // xmlns declarations, xml:lang and foreign attributes carry no FHIR data
		}
		switch a.Name.Local {
		case "id":
			n.ID = a.Value
		case "value":
			n.Value, n.HasValue = a.Value, true
		case "url":
			n.URL = a.Value
		}
	}
	if known {
		if n.HasValue && !k.primitive() {
			return nil, r.fail(ErrNotFHIR, "<%s> is a %s and cannot have a value attribute", n.Name, schemaTypes[t].name)
		}
		if n.HasValue {
			if err := checkPrimitive(k, n.Value); err != nil {
				return nil, r.fail(ErrNotFHIR, "<%s value=%q>: %v", n.Name, n.Value, err)
			}
		}
	}
	isExt := n.Name == "extension" || n.Name == "modifierExtension"
	if isExt && n.URL == "" && known {
		return nil, r.fail(ErrNotFHIR, "<%s> without a url attribute", n.Name)
	}
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch tt := tok.(type) {
		case xml.EndElement:
			return n, nil
		case xml.CharData:
			if len(bytes.TrimSpace(tt)) == 0 {
				continue
			}
			if t == 0 && !n.HasValue { // element of a simple XSD type (xmlIdRef): the text is the value
				n.Value, n.HasValue = string(bytes.TrimSpace(tt)), true
				continue
			}
			return nil, r.fail(ErrNotFHIR, "unexpected text %q in <%s>", truncate(string(bytes.TrimSpace(tt)), 40), n.Name)
		case xml.StartElement:
			c, err := r.child(n, t, k, tt)
			if err != nil {
				return nil, err
			}
			r.pop()
			n.Children = append(n.Children, c)
		}
	}
}

func (r *xmlReader) child(parent *Node, t int, k kind, start xml.StartElement) (*Node, error) {
	name := start.Name.Local
	d, known := childType(t, name)
	if known && kindOf(d.typ) == kindXHTML {
		if start.Name.Space != NSXHTML {
			return nil, r.fail(ErrNotFHIR, "<div> must be in the XHTML namespace %s", NSXHTML)
		}
		x, err := r.xhtml(start)
		if err != nil {
			return nil, err
		}
		return &Node{Name: name, XHTML: x}, nil
	}
	if start.Name.Space != NSFHIR && !(r.atomRoot && start.Name.Space == NSAtom) {
		return nil, r.fail(ErrNotFHIR, "<%s> inside <%s> is in namespace %q, expected %s", name, parent.Name, start.Name.Space, NSFHIR)
	}
	if k.primitive() && !known {
		return nil, r.fail(ErrNotFHIR, "primitive <%s> can only hold extensions, found <%s>", parent.Name, name)
	}
	if known && !d.repeats && parent.Child(name) != nil {
		return nil, r.fail(ErrNotFHIR, "<%s> may occur only once in <%s>", name, parent.Name)
	}
	if known && kindOf(d.typ) == kindInline {
		return r.contained(start)
	}
	return r.element(start, d.typ, known)
}

// contained reads <contained> holding one resource.
func (r *xmlReader) contained(start xml.StartElement) (*Node, error) {
	n := &Node{Name: start.Name.Local}
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch t := tok.(type) {
		case xml.EndElement:
			if len(n.Children) != 1 {
				return nil, r.fail(ErrNotFHIR, "<contained> must hold exactly one resource")
			}
			return n, nil
		case xml.CharData:
			if len(bytes.TrimSpace(t)) > 0 {
				return nil, r.fail(ErrNotFHIR, "unexpected text in <contained>")
			}
		case xml.StartElement:
			if len(n.Children) > 0 {
				return nil, r.fail(ErrNotFHIR, "<contained> must hold exactly one resource")
			}
			if t.Name.Space != NSFHIR {
				return nil, r.fail(ErrNotFHIR, "contained <%s> is not in the FHIR namespace", t.Name.Local)
			}
			c, err := r.resource(t)
			if err != nil {
				return nil, err
			}
			r.pop()
			n.Children = append(n.Children, c)
		}
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

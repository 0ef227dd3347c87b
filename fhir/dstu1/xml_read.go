package dstu1

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

type xmlReader struct {
	data []byte
	sc   *xmlScanner
	lim  Limits
	// atomRoot: the single resource's root was in the Atom namespace (SoapUI examples); its descendants
	// may then be in the Atom namespace too.
	atomRoot bool
	depth    int
	count    int
	path     []string
	entryIdx int // index of the feed entry being read, for error paths
	ar       arena
	kids     []*Node // children of the open elements, innermost last
}

func newXMLReader(data []byte, l Limits) *xmlReader {
	return &xmlReader{data: data, sc: newXMLScanner(data), lim: l, path: make([]string, 0, 16)}
}

func (r *xmlReader) failAt(off int, sentinel error, format string, args ...any) *SyntaxError {
	line, col := lineCol(r.data, off)
	path := slices.Clone(r.path)
	if len(path) > 1 && path[0] == "feed" && path[1] == "entry" {
		path[1] = "entry[" + strconv.Itoa(r.entryIdx) + "]"
	}
	return &SyntaxError{Format: FormatXML, Line: line, Column: col, Path: strings.Join(path, "/"),
		Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

// fail reports an error at the current position (just after the last token read).
func (r *xmlReader) fail(sentinel error, format string, args ...any) *SyntaxError {
	return r.failAt(r.sc.pos, sentinel, format, args...)
}

// next returns the next start tag, end tag or text, enforcing the limits. Comments and processing
// instructions are skipped by the scanner; a DTD is refused. The end of the document is an error here:
// callers only ask for tokens inside an element.
func (r *xmlReader) next() (xtok, error) {
	tok, err := r.sc.next()
	if err != nil {
		se := err.(*scanError)
		return tok, r.failAt(se.off, se.sentinel, "%s", se.msg)
	}
	switch tok.kind {
	case xEOF:
		return tok, r.fail(nil, "unexpected end of document")
	case xStart:
		r.depth++
		r.count++
		r.path = append(r.path, tok.local)
		if r.depth > r.lim.MaxDepth {
			return tok, r.fail(ErrTooDeep, "depth %d exceeds limit %d", r.depth, r.lim.MaxDepth)
		}
		if r.count > r.lim.MaxElements {
			return tok, r.fail(ErrTooManyElements, "more than %d elements", r.lim.MaxElements)
		}
	case xEnd:
		r.depth--
		// The path is popped by the caller after it reports errors for the element.
	}
	return tok, nil
}

func (r *xmlReader) pop() { r.path = r.path[:len(r.path)-1] }

// root returns the document element (the scanner skips the prolog).
func (r *xmlReader) root() (xtok, error) {
	for {
		tok, err := r.next()
		if err != nil {
			return xtok{}, err
		}
		if tok.kind == xStart {
			return tok, nil
		}
	}
}

// end checks that nothing but whitespace, comments and processing instructions follows the root.
func (r *xmlReader) end() error {
	tok, err := r.sc.next()
	if err != nil {
		se := err.(*scanError)
		return r.failAt(se.off, se.sentinel, "%s", se.msg)
	}
	if tok.kind != xEOF {
		return r.fail(nil, "content after the document element")
	}
	return nil
}

func (r *xmlReader) bundle() (*Bundle, error) {
	start, err := r.root()
	if err != nil {
		return nil, err
	}
	if start.local != "feed" || start.space != NSAtom {
		return nil, r.fail(ErrNotFHIR, "expected an Atom <feed> (namespace %s), found <%s> in namespace %q", NSAtom, start.local, start.space)
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
	if start.space != NSFHIR && start.space != NSAtom {
		return nil, r.fail(ErrNotFHIR, "expected a FHIR resource in namespace %s, found <%s> in namespace %q", NSFHIR, start.local, start.space)
	}
	if start.local == "feed" {
		return nil, r.fail(ErrNotFHIR, "expected a single resource, found a bundle (<feed>)")
	}
	r.atomRoot = start.space == NSAtom
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
		switch t := tok; t.kind {
		case xEnd:
			return nil
		case xText:
			if strings.TrimSpace(t.text) != "" {
				return r.fail(nil, "unexpected text in <feed>")
			}
		case xStart:
			if err := r.feedChild(b, t); err != nil {
				return err
			}
			r.pop()
		}
	}
}

func (r *xmlReader) feedChild(b *Bundle, t xtok) error {
	var err error
	switch {
	case t.space == NSAtom:
		switch t.local {
		case "id":
			b.ID, err = r.text()
		case "title":
			b.Title, err = r.text()
		case "updated":
			b.Updated, err = r.date()
		case "published":
			b.Published, err = r.date()
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
			r.entryIdx = len(b.Entries) // errors name it as feed/entry[i], as JSON paths do
			if r.lim.MaxEntries > 0 && len(b.Entries) >= r.lim.MaxEntries {
				return r.fail(ErrTooManyEntries, "more than %d entries", r.lim.MaxEntries)
			}
			var e *Entry
			e, err = r.entry()
			b.Entries = append(b.Entries, e)
		default:
			err = r.skip() // other Atom metadata (generator, icon, ...) is not used by FHIR
		}
	case t.space == NSOpenSearch && t.local == "totalResults":
		b.TotalResults, err = r.text()
		b.HasTotal = true
	case t.space == NSTombstones && t.local == "deleted-entry":
		if r.lim.MaxEntries > 0 && len(b.Entries) >= r.lim.MaxEntries {
			return r.fail(ErrTooManyEntries, "more than %d entries", r.lim.MaxEntries)
		}
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
		switch t := tok; t.kind {
		case xEnd:
			if e.Resource == nil {
				return nil, r.fail(ErrNotFHIR, "entry has no content")
			}
			return e, nil
		case xText:
			if strings.TrimSpace(t.text) != "" {
				return nil, r.fail(nil, "unexpected text in <entry>")
			}
		case xStart:
			if t.space != NSAtom {
				err = r.skip()
			} else {
				switch t.local {
				case "id":
					e.ID, err = r.text()
				case "title":
					e.Title, err = r.text()
				case "updated":
					e.Updated, err = r.date()
				case "published":
					e.Published, err = r.date()
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

func (r *xmlReader) deletedEntry(t xtok) (*Entry, error) {
	e := &Entry{}
	for _, a := range t.attrs {
		switch a.local {
		case "ref":
			e.ID = strings.TrimSpace(a.value)
		case "when":
			e.Deleted = strings.TrimSpace(a.value)
		}
	}
	if e.Deleted == "" {
		return nil, r.fail(ErrNotFHIR, "deleted-entry without a when attribute")
	}
	if !r.lim.SkipValueChecks {
		if err := checkAtomDate(e.Deleted); err != nil {
			return nil, r.fail(ErrNotFHIR, "deleted-entry when: %v", err)
		}
	}
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch t := tok; t.kind {
		case xEnd:
			return e, nil
		case xStart:
			if t.space == NSAtom && t.local == "link" {
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
		switch t := tok; t.kind {
		case xEnd:
			if res == nil {
				return nil, r.fail(ErrNotFHIR, "entry <content> holds no resource")
			}
			return res, nil
		case xText:
			if strings.TrimSpace(t.text) != "" {
				return nil, r.fail(ErrNotFHIR, "entry <content> holds text instead of a FHIR resource")
			}
		case xStart:
			if res != nil {
				return nil, r.fail(ErrNotFHIR, "entry <content> holds more than one resource")
			}
			if t.space != NSFHIR {
				return nil, r.fail(ErrNotFHIR, "<%s> in entry content is not in the FHIR namespace %s", t.local, NSFHIR)
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

// date reads an Atom date element (updated, published): its text, an instant.
func (r *xmlReader) date() (string, error) {
	s, err := r.text()
	if err == nil && !r.lim.SkipValueChecks {
		if verr := checkAtomDate(s); verr != nil {
			return "", r.fail(ErrNotFHIR, "%v", verr)
		}
	}
	return s, err
}

// text reads the character content of a simple element (Atom id, title, ...), trimmed.
func (r *xmlReader) text() (string, error) {
	var sb strings.Builder
	for {
		tok, err := r.next()
		if err != nil {
			return "", err
		}
		switch t := tok; t.kind {
		case xEnd:
			return strings.TrimSpace(sb.String()), nil
		case xText:
			sb.WriteString(t.text)
		case xStart:
			return "", r.fail(ErrNotFHIR, "unexpected element <%s> inside a text element", t.local)
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
		switch t := tok; t.kind {
		case xEnd:
			return p, nil
		case xStart:
			switch t.local {
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
		switch t := tok; t.kind {
		case xEnd:
			if out == "" && strings.TrimSpace(text.String()) != "" {
				out = xhtmlParagraph(strings.TrimSpace(text.String()))
			}
			return out, nil
		case xText:
			text.WriteString(t.text)
		case xStart:
			if out != "" || t.space != NSXHTML || t.local != "div" {
				return "", r.fail(ErrNotFHIR, "entry summary must hold one XHTML <div>, found <%s>", t.local)
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
		switch tok.kind {
		case xStart:
			depth++
		case xEnd:
			depth--
			if depth > 0 {
				r.pop()
			}
		}
	}
	return nil
}

func linkOf(t xtok) Link {
	var l Link
	for _, a := range t.attrs {
		switch a.local {
		case "rel":
			l.Rel = a.value
		case "href":
			l.Href = a.value
		}
	}
	return l
}

func categoryOf(t xtok) Category {
	var c Category
	for _, a := range t.attrs {
		switch a.local {
		case "term":
			c.Term = a.value
		case "label":
			c.Label = a.value
		case "scheme":
			c.Scheme = a.value
		}
	}
	return c
}

// resource reads a resource element (its start tag already read).
func (r *xmlReader) resource(start xtok) (*Node, error) {
	t, ok := resourceType(start.local)
	if !ok {
		return nil, r.fail(ErrNotFHIR, "unknown resource type %q", start.local)
	}
	if start.local == "Binary" {
		return nil, r.fail(ErrNotFHIR, "Binary resources are not supported")
	}
	return r.element(start, t, true)
}

// element reads one FHIR element of schema type t (typeUnknown when the schema does not know it).
func (r *xmlReader) element(start xtok, t int, known bool) (*Node, error) {
	n := r.ar.node()
	n.Name = start.local
	mark := len(r.kids)
	unknownKids := false // only then do repetitions of unknown elements need a shape check
	k := kindOf(t)
	for _, a := range start.attrs {
		if a.space != "" {
			continue // xmlns declarations, xml:lang and foreign attributes carry no FHIR data
		}
		switch a.local {
		case "id":
			n.ID = a.value
		case "value":
			n.Value, n.HasValue = a.value, true
		case "url":
			n.URL = a.value
		}
	}
	if known {
		if n.HasValue && !k.primitive() {
			return nil, r.fail(ErrNotFHIR, "<%s> is %s and cannot have a value attribute", n.Name, aType(t))
		}
		if n.HasValue {
			if err := checkPrimitive(k, n.Value); err != nil {
				return nil, r.fail(ErrNotFHIR, "<%s value=%q>: %v", n.Name, n.Value, err)
			}
			if !r.lim.SkipValueChecks {
				if err := checkValue(schemaTypes[t].prim, n.Value); err != nil {
					return nil, r.fail(ErrNotFHIR, "<%s>: %v", n.Name, err)
				}
			}
		}
	}
	isExt := n.Name == "extension" || n.Name == "modifierExtension"
	if isExt && n.URL == "" && known {
		return nil, r.fail(ErrNotFHIR, "<%s> without a url attribute", n.Name)
	}
	if n.URL != "" && !isExt {
		return nil, r.fail(ErrNotFHIR, "<%s>: only extensions have a url attribute", n.Name)
	}
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch tt := tok; tt.kind {
		case xEnd:
			n.Children = r.ar.children(r.kids[mark:])
			clear(r.kids[mark:])
			r.kids = r.kids[:mark]
			if err := checkShape(n, k, known); err != nil {
				return nil, r.fail(ErrNotFHIR, "%v", err)
			}
			if unknownKids {
				if err := checkUnknownGroups(n, t); err != nil {
					return nil, r.fail(ErrNotFHIR, "%v", err)
				}
			}
			return n, nil
		case xText:
			if strings.TrimSpace(tt.text) == "" {
				continue
			}
			if t == 0 && !n.HasValue { // element of a simple XSD type (xmlIdRef): the text is the value
				n.Value, n.HasValue = strings.TrimSpace(tt.text), true
				continue
			}
			return nil, r.fail(ErrNotFHIR, "unexpected text %q in <%s>", truncate(strings.TrimSpace(tt.text), 40), n.Name)
		case xStart:
			c, known, err := r.child(n, r.kids[mark:], t, k, tt)
			if err != nil {
				return nil, err
			}
			r.pop()
			r.kids = append(r.kids, c)
			unknownKids = unknownKids || !known
		}
	}
}

func (r *xmlReader) child(parent *Node, siblings []*Node, t int, k kind, start xtok) (*Node, bool, error) {
	name := start.local
	d, known := childType(t, name)
	if known && kindOf(d.typ) == kindXHTML {
		if start.space != NSXHTML {
			return nil, false, r.fail(ErrNotFHIR, "<div> must be in the XHTML namespace %s", NSXHTML)
		}
		x, err := r.xhtml(start)
		if err != nil {
			return nil, false, err
		}
		return &Node{Name: name, XHTML: x}, true, nil
	}
	if start.space != NSFHIR && !(r.atomRoot && start.space == NSAtom) {
		return nil, false, r.fail(ErrNotFHIR, "<%s> inside <%s> is in namespace %q, expected %s", name, parent.Name, start.space, NSFHIR)
	}
	if k.primitive() && !known {
		return nil, false, r.fail(ErrNotFHIR, "primitive <%s> can only hold extensions, found <%s>", parent.Name, name)
	}
	if !known && (name[0] == '_' || name == "id" || name == "resourceType" || (name == "url" && t == typeExtension)) {
		return nil, false, r.fail(ErrNotFHIR, "unknown element <%s> in <%s> would clash with a JSON member of that name", name, parent.Name)
	}
	if known && !d.repeats && hasChild(siblings, name) {
		return nil, false, r.fail(ErrNotFHIR, "<%s> may occur only once in <%s>", name, parent.Name)
	}
	if known && kindOf(d.typ) == kindInline {
		n, err := r.contained(start)
		return n, true, err
	}
	n, err := r.element(start, d.typ, known)
	return n, known, err
}

// contained reads <contained> holding one resource.
func (r *xmlReader) contained(start xtok) (*Node, error) {
	n := &Node{Name: start.local}
	for {
		tok, err := r.next()
		if err != nil {
			return nil, err
		}
		switch t := tok; t.kind {
		case xEnd:
			if len(n.Children) != 1 {
				return nil, r.fail(ErrNotFHIR, "<contained> must hold exactly one resource")
			}
			return n, nil
		case xText:
			if strings.TrimSpace(t.text) != "" {
				return nil, r.fail(ErrNotFHIR, "unexpected text in <contained>")
			}
		case xStart:
			if len(n.Children) > 0 {
				return nil, r.fail(ErrNotFHIR, "<contained> must hold exactly one resource")
			}
			if t.space != NSFHIR {
				return nil, r.fail(ErrNotFHIR, "contained <%s> is not in the FHIR namespace", t.local)
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

// checkShape enforces what both wire forms need: a primitive has a value, an id or extensions (the DSTU1
// rule), and an unknown element is either primitive-like (value, extensions) or complex, not both.
func checkShape(n *Node, k kind, known bool) error {
	if known && k.primitive() && !n.HasValue && n.ID == "" && len(n.Children) == 0 {
		return fmt.Errorf("<%s> must have a value, an id or extensions", n.Name)
	}
	if !known && n.HasValue {
		for _, c := range n.Children {
			if c.Name != "extension" {
				return fmt.Errorf("unknown element <%s> has both a value and child element <%s>", n.Name, c.Name)
			}
		}
	}
	return nil
}

// checkUnknownGroups requires the repetitions of an unknown element to have one shape: all with a value
// (a JSON primitive array) or all without (an array of objects).
func checkUnknownGroups(n *Node, t int) error {
	var shape map[string]bool
	for _, c := range n.Children {
		if _, known := childType(t, c.Name); known {
			continue
		}
		if shape == nil {
			shape = make(map[string]bool)
		}
		prim := c.HasValue
		if seen, ok := shape[c.Name]; ok && seen != prim {
			return fmt.Errorf("unknown element %q occurs both with and without a value", c.Name)
		}
		shape[c.Name] = prim
	}
	return nil
}

func hasChild(kids []*Node, name string) bool {
	for _, c := range kids {
		if c.Name == name {
			return true
		}
	}
	return false
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

package dstu1

import (
	"io"
)

// XML output is UTF-8 without an XML declaration, indented by two spaces. A bundle starts with
// <feed xmlns="http://www.w3.org/2005/Atom">, a single resource with <Type xmlns="http://hl7.org/fhir">.
// Feed and entry metadata are written in a fixed order (id, title, updated, published, author, link,
// category, totalResults, entries; entry: title, id, updated, published, author, link, category, content,
// summary); resource elements keep their order.

// XML returns the bundle as an Atom feed.
func (b *Bundle) XML() []byte { return b.AppendXML(make([]byte, 0, 4096)) }

// WriteXML writes the bundle as an Atom feed to w.
func (b *Bundle) WriteXML(w io.Writer) error {
	_, err := w.Write(b.XML())
	return err
}

// AppendXML appends the bundle as an Atom feed to dst.
func (b *Bundle) AppendXML(dst []byte) []byte {
	w := xmlWriter{buf: dst}
	w.buf = append(w.buf, `<feed xmlns="`+NSAtom+`">`...)
	w.depth++
	w.textElem("id", b.ID, false)
	w.textElem("title", b.Title, true)
	w.textElem("updated", b.Updated, false)
	w.textElem("published", b.Published, false)
	w.persons(b.Authors)
	w.links(b.Links)
	w.categories(b.Categories)
	if b.HasTotal {
		w.nl()
		w.buf = append(w.buf, `<os:totalResults xmlns:os="`+NSOpenSearch+`">`...)
		w.buf = appendEscapedText(w.buf, b.TotalResults)
		w.buf = append(w.buf, "</os:totalResults>"...)
	}
	for _, e := range b.Entries {
		w.entry(e)
	}
	w.buf = b.tail.appendXML(w.buf)
	w.depth--
	w.nl()
	w.buf = append(w.buf, "</feed>\n"...)
	return w.buf
}

// XML returns the resource in the FHIR XML form.
func (r *Resource) XML() []byte { return r.AppendXML(make([]byte, 0, 1024)) }

// WriteXML writes the resource in the FHIR XML form to w.
func (r *Resource) WriteXML(w io.Writer) error {
	_, err := w.Write(r.XML())
	return err
}

// AppendXML appends the resource in the FHIR XML form to dst.
func (r *Resource) AppendXML(dst []byte) []byte {
	w := xmlWriter{buf: dst}
	w.resource(r.Node, true)
	w.buf = append(w.buf, '\n')
	return w.buf
}

type xmlWriter struct {
	buf   []byte
	depth int
}

func (w *xmlWriter) nl() {
	w.buf = append(w.buf, '\n')
	for i := 0; i < w.depth; i++ {
		w.buf = append(w.buf, "  "...)
	}
}

func (w *xmlWriter) textElem(name, v string, typed bool) {
	if v == "" {
		return
	}
	w.nl()
	w.buf = append(w.buf, '<')
	w.buf = append(w.buf, name...)
	if typed {
		w.buf = append(w.buf, ` type="text"`...)
	}
	w.buf = append(w.buf, '>')
	w.buf = appendEscapedText(w.buf, v)
	w.buf = append(w.buf, "</"...)
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, '>')
}

func (w *xmlWriter) persons(ps []Person) {
	for _, p := range ps {
		w.nl()
		w.buf = append(w.buf, "<author>"...)
		w.depth++
		w.textElem("name", p.Name, false)
		w.textElem("uri", p.URI, false)
		w.depth--
		w.nl()
		w.buf = append(w.buf, "</author>"...)
	}
}

func (w *xmlWriter) links(ls []Link) {
	for _, l := range ls {
		w.nl()
		w.buf = append(w.buf, "<link"...)
		if l.Rel != "" {
			w.attr("rel", l.Rel)
		}
		w.attr("href", l.Href)
		w.buf = append(w.buf, "/>"...)
	}
}

func (w *xmlWriter) categories(cs []Category) {
	for _, c := range cs {
		w.nl()
		w.buf = append(w.buf, "<category"...)
		w.attr("term", c.Term)
		if c.Label != "" {
			w.attr("label", c.Label)
		}
		w.attr("scheme", c.Scheme)
		w.buf = append(w.buf, "/>"...)
	}
}

func (w *xmlWriter) attr(name, v string) {
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, `="`...)
	w.buf = appendEscapedAttr(w.buf, v)
	w.buf = append(w.buf, '"')
}

func (w *xmlWriter) entry(e *Entry) {
	w.nl()
	if e.Deleted != "" && e.Resource == nil {
		w.buf = append(w.buf, `<at:deleted-entry xmlns:at="`+NSTombstones+`"`...)
		w.attr("ref", e.ID)
		w.attr("when", e.Deleted)
		w.buf = append(w.buf, '>')
		w.depth++
		w.links(e.Links)
		w.depth--
		w.nl()
		w.buf = append(w.buf, "</at:deleted-entry>"...)
		return
	}
	w.buf = append(w.buf, "<entry>"...)
	w.depth++
	w.textElem("title", e.Title, true)
	w.textElem("id", e.ID, false)
	w.textElem("updated", e.Updated, false)
	w.textElem("published", e.Published, false)
	w.persons(e.Authors)
	w.links(e.Links)
	w.categories(e.Categories)
	if e.Resource != nil && e.Resource.Node != nil {
		w.nl()
		w.buf = append(w.buf, `<content type="text/xml">`...)
		w.depth++
		w.resource(e.Resource.Node, true)
		w.depth--
		w.nl()
		w.buf = append(w.buf, "</content>"...)
	}
	if e.Summary != "" {
		w.nl()
		w.buf = append(w.buf, `<summary type="xhtml">`...)
		w.buf = append(w.buf, e.Summary...)
		w.buf = append(w.buf, "</summary>"...)
	}
	w.depth--
	w.nl()
	w.buf = append(w.buf, "</entry>"...)
}

func (w *xmlWriter) resource(n *Node, declareNS bool) {
	t, ok := resourceType(n.Name)
	if !ok {
		t = typeUnknown
	}
	if w.depth > 0 {
		w.nl()
	}
	w.startTag(n)
	if declareNS {
		w.buf = append(w.buf, ` xmlns="`+NSFHIR+`"`...)
	}
	w.body(n, t)
}

func (w *xmlWriter) startTag(n *Node) {
	w.buf = append(w.buf, '<')
	w.buf = append(w.buf, n.Name...)
	if n.ID != "" {
		w.attr("id", n.ID)
	}
	if n.URL != "" {
		w.attr("url", n.URL)
	}
	if n.HasValue {
		w.attr("value", n.Value)
	}
}

// body closes the start tag of n and writes its children and end tag.
func (w *xmlWriter) body(n *Node, t int) {
	if len(n.Children) == 0 {
		w.buf = append(w.buf, "/>"...)
		return
	}
	w.buf = append(w.buf, '>')
	w.depth++
	for _, c := range n.Children {
		w.element(c, t)
	}
	w.depth--
	w.nl()
	w.buf = append(w.buf, "</"...)
	w.buf = append(w.buf, n.Name...)
	w.buf = append(w.buf, '>')
}

func (w *xmlWriter) element(n *Node, parent int) {
	d, _ := childType(parent, n.Name)
	switch kindOf(d.typ) {
	case kindXHTML:
		w.nl()
		w.buf = append(w.buf, n.XHTML...)
		return
	case kindInline:
		w.nl()
		w.buf = append(w.buf, "<contained>"...)
		w.depth++
		for _, c := range n.Children {
			w.resource(c, false)
		}
		w.depth--
		w.nl()
		w.buf = append(w.buf, "</contained>"...)
		return
	}
	w.nl()
	w.startTag(n)
	w.body(n, d.typ)
}

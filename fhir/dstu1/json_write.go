package dstu1

import (
	"io"
	"unicode/utf8"
)

// JSONOptions tune JSON output.
type JSONOptions struct {
	// ElementIDKey is the member name for element ids: "id" (the default: what the Koppeltaal Python
	// connector writes and reads, and CLIENTS.md says deployed clients win) or "_id".
	ElementIDKey string
}

// JSON output: compact, UTF-8, "resourceType" first in every resource object, element members in schema
// order. Repeating elements (per the DSTU1 schemas) are arrays. Elements the schema does not know are
// written as they were read from JSON; coming from XML they become an array when they occur more than once
// and a single value otherwise. Primitive ids and extensions go into "_name" members.

// JSON returns the bundle in the DSTU1 JSON form.
func (b *Bundle) JSON() []byte { return b.AppendJSON(make([]byte, 0, 4096), JSONOptions{}) }

// WriteJSON writes the bundle in the DSTU1 JSON form to w.
func (b *Bundle) WriteJSON(w io.Writer) error {
	_, err := w.Write(b.JSON())
	return err
}

// AppendJSON appends the bundle in the DSTU1 JSON form to dst.
func (b *Bundle) AppendJSON(dst []byte, o JSONOptions) []byte {
	w := newJSONWriter(dst, o)
	w.buf = append(w.buf, `{"resourceType":"Bundle"`...)
	w.strMember("title", b.Title)
	w.strMember("id", b.ID)
	w.strMember("updated", b.Updated)
	w.strMember("published", b.Published)
	w.persons(b.Authors)
	w.links(b.Links)
	w.categories(b.Categories)
	if b.HasTotal {
		w.buf = append(w.buf, `,"totalResults":`...)
		w.buf = appendJSONString(w.buf, b.TotalResults)
	}
	w.buf = append(w.buf, `,"entry":[`...)
	for i, e := range b.Entries {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.entry(e)
	}
	w.buf = b.tail.appendJSON(w.buf, len(b.Entries) > 0)
	w.buf = append(w.buf, "]}"...)
	return w.buf
}

// JSON returns the resource in the DSTU1 JSON form.
func (r *Resource) JSON() []byte { return r.AppendJSON(make([]byte, 0, 1024), JSONOptions{}) }

// WriteJSON writes the resource in the DSTU1 JSON form to w.
func (r *Resource) WriteJSON(w io.Writer) error {
	_, err := w.Write(r.JSON())
	return err
}

// AppendJSON appends the resource in the DSTU1 JSON form to dst.
func (r *Resource) AppendJSON(dst []byte, o JSONOptions) []byte {
	w := newJSONWriter(dst, o)
	w.resource(r.Node)
	return w.buf
}

type jsonWriter struct {
	buf   []byte
	idKey string
}

func newJSONWriter(dst []byte, o JSONOptions) *jsonWriter {
	k := o.ElementIDKey
	if k == "" {
		k = "id"
	}
	return &jsonWriter{buf: dst, idKey: k}
}

// strMember writes ,"key":"v" when v is not empty (the object already has a first member).
func (w *jsonWriter) strMember(key, v string) {
	if v == "" {
		return
	}
	w.buf = append(w.buf, ',', '"')
	w.buf = append(w.buf, key...)
	w.buf = append(w.buf, '"', ':')
	w.buf = appendJSONString(w.buf, v)
}

func (w *jsonWriter) persons(ps []Person) {
	if len(ps) == 0 {
		return
	}
	w.buf = append(w.buf, `,"author":[`...)
	for i, p := range ps {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, `{"name":`...)
		w.buf = appendJSONString(w.buf, p.Name)
		w.strMember("uri", p.URI)
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, ']')
}

func (w *jsonWriter) links(ls []Link) {
	if len(ls) == 0 {
		return
	}
	w.buf = append(w.buf, `,"link":[`...)
	for i, l := range ls {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, `{"rel":`...)
		w.buf = appendJSONString(w.buf, l.Rel)
		w.buf = append(w.buf, `,"href":`...)
		w.buf = appendJSONString(w.buf, l.Href)
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, ']')
}

func (w *jsonWriter) categories(cs []Category) {
	if len(cs) == 0 {
		return
	}
	w.buf = append(w.buf, `,"category":[`...)
	for i, c := range cs {
		if i > 0 {
			w.buf = append(w.buf, ',')
		}
		w.buf = append(w.buf, `{"term":`...)
		w.buf = appendJSONString(w.buf, c.Term)
		w.strMember("label", c.Label)
		w.buf = append(w.buf, `,"scheme":`...)
		w.buf = appendJSONString(w.buf, c.Scheme)
		w.buf = append(w.buf, '}')
	}
	w.buf = append(w.buf, ']')
}

func (w *jsonWriter) entry(e *Entry) {
	w.buf = append(w.buf, '{')
	mark := len(w.buf)
	w.strMember("title", e.Title)
	w.strMember("id", e.ID)
	w.strMember("updated", e.Updated)
	w.strMember("published", e.Published)
	w.strMember("deleted", e.Deleted)
	w.persons(e.Authors)
	w.links(e.Links)
	w.categories(e.Categories)
	if e.Resource != nil && e.Resource.Node != nil {
		w.buf = append(w.buf, `,"content":`...)
		w.resource(e.Resource.Node)
	}
	w.strMember("summary", e.Summary)
	if len(w.buf) > mark && w.buf[mark] == ',' { // drop the separator before the first member
		w.buf = append(w.buf[:mark], w.buf[mark+1:]...)
	}
	w.buf = append(w.buf, '}')
}

func (w *jsonWriter) resource(n *Node) {
	t, ok := resourceType(n.Name)
	if !ok {
		t = typeUnknown
	}
	w.buf = append(w.buf, `{"resourceType":`...)
	w.buf = appendJSONString(w.buf, n.Name)
	w.members(n, t, true)
	w.buf = append(w.buf, '}')
}

// object writes a complex element as a JSON object.
func (w *jsonWriter) object(n *Node, t int) {
	w.buf = append(w.buf, '{')
	w.members(n, t, false)
	w.buf = append(w.buf, '}')
}

// members writes the id, url and children of n; first says whether a member was already written.
func (w *jsonWriter) members(n *Node, t int, started bool) {
	sep := func() {
		if started {
			w.buf = append(w.buf, ',')
		}
		started = true
	}
	if n.ID != "" {
		sep()
		w.buf = append(w.buf, '"')
		w.buf = append(w.buf, w.idKey...)
		w.buf = append(w.buf, '"', ':')
		w.buf = appendJSONString(w.buf, n.ID)
	}
	if n.URL != "" {
		sep()
		w.buf = append(w.buf, `"url":`...)
		w.buf = appendJSONString(w.buf, n.URL)
	}
	kids := n.Children
	// Many children (hostile or huge input): group by name with a map in one pass, so writing stays
	// linear. Few children: scan, without allocating.
	var groups map[string][]*Node
	if len(kids) > 32 {
		groups = make(map[string][]*Node)
		for _, c := range kids {
			groups[c.Name] = append(groups[c.Name], c)
		}
	}
	for i, c := range kids {
		var group []*Node
		if groups != nil {
			group = groups[c.Name]
			if group == nil || group[0] != c {
				continue
			}
		} else {
			if seenBefore(kids, i) {
				continue
			}
			group = sameName(kids, i)
		}
		d, known := childType(t, c.Name)
		k := kindOf(d.typ)
		array := d.repeats
		if !known {
			array = len(group) > 1 || c.jsonArray
			if c.HasValue || c.jsonKind != kindComplex {
				k = kindString
			}
		}
		switch k {
		case kindXHTML:
			sep()
			w.key(c.Name)
			w.buf = appendJSONString(w.buf, c.XHTML)
		case kindInline:
			sep()
			w.key(c.Name)
			w.buf = append(w.buf, '[')
			for j, g := range group {
				if j > 0 {
					w.buf = append(w.buf, ',')
				}
				if len(g.Children) > 0 {
					w.resource(g.Children[0])
				} else {
					w.buf = append(w.buf, "{}"...)
				}
			}
			w.buf = append(w.buf, ']')
		case kindString, kindNumber, kindBool:
			w.primitives(c.Name, d.typ, k, group, array, sep)
		default:
			sep()
			w.key(c.Name)
			if array {
				w.buf = append(w.buf, '[')
			}
			for j, g := range group {
				if j > 0 {
					w.buf = append(w.buf, ',')
				}
				w.object(g, d.typ)
				if !array {
					break
				}
			}
			if array {
				w.buf = append(w.buf, ']')
			}
		}
	}
}

func (w *jsonWriter) key(name string) {
	w.buf = append(w.buf, '"')
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, '"', ':')
}

// primitives writes "name": value(s) and, when any has an id or extensions, "_name": {...} or [...].
func (w *jsonWriter) primitives(name string, t int, k kind, group []*Node, array bool, sep func()) {
	if !array {
		group = group[:1]
	}
	anyValue, anyExtra := false, false
	for _, g := range group {
		anyValue = anyValue || g.HasValue
		anyExtra = anyExtra || g.ID != "" || len(g.Children) > 0
	}
	if anyValue {
		sep()
		w.key(name)
		if array {
			w.buf = append(w.buf, '[')
		}
		for j, g := range group {
			if j > 0 {
				w.buf = append(w.buf, ',')
			}
			if !g.HasValue {
				w.buf = append(w.buf, "null"...)
				continue
			}
			w.primitiveValue(g, k)
		}
		if array {
			w.buf = append(w.buf, ']')
		}
	}
	if !anyExtra {
		return
	}
	sep()
	w.buf = append(w.buf, '"', '_')
	w.buf = append(w.buf, name...)
	w.buf = append(w.buf, '"', ':')
	if array {
		w.buf = append(w.buf, '[')
	}
	for j, g := range group {
		if j > 0 {
			w.buf = append(w.buf, ',')
		}
		if g.ID == "" && len(g.Children) == 0 {
			w.buf = append(w.buf, "null"...)
			continue
		}
		// Only the id and extensions of a primitive travel in "_name".
		w.buf = append(w.buf, '{')
		started := false
		if g.ID != "" {
			w.buf = append(w.buf, '"')
			w.buf = append(w.buf, w.idKey...)
			w.buf = append(w.buf, '"', ':')
			w.buf = appendJSONString(w.buf, g.ID)
			started = true
		}
		first := true
		for _, c := range g.Children {
			if c.Name != "extension" {
				continue
			}
			if first {
				if started {
					w.buf = append(w.buf, ',')
				}
				w.buf = append(w.buf, `"extension":[`...)
				first = false
			} else {
				w.buf = append(w.buf, ',')
			}
			w.object(c, typeExtension)
		}
		if !first {
			w.buf = append(w.buf, ']')
		}
		w.buf = append(w.buf, '}')
	}
	if array {
		w.buf = append(w.buf, ']')
	}
}

func (w *jsonWriter) primitiveValue(g *Node, k kind) {
	if g.jsonKind != kindComplex {
		k = g.jsonKind
	}
	switch {
	case k == kindBool && (g.Value == "true" || g.Value == "false"):
		w.buf = append(w.buf, g.Value...)
	case k == kindNumber && validNumber(g.Value):
		w.buf = append(w.buf, g.Value...)
	default:
		w.buf = appendJSONString(w.buf, g.Value)
	}
}

func seenBefore(kids []*Node, i int) bool {
	name := kids[i].Name
	for j := 0; j < i; j++ {
		if kids[j].Name == name {
			return true
		}
	}
	return false
}

// sameName returns kids[i] and every later child with the same name. The common case (a run of
// neighbours) returns a sub-slice without allocating.
func sameName(kids []*Node, i int) []*Node {
	name := kids[i].Name
	j := i + 1
	for j < len(kids) && kids[j].Name == name {
		j++
	}
	for k := j; k < len(kids); k++ {
		if kids[k].Name == name {
			out := append([]*Node(nil), kids[i:j]...)
			for ; k < len(kids); k++ {
				if kids[k].Name == name {
					out = append(out, kids[k])
				}
			}
			return out
		}
	}
	return kids[i:j]
}

const hexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string (control characters, U+2028 and U+2029 escaped). Bytes that
// are not UTF-8 become U+FFFD, so the output is valid JSON whatever s holds (issue 16 item 6).
func appendJSONString(buf []byte, s string) []byte {
	buf = append(buf, '"')
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			buf = append(buf, s[last:i]...)
			switch c {
			case '"', '\\':
				buf = append(buf, '\\', c)
			case '\n':
				buf = append(buf, '\\', 'n')
			case '\r':
				buf = append(buf, '\\', 'r')
			case '\t':
				buf = append(buf, '\\', 't')
			default:
				buf = append(buf, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			last = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			buf = append(buf, s[last:i]...)
			buf = append(buf, "\uFFFD"...)
			i += size
			last = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			buf = append(buf, s[last:i]...)
			buf = append(buf, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			last = i
			continue
		}
		i += size
	}
	buf = append(buf, s[last:]...)
	return append(buf, '"')
}

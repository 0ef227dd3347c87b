package dstu1

import (
	"fmt"
	"strings"
	"unicode"
)

// jsonConv turns parsed JSON into the model, checking it against the schema table.
type jsonConv struct {
	data []byte
	lim  Limits
	ar   arena
	kids []*Node   // children of the objects being converted, innermost last
	path []pathSeg // built into a string only when reporting an error
}

// pathSeg is a member name, or an array index when key is "".
type pathSeg struct {
	key string
	idx int
}

func (c *jsonConv) fail(off int, sentinel error, format string, args ...any) *SyntaxError {
	line, col := lineCol(c.data, off)
	var b strings.Builder
	for i, p := range c.path {
		switch {
		case p.key == "":
			fmt.Fprintf(&b, "[%d]", p.idx)
		case i > 0:
			b.WriteByte('.')
			fallthrough
		default:
			b.WriteString(p.key)
		}
	}
	return &SyntaxError{Format: FormatJSON, Line: line, Column: col, Path: b.String(), Msg: fmt.Sprintf(format, args...), Err: sentinel}
}

func (c *jsonConv) push(key string) { c.path = append(c.path, pathSeg{key: key}) }
func (c *jsonConv) pushIndex(i int) { c.path = append(c.path, pathSeg{idx: i}) }
func (c *jsonConv) pop()            { c.path = c.path[:len(c.path)-1] }

func scanJSON(data []byte, l Limits) (jval, *jsonConv, error) {
	s := jsonScanner{data: data, src: string(data), lim: l}
	v, err := s.document()
	if err != nil {
		return v, nil, err
	}
	conv := &jsonConv{data: data, lim: l, path: make([]pathSeg, 0, 16)}
	if v.kind != 'o' {
		return v, nil, conv.fail(v.off, ErrNotFHIR, "expected a JSON object")
	}
	return v, conv, nil
}

func parseJSONBundle(data []byte, l Limits) (*Bundle, error) {
	v, c, err := scanJSON(data, l)
	if err != nil {
		return nil, err
	}
	rt := member(v, "resourceType")
	if rt == nil || rt.kind != 's' {
		return nil, c.fail(v.off, ErrNotFHIR, `expected "resourceType": "Bundle"`)
	}
	if rt.str != "Bundle" {
		return nil, c.fail(rt.off, ErrNotFHIR, "expected a Bundle, found resourceType %q", rt.str)
	}
	return c.bundle(v)
}

func parseJSONResource(data []byte, l Limits) (*Resource, error) {
	v, c, err := scanJSON(data, l)
	if err != nil {
		return nil, err
	}
	if rt := member(v, "resourceType"); rt != nil && rt.kind == 's' && rt.str == "Bundle" {
		return nil, c.fail(rt.off, ErrNotFHIR, "expected a single resource, found a Bundle")
	}
	n, err := c.resource(v)
	if err != nil {
		return nil, err
	}
	return &Resource{Node: n}, nil
}

func member(v jval, key string) *jval {
	for i := range v.obj {
		if v.obj[i].key == key {
			return &v.obj[i].val
		}
	}
	return nil
}

// str requires a string (numbers and booleans are accepted as their literal text).
func (c *jsonConv) str(v jval) (string, error) {
	switch v.kind {
	case 's':
		if !validXMLChars(v.str) {
			return "", c.fail(v.off, ErrNotFHIR, "string holds a character XML cannot carry")
		}
		return v.str, nil
	case 'n':
		return v.str, nil
	case 't':
		return "true", nil
	case 'f':
		return "false", nil
	}
	return "", c.fail(v.off, ErrNotFHIR, "expected a string")
}

// string requires a JSON string (ids, urls, links, categories: no number or boolean stands in for one).
func (c *jsonConv) string(v jval) (string, error) {
	if v.kind != 's' {
		return "", c.fail(v.off, ErrNotFHIR, "expected a JSON string, found %s", jsonValueName(v.kind))
	}
	return c.str(v)
}

// text reads an Atom text value (ids, titles, author names): a JSON string, trimmed as the XML reader trims
// element text.
func (c *jsonConv) text(v jval) (string, error) {
	s, err := c.string(v)
	return strings.TrimSpace(s), err
}

// instant reads an Atom date (updated, published, deleted): a string holding an instant.
func (c *jsonConv) instant(v jval) (string, error) {
	s, err := c.text(v)
	if err == nil && !c.lim.SkipValueChecks {
		if verr := checkAtomDate(s); verr != nil {
			return "", c.fail(v.off, ErrNotFHIR, "%v", verr)
		}
	}
	return s, err
}

// each calls fn for every element of an array member, rejecting nulls.
func (c *jsonConv) each(v jval, fn func(jval) error) error {
	if v.kind != 'a' {
		return c.fail(v.off, ErrNotFHIR, "expected an array")
	}
	for i, item := range v.arr {
		c.pushIndex(i)
		if item.kind == 'z' {
			return c.fail(item.off, ErrNullInArray, "")
		}
		if err := fn(item); err != nil {
			return err
		}
		c.pop()
	}
	return nil
}

func (c *jsonConv) bundle(v jval) (*Bundle, error) {
	b := &Bundle{}
	for _, m := range v.obj {
		c.push(m.key)
		if m.val.kind == 'z' {
			return nil, c.fail(m.val.off, ErrNotFHIR, "%q is null: expected a value (FHIR JSON has no null members; leave it out)", m.key)
		}
		var err error
		switch m.key {
		case "resourceType":
		case "id":
			b.ID, err = c.text(m.val)
		case "title":
			b.Title, err = c.text(m.val)
		case "updated":
			b.Updated, err = c.instant(m.val)
		case "published":
			b.Published, err = c.instant(m.val)
		case "totalResults":
			if m.val.kind == 'n' { // servers write it as a string; a number means the same
				b.TotalResults = m.val.str
			} else {
				b.TotalResults, err = c.text(m.val)
			}
			b.HasTotal = true
		case "author":
			b.Authors, err = c.persons(m.val)
		case "link":
			b.Links, err = c.links(m.val)
		case "category":
			b.Categories, err = c.categories(m.val)
		case "entry":
			err = c.each(m.val, func(ev jval) error {
				if c.lim.MaxEntries > 0 && len(b.Entries) >= c.lim.MaxEntries {
					return c.fail(ev.off, ErrTooManyEntries, "more than %d entries", c.lim.MaxEntries)
				}
				e, err := c.entry(ev)
				b.Entries = append(b.Entries, e)
				return err
			})
		}
		if err != nil {
			return nil, err
		}
		c.pop()
	}
	return b, nil
}

func (c *jsonConv) entry(v jval) (*Entry, error) {
	if v.kind != 'o' {
		return nil, c.fail(v.off, ErrNotFHIR, "an entry must be an object")
	}
	e := &Entry{}
	for _, m := range v.obj {
		c.push(m.key)
		if m.val.kind == 'z' {
			return nil, c.fail(m.val.off, ErrNotFHIR, "%q is null: expected a value (FHIR JSON has no null members; leave it out)", m.key)
		}
		var err error
		switch m.key {
		case "id":
			e.ID, err = c.text(m.val)
		case "title":
			e.Title, err = c.text(m.val)
		case "updated":
			e.Updated, err = c.instant(m.val)
		case "published":
			e.Published, err = c.instant(m.val)
		case "deleted":
			e.Deleted, err = c.instant(m.val)
		case "author":
			e.Authors, err = c.persons(m.val)
		case "link":
			e.Links, err = c.links(m.val)
		case "category":
			e.Categories, err = c.categories(m.val)
		case "summary":
			var s string
			if s, err = c.string(m.val); err == nil {
				e.Summary, err = c.xhtml(m.val.off, s)
			}
		case "content":
			var n *Node
			if n, err = c.resource(m.val); err == nil {
				e.Resource = &Resource{Node: n}
			}
		}
		if err != nil {
			return nil, err
		}
		c.pop()
	}
	if e.Resource == nil && e.Deleted == "" {
		return nil, c.fail(v.off, ErrNotFHIR, "entry has no content")
	}
	return e, nil
}

func (c *jsonConv) xhtml(off int, s string) (string, error) {
	x, err := parseXHTML(s, c.lim)
	if err != nil {
		return "", c.fail(off, ErrNotFHIR, "narrative XHTML: %v", err)
	}
	return x, nil
}

// eachObject reads an array of objects whose members are strings (Atom authors, links, categories): add
// is called once per object, then set once per member.
func (c *jsonConv) eachObject(v jval, what string, add func(), set func(key, val string)) error {
	return c.each(v, func(ov jval) error {
		if ov.kind != 'o' {
			return c.fail(ov.off, ErrNotFHIR, "%s must be a JSON object, found %s", what, jsonValueName(ov.kind))
		}
		add()
		for _, m := range ov.obj {
			c.push(m.key)
			s, err := c.string(m.val)
			if err != nil {
				return err
			}
			set(m.key, s)
			c.pop()
		}
		return nil
	})
}

func (c *jsonConv) persons(v jval) ([]Person, error) {
	var out []Person
	err := c.eachObject(v, "an author", func() { out = append(out, Person{}) }, func(key, val string) {
		switch p := &out[len(out)-1]; key { // trimmed, as the XML reader trims element text
		case "name":
			p.Name = strings.TrimSpace(val)
		case "uri":
			p.URI = strings.TrimSpace(val)
		}
	})
	return out, err
}

func (c *jsonConv) links(v jval) ([]Link, error) {
	var out []Link
	err := c.eachObject(v, "a link", func() { out = append(out, Link{}) }, func(key, val string) {
		switch l := &out[len(out)-1]; key {
		case "rel":
			l.Rel = val
		case "href":
			l.Href = val
		}
	})
	return out, err
}

func (c *jsonConv) categories(v jval) ([]Category, error) {
	var out []Category
	err := c.eachObject(v, "a category", func() { out = append(out, Category{}) }, func(key, val string) {
		switch cat := &out[len(out)-1]; key {
		case "term":
			cat.Term = val
		case "label":
			cat.Label = val
		case "scheme":
			cat.Scheme = val
		}
	})
	return out, err
}

// resource converts a resource object ("resourceType" names the type).
func (c *jsonConv) resource(v jval) (*Node, error) {
	if v.kind != 'o' {
		return nil, c.fail(v.off, ErrNotFHIR, "a resource must be a JSON object")
	}
	rt := member(v, "resourceType")
	if rt == nil || rt.kind != 's' {
		return nil, c.fail(v.off, ErrNotFHIR, `resource has no "resourceType"`)
	}
	t, ok := resourceType(rt.str)
	if !ok || rt.str == "Binary" {
		return nil, c.fail(rt.off, ErrNotFHIR, "unknown resource type %q", rt.str)
	}
	n := c.ar.node()
	n.Name = rt.str
	return n, c.object(n, v, t, true)
}

// object fills n (of schema type t) from a JSON object.
func (c *jsonConv) object(n *Node, v jval, t int, root bool) error {
	isExt := t == typeExtension
	var extras []jmember // "_name" members, applied after the values they belong to
	mark := len(c.kids)  // children are collected on c.kids, then stored once
	unknownKids := false // only then do repetitions of unknown elements need a shape check
	for _, m := range v.obj {
		key := m.key
		c.push(key)
		if m.val.kind == 'z' {
			return c.fail(m.val.off, ErrNotFHIR, "%q is null: expected a value (FHIR JSON has no null members; leave it out)", key)
		}
		var err error
		switch {
		case root && key == "resourceType":
		case key == "_id" || key == "id": // DSTU1 writes "_id"; the Python connector writes "id"
			n.ID, err = c.string(m.val)
		case isExt && key == "url":
			n.URL, err = c.string(m.val)
		case len(key) > 1 && key[0] == '_':
			extras = append(extras, m)
		default:
			var known bool
			known, err = c.member(n, v, t, key, m.val)
			unknownKids = unknownKids || !known
		}
		if err != nil {
			return err
		}
		c.pop()
	}
	n.Children = c.ar.children(c.kids[mark:])
	clear(c.kids[mark:])
	c.kids = c.kids[:mark]
	if unknownKids {
		if err := checkUnknownGroups(n, t); err != nil {
			return c.fail(v.off, ErrNotFHIR, "%v", err)
		}
	}
	for _, m := range extras {
		c.push(m.key)
		if err := c.primitiveExtras(n, t, m.key[1:], m.val); err != nil {
			return err
		}
		c.pop()
	}
	if isExt && n.URL == "" {
		return c.fail(v.off, ErrNotFHIR, `extension without "url"`)
	}
	sortSchema(n, t)
	return nil
}

func (c *jsonConv) member(n *Node, obj jval, t int, key string, v jval) (known bool, err error) {
	d, known := childType(t, key)
	if !known && (!isXMLName(key) || key == "resourceType") {
		return known, c.fail(v.off, ErrNotFHIR, "member name %q is not a valid element name here", key)
	}
	if kindOf(t).primitive() && !known {
		return known, c.fail(v.off, ErrNotFHIR, "unexpected member %q", key)
	}
	if v.kind != 'a' {
		if known && d.repeats {
			return known, c.fail(v.off, ErrNotFHIR, "%q repeats: expected a JSON array, found %s", key, jsonValueName(v.kind))
		}
		child, err := c.value(key, d, known, v)
		if err != nil {
			return known, err
		}
		c.kids = append(c.kids, child)
		return known, nil
	}
	if known && !d.repeats {
		return known, c.fail(v.off, ErrNotFHIR, "%q does not repeat: expected one value, found an array", key)
	}
	var extras *jval // "_key": only it can justify a null in a primitive array
	for i, item := range v.arr {
		c.pushIndex(i)
		if item.kind == 'z' {
			if extras == nil {
				extras = member(obj, "_"+key)
			}
			if !known || extras == nil || extras.kind != 'a' || i >= len(extras.arr) || extras.arr[i].kind != 'o' {
				return known, c.fail(item.off, ErrNullInArray, "")
			}
			x := c.ar.node()
			x.Name, x.jsonArray = key, !known
			c.kids = append(c.kids, x)
			c.pop()
			continue
		}
		child, err := c.value(key, d, known, item)
		if err != nil {
			return known, err
		}
		child.jsonArray = !known
		c.kids = append(c.kids, child)
		c.pop()
	}
	return known, nil
}

// value converts one JSON value of element name.
func (c *jsonConv) value(name string, d elemDef, known bool, v jval) (*Node, error) {
	if !known {
		switch v.kind {
		case 'o':
			n := c.ar.node()
			n.Name = name
			return n, c.object(n, v, typeUnknown, false)
		case 'a':
			return nil, c.fail(v.off, ErrNotFHIR, "nested arrays are not FHIR")
		}
		s, err := c.str(v)
		if err != nil {
			return nil, err
		}
		n := c.ar.node()
		n.Name, n.Value, n.HasValue = name, s, true
		switch v.kind {
		case 'n':
			n.jsonKind = kindNumber
		case 't', 'f':
			n.jsonKind = kindBool
		}
		return n, nil
	}
	k := kindOf(d.typ)
	switch k {
	case kindString, kindNumber, kindBool:
		// DSTU1 JSON: integer and decimal are JSON numbers, boolean is true/false, every other primitive a string.
		if want := jsonKindOf(k); v.kind != want && !(want == 't' && v.kind == 'f') {
			return nil, c.fail(v.off, ErrNotFHIR, "%q is %s: expected a JSON %s, found %s", name, aType(d.typ),
				jsonKindName(k), jsonValueName(v.kind))
		}
		s, err := c.str(v)
		if err != nil {
			return nil, err
		}
		if err := checkPrimitive(k, s); err != nil {
			return nil, c.fail(v.off, ErrNotFHIR, "%q: %v", name, err)
		}
		if !c.lim.SkipValueChecks {
			if err := checkValue(schemaTypes[d.typ].prim, s); err != nil {
				return nil, c.fail(v.off, ErrNotFHIR, "%q: %v", name, err)
			}
		}
		n := c.ar.node()
		n.Name, n.Value, n.HasValue = name, s, true
		return n, nil
	case kindXHTML:
		if v.kind != 's' {
			return nil, c.fail(v.off, ErrNotFHIR, "narrative div must be an XHTML string")
		}
		x, err := c.xhtml(v.off, v.str)
		if err != nil {
			return nil, err
		}
		return &Node{Name: name, XHTML: x}, nil
	case kindInline:
		r, err := c.resource(v)
		if err != nil {
			return nil, err
		}
		return &Node{Name: name, Children: []*Node{r}}, nil
	}
	if v.kind != 'o' {
		return nil, c.fail(v.off, ErrNotFHIR, "%q is %s: expected a JSON object", name, aType(d.typ))
	}
	n := c.ar.node()
	n.Name = name
	return n, c.object(n, v, d.typ, false)
}

// isXMLName reports whether s can be an XML element name without a prefix (an NCName).
func isXMLName(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_' || unicode.IsLetter(r):
		case i > 0 && (r == '-' || r == '.' || unicode.IsDigit(r)):
		default:
			return false
		}
	}
	return true
}

func jsonKindName(k kind) string {
	switch k {
	case kindNumber:
		return "number"
	case kindBool:
		return "boolean"
	}
	return "string"
}

// jsonKindOf is the JSON value kind (jval.kind) a primitive of kind k takes; booleans are 't' or 'f'.
func jsonKindOf(k kind) byte {
	switch k {
	case kindNumber:
		return 'n'
	case kindBool:
		return 't'
	}
	return 's'
}

// jsonValueName names a JSON value kind for errors ("a number", "an object").
func jsonValueName(k byte) string {
	switch k {
	case 's':
		return "a string"
	case 'n':
		return "a number"
	case 't', 'f':
		return "a boolean"
	case 'o':
		return "an object"
	case 'a':
		return "an array"
	}
	return "null"
}

// primitiveExtras applies "_name": the id and extensions of primitive element(s) name.
func (c *jsonConv) primitiveExtras(n *Node, t int, name string, v jval) error {
	d, known := childType(t, name)
	if known && !kindOf(d.typ).primitive() {
		return c.fail(v.off, ErrNotFHIR, "%q is not a primitive; %q is not allowed", name, "_"+name)
	}
	var targets []*Node
	n.Each(name, func(x *Node) bool { targets = append(targets, x); return true })
	apply := func(i int, ev jval) error {
		if ev.kind != 'o' {
			return c.fail(ev.off, ErrNotFHIR, "expected an object with the id and extensions of %q", name)
		}
		for len(targets) <= i {
			x := &Node{Name: name}
			n.Children = append(n.Children, x)
			targets = append(targets, x)
		}
		x := targets[i]
		if len(ev.obj) == 0 && !x.HasValue {
			return c.fail(ev.off, ErrNotFHIR, "%q has no value, id or extensions", name)
		}
		for _, m := range ev.obj {
			c.push(m.key)
			switch m.key {
			case "_id", "id":
				s, err := c.string(m.val)
				if err != nil {
					return err
				}
				x.ID = s
			case "extension":
				err := c.each(m.val, func(e jval) error {
					en, err := c.value("extension", elemDef{typ: typeExtension}, true, e)
					x.Children = append(x.Children, en)
					return err
				})
				if err != nil {
					return err
				}
			default:
				return c.fail(m.off, ErrNotFHIR, "unexpected member %q", m.key)
			}
			c.pop()
		}
		return nil
	}
	if v.kind == 'a' {
		for i, ev := range v.arr {
			if ev.kind == 'z' {
				continue // no id or extensions for this repetition
			}
			c.pushIndex(i)
			if err := apply(i, ev); err != nil {
				return err
			}
			c.pop()
		}
		return nil
	}
	return apply(0, v)
}

// Command gen reads the FHIR DSTU1 (0.0.82) XML schemas in fhir/dstu1/schema and writes the element table
// (type + element → child type, repeats, required, primitive kind and type, schema order) that the codec uses
// to convert between the XML and JSON forms and to check values and required elements. It is run by `go generate ./fhir/dstu1/`; its output is committed.
package main

import (
	"bytes"
	"encoding/xml"
	"flag"
	"fmt"
	"go/format"
	"log"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

const xsNS = "http://www.w3.org/2001/XMLSchema"

// xnode is a generic XML element: the schemas are walked as a tree because the order of xs:element and
// xs:choice children matters (it is the serialisation order of FHIR XML).
type xnode struct {
	XMLName  xml.Name
	Attrs    []xml.Attr `xml:",any,attr"`
	Children []xnode    `xml:",any"`
}

func (n *xnode) attr(name string) string {
	for _, a := range n.Attrs {
		if a.Name.Local == name && a.Name.Space == "" {
			return a.Value
		}
	}
	return ""
}

// elem is one element of a complex type, in schema order.
type elem struct {
	name     string
	typ      string // schema type name; "" for xhtml:div and resource refs
	repeats  bool
	required bool // minOccurs ≥ 1 outside a choice (a choice's alternatives are never required one by one)
	xhtml    bool
	simple   bool // element of a simple (text) type, e.g. xmlIdRef
}

type ctype struct {
	name     string
	base     string
	restrict bool
	elems    []elem
	attrs    []string
	valueTyp string // type of the value attribute, for primitives (boolean-primitive, AddressUse-list, ...)
	inline   bool   // Resource.Inline: a choice of whole resources
	simple   bool   // simpleContent (Binary)
}

func main() {
	dir := flag.String("schema", "schema", "directory holding the DSTU1 .xsd files")
	out := flag.String("out", "schema_gen.go", "output Go file")
	flag.Parse()

	files, err := filepath.Glob(filepath.Join(*dir, "*.xsd"))
	if err != nil || len(files) == 0 {
		log.Fatalf("no schemas in %s: %v", *dir, err)
	}
	sort.Strings(files)
	types := map[string]*ctype{}
	simple := map[string]bool{}
	resources := map[string]string{} // top-level element → type
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			log.Fatal(err)
		}
		var root xnode
		if err := xml.Unmarshal(data, &root); err != nil {
			log.Fatalf("%s: %v", f, err)
		}
		for i := range root.Children {
			c := &root.Children[i]
			if c.XMLName.Space != xsNS {
				continue
			}
			switch c.XMLName.Local {
			case "simpleType":
				simple[c.attr("name")] = true
			case "element":
				resources[c.attr("name")] = c.attr("type")
			case "complexType":
				t := parseComplex(c)
				if _, dup := types[t.name]; dup {
					log.Fatalf("%s: duplicate complexType %s", f, t.name)
				}
				types[t.name] = t
			}
		}
	}

	// Flatten: base elements first (Element.extension, BackboneElement.modifierExtension, Resource.language...).
	flat := map[string][]elem{}
	var flatten func(name string) []elem
	flatten = func(name string) []elem {
		if f, ok := flat[name]; ok {
			return f
		}
		t := types[name]
		if t == nil {
			return nil
		}
		var res []elem
		if t.base != "" {
			base := t.base
			if t.restrict { // a restriction repeats the base's own elements: take the base's base
				if bt := types[base]; bt != nil {
					base = bt.base
				}
			}
			res = append(res, flatten(base)...)
		}
		res = append(res, t.elems...)
		flat[name] = res
		return res
	}
	hasValue := func(name string) bool {
		for n := name; n != ""; {
			t := types[n]
			if t == nil {
				return false
			}
			for _, a := range t.attrs {
				if a == "value" {
					return true
				}
			}
			n = t.base
		}
		return false
	}
	// prim names the FHIR primitive of a type's value (the value attribute's simple type): "dateTime" for
	// dateTime-primitive, "code" for the enumerations (AddressUse-list, ...), "" for complex types.
	prim := func(name string) string {
		for n := name; n != ""; {
			t := types[n]
			if t == nil {
				return ""
			}
			switch v := t.valueTyp; {
			case strings.HasSuffix(v, "-list"):
				return "code"
			case v == "SampledDataDataType-primitive": // decimals and E/L/U separated by spaces
				return "string"
			case strings.HasSuffix(v, "-primitive"):
				return strings.TrimSuffix(v, "-primitive")
			case v != "":
				log.Fatalf("type %s: value attribute of unknown type %q", name, v)
			}
			n = t.base
		}
		return ""
	}
	rootOf := func(name string) string { // the FHIR primitive a type derives from (boolean, integer, ...)
		for n := name; n != ""; {
			t := types[n]
			if t == nil || t.base == "Element" || t.base == "" {
				return n
			}
			n = t.base
		}
		return name
	}
	kind := func(name string) string {
		t := types[name]
		switch {
		case t == nil:
			return "kindString"
		case t.inline:
			return "kindInline"
		case t.simple:
			return "kindComplex"
		case hasValue(name):
			switch rootOf(name) {
			case "boolean":
				return "kindBool"
			case "integer", "decimal":
				return "kindNumber"
			}
			return "kindString"
		}
		return "kindComplex"
	}

	names := make([]string, 0, len(types))
	for n := range types {
		names = append(names, n)
	}
	sort.Strings(names)
	// Index 0 is the synthetic "text" type used for elements of a simple XSD type (xmlIdRef, ...).
	index := map[string]int{}
	all := []string{"#simple", "#xhtml"}
	for _, n := range names {
		index[n] = len(all)
		all = append(all, n)
	}

	var b bytes.Buffer
	b.WriteString("// Code generated by fhir/dstu1/internal/gen from the DSTU1 (0.0.82) schemas in schema/; DO NOT EDIT.\n\n")
	b.WriteString("package dstu1\n\n")
	b.WriteString("// schemaTypes lists every complex type of the DSTU1 schemas. Element names map to the child type index,\n")
	b.WriteString("// whether the element repeats, and its position in the schema sequence (for XML output order).\n")
	b.WriteString("var schemaTypes = [...]typeDef{\n")
	b.WriteString("\t{name: \"#simple\", kind: kindString},\n")
	b.WriteString("\t{name: \"#xhtml\", kind: kindXHTML},\n")
	for _, n := range names {
		fmt.Fprintf(&b, "\t{name: %q, kind: %s", n, kind(n))
		if p := prim(n); p != "" {
			fmt.Fprintf(&b, ", prim: prim%s", strings.ToUpper(p[:1])+p[1:])
		}
		els := flatten(n)
		if len(els) > 0 {
			b.WriteString(", elems: map[string]elemDef{")
			for i, e := range els {
				ti := 0
				switch {
				case e.xhtml:
					ti = 1
				case e.simple:
					ti = 0
				default:
					idx, ok := index[e.typ]
					if !ok {
						if simple[e.typ] || strings.HasPrefix(e.typ, "xs:") {
							idx = 0
						} else {
							log.Fatalf("type %s element %s: unknown type %q", n, e.name, e.typ)
						}
					}
					ti = idx
				}
				fmt.Fprintf(&b, "%q: {typ: %d, order: %d, repeats: %v", e.name, ti, i, e.repeats)
				if e.required {
					b.WriteString(", required: true")
				}
				b.WriteString("}, ")
			}
			b.WriteString("}")
		}
		b.WriteString("},\n")
	}
	b.WriteString("}\n\n")
	b.WriteString("// resourceTypes maps each DSTU1 resource name to its index in schemaTypes.\n")
	b.WriteString("var resourceTypes = map[string]int{\n")
	rnames := make([]string, 0, len(resources))
	for n := range resources {
		rnames = append(rnames, n)
	}
	sort.Strings(rnames)
	for _, n := range rnames {
		t := types[resources[n]]
		if t == nil || !(isResource(types, t.name) || t.simple) {
			continue
		}
		fmt.Fprintf(&b, "\t%q: %d,\n", n, index[resources[n]])
	}
	b.WriteString("}\n")

	src, err := format.Source(b.Bytes())
	if err != nil {
		log.Fatalf("format generated code: %v", err)
	}
	if err := os.WriteFile(*out, src, 0o644); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("gen: %d types, %d resources → %s\n", len(names), len(rnames), *out)
}

func isResource(types map[string]*ctype, name string) bool {
	for n := name; n != ""; {
		if n == "Resource" {
			return true
		}
		t := types[n]
		if t == nil {
			return false
		}
		n = t.base
	}
	return false
}

func parseComplex(c *xnode) *ctype {
	t := &ctype{name: c.attr("name")}
	var body []xnode
	for i := range c.Children {
		ch := &c.Children[i]
		switch ch.XMLName.Local {
		case "complexContent", "simpleContent":
			if ch.XMLName.Local == "simpleContent" {
				t.simple = true
			}
			for j := range ch.Children {
				d := &ch.Children[j]
				if d.XMLName.Local == "extension" || d.XMLName.Local == "restriction" {
					t.base = d.attr("base")
					t.restrict = d.XMLName.Local == "restriction"
					body = append(body, d.Children...)
				}
			}
		default:
			body = append(body, *ch)
		}
	}
	for i := range body {
		collect(t, &body[i], false, false)
	}
	return t
}

// collect walks sequences and choices; every element of a choice with maxOccurs>1 repeats, and no element
// inside a choice is required by itself. minOccurs defaults to 1 (XML Schema).
func collect(t *ctype, n *xnode, repeating, inChoice bool) {
	switch n.XMLName.Local {
	case "attribute":
		t.attrs = append(t.attrs, n.attr("name"))
		if n.attr("name") == "value" {
			t.valueTyp = n.attr("type")
		}
	case "sequence", "choice":
		rep := repeating || (n.attr("maxOccurs") != "" && n.attr("maxOccurs") != "1")
		choice := inChoice || n.XMLName.Local == "choice" || n.attr("minOccurs") == "0"
		for i := range n.Children {
			collect(t, &n.Children[i], rep, choice)
		}
	case "element":
		max := n.attr("maxOccurs")
		rep := repeating || (max != "" && max != "1" && max != "0")
		required := !inChoice && n.attr("minOccurs") != "0"
		if ref := n.attr("ref"); ref != "" {
			if ref == "xhtml:div" {
				t.elems = append(t.elems, elem{name: "div", xhtml: true, required: !inChoice && n.attr("minOccurs") != "0"})
				return
			}
			t.inline = true // Resource.Inline: choice of resource elements
			return
		}
		typ := n.attr("type")
		t.elems = append(t.elems, elem{name: n.attr("name"), typ: typ, repeats: rep, required: required, simple: strings.HasPrefix(typ, "xs:")})
	}
}

package loadtest

import (
	"bytes"
	"encoding/xml"
	"strconv"
	"strings"
)

// el is a FHIR DSTU1 element that renders to both the XML and the JSON form:
// primitives become <name value=".."/> or "name": value, attrs become XML
// attributes or JSON properties (url, id), and many marks elements that
// repeat (JSON arrays). Building bodies from this tree instead of two sets of
// templates keeps the XML and JSON messages of a run identical in content.
type el struct {
	name  string
	val   any // string, bool or int for primitives; nil for complex elements
	attrs []kv
	kids  []*el
	many  bool
}

type kv struct{ k, v string }

const (
	ktBase   = "http://ggz.koppeltaal.nl/fhir/Koppeltaal/"
	fhirNS   = "http://hl7.org/fhir"
	atomNS   = "http://www.w3.org/2005/Atom"
	maxDepth = 64
)

func prim(name string, v any) *el       { return &el{name: name, val: v} }
func node(name string, kids ...*el) *el { return &el{name: name, kids: kids} }
func many(e *el) *el                    { e.many = true; return e }
func withAttr(e *el, k, v string) *el   { e.attrs = append(e.attrs, kv{k, v}); return e }
func ref(name, url string) *el          { return node(name, prim("reference", url)) }
func ext(url string, kids ...*el) *el {
	return many(withAttr(node("extension", kids...), "url", ktBase+url))
}
func extVal(url, typ string, v any) *el { return ext(url, prim(typ, v)) }
func coding(system, code, display string) *el {
	return node("coding", prim("system", system), prim("code", code), prim("display", display))
}
func codeable(name, system, code, display string) *el {
	return node(name, many(coding(system, code, display)))
}

// writeXML renders e as XML; root elements get the FHIR namespace.
func (e *el) writeXML(b *bytes.Buffer, root bool) {
	b.WriteByte('<')
	b.WriteString(e.name)
	if root {
		b.WriteString(` xmlns="` + fhirNS + `"`)
	}
	for _, a := range e.attrs {
		b.WriteString(" " + a.k + `="`)
		xmlEscape(b, a.v)
		b.WriteByte('"')
	}
	if e.val != nil {
		b.WriteString(` value="`)
		xmlEscape(b, primString(e.val))
		b.WriteString(`"/>`)
		return
	}
	if len(e.kids) == 0 {
		b.WriteString("/>")
		return
	}
	b.WriteByte('>')
	for _, k := range e.kids {
		k.writeXML(b, false)
	}
	b.WriteString("</" + e.name + ">")
}

func primString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case bool:
		return strconv.FormatBool(x)
	case int:
		return strconv.Itoa(x)
	}
	return ""
}

// xmlEscape writes s escaped for XML text and attribute values; the common
// case (nothing to escape) costs no allocation.
func xmlEscape(b *bytes.Buffer, s string) {
	if !strings.ContainsAny(s, "<>&'\"\r\n\t") {
		b.WriteString(s)
		return
	}
	_ = xml.EscapeText(b, []byte(s))
}

// writeJSON renders e's content as a JSON object (the caller writes the name).
// resourceType, when not empty, is written first (DSTU1 resource JSON).
func (e *el) writeJSON(b *bytes.Buffer, resourceType string) {
	b.WriteByte('{')
	first := true
	key := func(k string) {
		if !first {
			b.WriteByte(',')
		}
		first = false
		jsonString(b, k)
		b.WriteByte(':')
	}
	if resourceType != "" {
		key("resourceType")
		jsonString(b, resourceType)
	}
	for _, a := range e.attrs {
		key(a.k)
		jsonString(b, a.v)
	}
	// Group repeated children under one key, in first-appearance order.
	done := make(map[int]bool, len(e.kids))
	for i, k := range e.kids {
		if done[i] {
			continue
		}
		key(k.name)
		if !k.many {
			k.writeJSONValue(b)
			continue
		}
		b.WriteByte('[')
		n := 0
		for j := i; j < len(e.kids); j++ {
			if e.kids[j].name == k.name {
				done[j] = true
				if n > 0 {
					b.WriteByte(',')
				}
				e.kids[j].writeJSONValue(b)
				n++
			}
		}
		b.WriteByte(']')
	}
	b.WriteByte('}')
}

func (e *el) writeJSONValue(b *bytes.Buffer) {
	if e.val == nil {
		e.writeJSON(b, "")
		return
	}
	switch x := e.val.(type) {
	case string:
		jsonString(b, x)
	default:
		b.WriteString(primString(x))
	}
}

// jsonString writes s as a JSON string without allocating (the bodies are
// rendered for every request, so this is the load tool's own hot path).
func jsonString(b *bytes.Buffer, s string) {
	const hex = "0123456789abcdef"
	b.WriteByte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b.WriteString(s[start:i])
		switch c {
		case '"', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteString(`\u00`)
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
		start = i + 1
	}
	b.WriteString(s[start:])
	b.WriteByte('"')
}

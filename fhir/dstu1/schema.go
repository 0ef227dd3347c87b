package dstu1

import (
	"cmp"
	"slices"
	"strings"
)

//go:generate go run ./internal/gen -schema schema -out schema_gen.go

// kind says how an element's value is represented: a primitive (JSON string, number or boolean), a complex
// element (JSON object), the XHTML narrative div, or an inline (contained) resource.
type kind uint8

const (
	kindComplex kind = iota
	kindString
	kindNumber
	kindBool
	kindXHTML
	kindInline
)

func (k kind) primitive() bool { return k == kindString || k == kindNumber || k == kindBool }

// primitive is the FHIR primitive type of a value (the XSD type of its value attribute), for value checks.
type primitive uint8

const (
	primNone primitive = iota // a complex type
	primString
	primBoolean
	primInteger
	primDecimal
	primDateTime
	primDate
	primInstant
	primUri
	primId
	primCode
	primOid
	primUuid
	primBase64Binary
)

// typeDef is one complex type of the DSTU1 schemas (generated into schema_gen.go).
type typeDef struct {
	name  string
	kind  kind
	prim  primitive
	elems map[string]elemDef
}

// elemDef describes an element of a type: its type index in schemaTypes, whether it repeats (a JSON array),
// whether the schema requires it (minOccurs 1, outside a choice), and its position in the schema sequence.
type elemDef struct {
	typ      int
	order    int
	repeats  bool
	required bool
}

// typeUnknown marks an element the schema does not know; such elements are kept as they are.
const typeUnknown = -1

// lookup returns the definition of element name inside type t, if the schema knows it.
func lookup(t int, name string) (elemDef, bool) {
	if t < 0 {
		return elemDef{}, false
	}
	d, ok := schemaTypes[t].elems[name]
	return d, ok
}

// resourceType returns the schema type index of a resource name.
func resourceType(name string) (int, bool) {
	t, ok := resourceTypes[name]
	return t, ok
}

// typeByName indexes schemaTypes by type name (built once; read-only afterwards).
var typeByName = func() map[string]int {
	m := make(map[string]int, len(schemaTypes))
	for i, t := range schemaTypes {
		m[t.name] = i
	}
	return m
}()

func typeOf(name string) int {
	t, ok := typeByName[name]
	if !ok {
		panic("dstu1: schema has no type " + name)
	}
	return t
}

// Type indexes the codec uses directly.
var (
	typeExtension         = typeOf("Extension")
	typeResourceReference = typeOf("ResourceReference")
	typeMessageHeader     = typeOf("MessageHeader")
)

// kindOf returns the kind of a type index; unknown elements are complex unless they carry a value.
func kindOf(t int) kind {
	if t < 0 {
		return kindComplex
	}
	return schemaTypes[t].kind
}

// childType returns the schema type of child name inside type parent. Under an unknown parent, extension
// and modifierExtension still are Extensions; everything else is unknown.
func childType(parent int, name string) (elemDef, bool) {
	if d, ok := lookup(parent, name); ok {
		return d, true
	}
	if parent < 0 && (name == "extension" || name == "modifierExtension") {
		return elemDef{typ: typeExtension, order: 0, repeats: true}, true
	}
	return elemDef{typ: typeUnknown, order: 1 << 30}, false
}

// sortSchema puts the children of n (of type t) in schema order, keeping the relative order of elements
// with the same position and putting unknown elements last. JSON has no element order; XML needs it.
func sortSchema(n *Node, t int) {
	if len(n.Children) < 2 || t < 0 {
		return
	}
	sorted := true
	prev := -1
	for _, c := range n.Children {
		d, _ := childType(t, c.Name)
		if d.order < prev {
			sorted = false
			break
		}
		prev = d.order
	}
	if sorted {
		return
	}
	slices.SortStableFunc(n.Children, func(a, b *Node) int {
		da, _ := childType(t, a.Name)
		db, _ := childType(t, b.Name)
		return cmp.Compare(da.order, db.order)
	})
}

// aType names schema type t with its article, for errors: "an id", "a dateTime", "a CodeableConcept".
func aType(t int) string {
	name := schemaTypes[t].name
	if strings.ContainsRune("aeiouAEIOU", rune(name[0])) {
		return "an " + name
	}
	return "a " + name
}

package dstu1

import "strconv"

// walkElements calls visit for n (of schema type t, at path) and then, depth-first in document order, for
// every complex element below it and every element the schema does not know where it is (t = typeUnknown),
// contained resources included; parent is the type of the element holding n (typeUnknown for the root).
// Paths read "Patient.name[0].period" (repeating elements numbered, a contained resource by its type). visit
// returns false to skip what lies below a node; unknown elements are not looked into. The checks of a built
// or received resource (MissingRequired, UnknownElements) walk with it.
func walkElements(n *Node, t, parent int, path string, visit func(n *Node, t, parent int, path string) bool) {
	if !visit(n, t, parent, path) || t == typeUnknown {
		return
	}
	var seen map[string]int
	for _, c := range n.Children {
		d, known := lookup(t, c.Name)
		p := path + "." + c.Name
		switch {
		case !known:
			visit(c, typeUnknown, t, p)
			continue
		case d.repeats:
			if seen == nil {
				seen = map[string]int{}
			}
			p += "[" + strconv.Itoa(seen[c.Name]) + "]"
			seen[c.Name]++
		}
		switch kindOf(d.typ) {
		case kindComplex:
			walkElements(c, d.typ, t, p, visit)
		case kindInline:
			for _, res := range c.Children {
				if rt, ok := resourceType(res.Name); ok {
					walkElements(res, rt, t, p+"."+res.Name, visit)
				}
			}
		}
	}
}

// entryPath is the path prefix of the resource of bundle entry i, as the JSON form has it.
func entryPath(i int) string { return "entry[" + strconv.Itoa(i) + "].content." }

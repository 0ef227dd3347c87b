package dstu1

import (
	"slices"
	"strconv"
)

// MissingRequired returns the paths of the elements the DSTU1 schema requires (minOccurs 1, schema_gen.go)
// that r lacks, each level's in schema order before those inside its elements: "MessageHeader.source.software",
// "OperationOutcome.issue[1].severity". An empty complex element counts as missing and is not looked into.
// A required primitive counts as missing when it has neither a non-empty value nor extensions (a DSTU1
// string is at least one character; clients that parse with the schema's cardinalities reject both
// forms). Contained resources are checked too; elements the schema does not know are not looked into.
// nil means complete.
func (r *Resource) MissingRequired() []string {
	if r == nil || r.Node == nil {
		return nil
	}
	t, ok := resourceType(r.Name)
	if !ok {
		return []string{r.Name}
	}
	var out []string
	missingIn(r.Node, t, r.Name, &out)
	return out
}

// MissingRequired returns MissingRequired of every entry's resource, each path prefixed with
// "entry[i].content.".
func (b *Bundle) MissingRequired() []string {
	var out []string
	for i, e := range b.Entries {
		for _, p := range e.Resource.MissingRequired() {
			out = append(out, "entry["+strconv.Itoa(i)+"].content."+p)
		}
	}
	return out
}

func missingIn(n *Node, t int, path string, out *[]string) {
	def := schemaTypes[t]
	var need []string
	for name, d := range def.elems {
		if d.required && !slices.ContainsFunc(n.Children, func(c *Node) bool { return c.Name == name && present(c) }) {
			need = append(need, name)
		}
	}
	slices.SortFunc(need, func(a, b string) int { return def.elems[a].order - def.elems[b].order })
	for _, name := range need {
		*out = append(*out, path+"."+name)
	}
	seen := map[string]int{}
	for _, c := range n.Children {
		d, known := lookup(t, c.Name)
		if !known {
			continue
		}
		p := path + "." + c.Name
		if d.repeats {
			p += "[" + strconv.Itoa(seen[c.Name]) + "]"
			seen[c.Name]++
		}
		switch kindOf(d.typ) {
		case kindComplex:
			if !present(c) {
				continue // reported above when required; nothing inside to look at
			}
			missingIn(c, d.typ, p, out)
		case kindInline:
			for _, res := range c.Children {
				if rt, ok := resourceType(res.Name); ok {
					missingIn(res, rt, p+"."+res.Name, out)
				}
			}
		}
	}
}

// present reports whether an element holds something: a non-empty value, children (extensions, elements)
// or a narrative.
func present(n *Node) bool {
	return (n.HasValue && n.Value != "") || len(n.Children) > 0 || n.XHTML != ""
}

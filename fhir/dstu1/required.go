package dstu1

import "slices"

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
			out = append(out, entryPath(i)+p)
		}
	}
	return out
}

// missingIn appends the required elements missing in n and below it.
func missingIn(n *Node, t int, path string, out *[]string) {
	walkElements(n, t, typeUnknown, path, func(n *Node, t, _ int, path string) bool {
		if t == typeUnknown {
			return false
		}
		if rt, isRoot := resourceType(n.Name); !(isRoot && rt == t) && !present(n) {
			return false // an empty element: reported by its parent when required; nothing inside to look at
		}
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
		return true
	})
}

// present reports whether an element holds something: a non-empty value, children (extensions, elements)
// or a narrative.
func present(n *Node) bool {
	return (n.HasValue && n.Value != "") || len(n.Children) > 0 || n.XHTML != ""
}

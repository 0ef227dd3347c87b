package dstu1

import (
	"slices"
	"sort"
)

// Unknown is an element the DSTU1 schema does not have where it appears (a misspelt "birthdate" in a
// Patient): its path, its name, and the names the schema allows there (for a "did you mean").
type Unknown struct {
	Path, Name string
	Known      []string
}

// UnknownElements returns the elements of r the DSTU1 schema does not know, in document order. The codec
// keeps such elements (a message is forwarded as received); a route building a message should not make them.
// Extensions are known by construction; contained resources are looked into.
func (r *Resource) UnknownElements() []Unknown {
	if r == nil || r.Node == nil {
		return nil
	}
	t, ok := resourceType(r.Name)
	if !ok {
		return []Unknown{{Path: r.Name, Name: r.Name, Known: ResourceTypes()}}
	}
	var out []Unknown
	unknownIn(r.Node, t, r.Name, &out)
	return out
}

// UnknownElements returns UnknownElements of every entry's resource, paths prefixed "entry[i].content.".
func (b *Bundle) UnknownElements() []Unknown {
	var out []Unknown
	for i, e := range b.Entries {
		for _, u := range e.Resource.UnknownElements() {
			u.Path = entryPath(i) + u.Path
			out = append(out, u)
		}
	}
	return out
}

func unknownIn(n *Node, t int, path string, out *[]Unknown) {
	walkElements(n, t, typeUnknown, path, func(n *Node, t, parent int, path string) bool {
		if t == typeUnknown {
			*out = append(*out, Unknown{Path: path, Name: n.Name, Known: elementNames(parent)})
		}
		return t != typeExtension // extension values are typed by their value[x] name; kept as they are
	})
}

// elementNames lists the element names type t allows, sorted.
func elementNames(t int) []string {
	if t < 0 {
		return nil
	}
	names := make([]string, 0, len(schemaTypes[t].elems))
	for n := range schemaTypes[t].elems {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ResourceElements lists the top-level element names of a resource type ("Patient"), sorted; nil for a
// name that is not a DSTU1 resource.
func ResourceElements(resource string) []string {
	t, ok := resourceType(resource)
	if !ok {
		return nil
	}
	return elementNames(t)
}

// ResourceTypes lists the DSTU1 resource type names, sorted.
func ResourceTypes() []string {
	names := make([]string, 0, len(resourceTypes))
	for n := range resourceTypes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

package dstu1

// Node is one FHIR element in document order: a resource root, a complex element, a primitive, an
// extension, the narrative div, or an element the schema does not know. The same tree serves both wire forms.
//
//   - Name is the element name ("identifier", "valueString", "extension"); on a resource root it is the
//     resource type ("Patient", "Other").
//   - ID is the element's id attribute (XML id="...", JSON "_id" or "id").
//   - URL is the url of an extension or modifierExtension.
//   - Value/HasValue hold a primitive's value (XML value="...", JSON string/number/boolean).
//   - XHTML holds a narrative div as XHTML text (namespace http://www.w3.org/1999/xhtml on the div).
//   - Children are the child elements in order. A "contained" element has one child: the contained resource.
//
// Nodes are plain data; build or change them freely, then write with the Bundle/Resource writers.
type Node struct {
	Name     string
	ID       string
	URL      string
	Value    string
	HasValue bool
	XHTML    string
	Children []*Node

	// How an unknown element looked in JSON, so JSON→JSON keeps it: a number/boolean, or an array.
	jsonKind  kind
	jsonArray bool
}

// NewPrimitive returns a primitive element name with value v.
func NewPrimitive(name, v string) *Node { return &Node{Name: name, Value: v, HasValue: true} }

// NewElement returns a complex element with the given children.
func NewElement(name string, children ...*Node) *Node {
	return &Node{Name: name, Children: children}
}

// NewExtension returns an extension with url and children (a value[x] element or nested extensions).
func NewExtension(url string, children ...*Node) *Node {
	return &Node{Name: "extension", URL: url, Children: children}
}

// NewReference returns a ResourceReference element name with the given reference.
func NewReference(name, reference string) *Node {
	return NewElement(name, NewPrimitive("reference", reference))
}

// NewCoding returns a Coding element name with system, code and (if not empty) display.
func NewCoding(name, system, code, display string) *Node {
	n := NewElement(name, NewPrimitive("system", system), NewPrimitive("code", code))
	if display != "" {
		n.Children = append(n.Children, NewPrimitive("display", display))
	}
	return n
}

// Child returns the first child called name, or nil.
func (n *Node) Child(name string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name == name {
			return c
		}
	}
	return nil
}

// Get follows a path of child names (first match at each step) and returns the node or nil.
func (n *Node) Get(path ...string) *Node {
	for _, p := range path {
		n = n.Child(p)
		if n == nil {
			return nil
		}
	}
	return n
}

// Str returns the value of the primitive at path (first match at each step), or "".
func (n *Node) Str(path ...string) string {
	if c := n.Get(path...); c != nil {
		return c.Value
	}
	return ""
}

// Each calls fn for every child called name, in order, until fn returns false.
func (n *Node) Each(name string, fn func(*Node) bool) {
	if n == nil {
		return
	}
	for _, c := range n.Children {
		if c.Name == name && !fn(c) {
			return
		}
	}
}

// All returns the children called name, in order.
func (n *Node) All(name string) []*Node {
	var out []*Node
	n.Each(name, func(c *Node) bool { out = append(out, c); return true })
	return out
}

// Extension returns the first extension child whose url is one of urls, or nil.
func (n *Node) Extension(urls ...string) *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Name != "extension" {
			continue
		}
		for _, u := range urls {
			if c.URL == u {
				return c
			}
		}
	}
	return nil
}

// ExtensionValue returns the value[x] child of an extension (the first child whose name starts with
// "value"), or nil.
func (n *Node) ExtensionValue() *Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if len(c.Name) > 5 && c.Name[:5] == "value" {
			return c
		}
	}
	return nil
}

// Add appends children and returns n, for building.
func (n *Node) Add(children ...*Node) *Node {
	n.Children = append(n.Children, children...)
	return n
}

// SetChild replaces the first child called name with c (keeping its position) or appends c.
func (n *Node) SetChild(c *Node) {
	for i, old := range n.Children {
		if old.Name == c.Name {
			n.Children[i] = c
			return
		}
	}
	n.Children = append(n.Children, c)
}

// Remove deletes every child for which drop returns true and reports how many were removed.
func (n *Node) Remove(drop func(*Node) bool) int {
	kept := n.Children[:0]
	removed := 0
	for _, c := range n.Children {
		if drop(c) {
			removed++
			continue
		}
		kept = append(kept, c)
	}
	for i := len(kept); i < len(n.Children); i++ {
		n.Children[i] = nil
	}
	n.Children = kept
	return removed
}

// Clone returns a deep copy of n.
func (n *Node) Clone() *Node {
	if n == nil {
		return nil
	}
	c := *n
	if n.Children != nil {
		c.Children = make([]*Node, len(n.Children))
		for i, ch := range n.Children {
			c.Children[i] = ch.Clone()
		}
	}
	return &c
}

// Walk visits n and its descendants depth-first in document order (contained resources included). When
// fn returns false the node's children are skipped.
func (n *Node) Walk(fn func(*Node) bool) {
	if n == nil || !fn(n) {
		return
	}
	for _, c := range n.Children {
		c.Walk(fn)
	}
}

package dstu1

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
)

// Equal reports whether two bundles are the same message, and if not, the first difference with its path.
// It compares what both wire forms can carry: feed and entry metadata, and every resource element with its
// id, url, value, narrative and children. Children are compared in schema order (JSON has no element
// order; XML senders do not always follow the schema), elements of the same name keep their relative
// order, and numbers compare by value (1.0 equals 1.00). Element order within a repeating element matters.
func Equal(a, b *Bundle) (bool, string) {
	if d := diffBundle(a, b); d != "" {
		return false, d
	}
	return true, ""
}

// EqualResource is Equal for single resources.
func EqualResource(a, b *Resource) (bool, string) {
	if a == nil || b == nil || a.Node == nil || b.Node == nil {
		if (a == nil || a.Node == nil) == (b == nil || b.Node == nil) {
			return true, ""
		}
		return false, "one resource is missing"
	}
	t, ok := resourceType(a.Name)
	if !ok {
		t = typeUnknown
	}
	if d := diffNode(a.Node, b.Node, t, a.Name); d != "" {
		return false, d
	}
	return true, ""
}

func diffBundle(a, b *Bundle) string {
	if a == nil || b == nil {
		if a == b {
			return ""
		}
		return "one bundle is nil"
	}
	for _, f := range []struct{ name, x, y string }{
		{"id", a.ID, b.ID}, {"title", a.Title, b.Title}, {"updated", a.Updated, b.Updated},
		{"published", a.Published, b.Published}, {"totalResults", a.TotalResults, b.TotalResults},
	} {
		if f.x != f.y {
			return fmt.Sprintf("feed %s: %q != %q", f.name, f.x, f.y)
		}
	}
	if a.HasTotal != b.HasTotal {
		return "feed totalResults present in one bundle only"
	}
	if d := diffMeta("feed", a.Authors, b.Authors, a.Links, b.Links, a.Categories, b.Categories); d != "" {
		return d
	}
	if len(a.Entries) != len(b.Entries) {
		return fmt.Sprintf("feed: %d entries != %d entries", len(a.Entries), len(b.Entries))
	}
	for i := range a.Entries {
		if d := diffEntry(a.Entries[i], b.Entries[i], fmt.Sprintf("entry[%d]", i)); d != "" {
			return d
		}
	}
	return ""
}

func diffMeta(path string, pa, pb []Person, la, lb []Link, ca, cb []Category) string {
	if !slices.Equal(pa, pb) {
		return fmt.Sprintf("%s author: %v != %v", path, pa, pb)
	}
	if !slices.Equal(la, lb) {
		return fmt.Sprintf("%s link: %v != %v", path, la, lb)
	}
	if !slices.Equal(ca, cb) {
		return fmt.Sprintf("%s category: %v != %v", path, ca, cb)
	}
	return ""
}

func diffEntry(a, b *Entry, path string) string {
	for _, f := range []struct{ name, x, y string }{
		{"id", a.ID, b.ID}, {"title", a.Title, b.Title}, {"updated", a.Updated, b.Updated},
		{"published", a.Published, b.Published}, {"deleted", a.Deleted, b.Deleted}, {"summary", a.Summary, b.Summary},
	} {
		if f.x != f.y {
			return fmt.Sprintf("%s %s: %q != %q", path, f.name, f.x, f.y)
		}
	}
	if d := diffMeta(path, a.Authors, b.Authors, a.Links, b.Links, a.Categories, b.Categories); d != "" {
		return d
	}
	if ok, d := EqualResource(a.Resource, b.Resource); !ok {
		return path + ".content: " + d
	}
	return ""
}

func diffNode(a, b *Node, t int, path string) string {
	switch {
	case a.Name != b.Name:
		return fmt.Sprintf("%s: element %q != %q", path, a.Name, b.Name)
	case a.ID != b.ID:
		return fmt.Sprintf("%s: id %q != %q", path, a.ID, b.ID)
	case a.URL != b.URL:
		return fmt.Sprintf("%s: url %q != %q", path, a.URL, b.URL)
	case a.HasValue != b.HasValue:
		return fmt.Sprintf("%s: value present in one only (%q, %q)", path, a.Value, b.Value)
	case a.Value != b.Value && !sameNumber(a.Value, b.Value):
		return fmt.Sprintf("%s: value %q != %q", path, a.Value, b.Value)
	case a.XHTML != b.XHTML:
		return fmt.Sprintf("%s: narrative %q != %q", path, a.XHTML, b.XHTML)
	}
	ka, kb := schemaOrdered(a, t), schemaOrdered(b, t)
	seen := make(map[string]int)
	for i := 0; i < len(ka) && i < len(kb); i++ {
		ca, cb := ka[i], kb[i]
		d, _ := childType(t, ca.Name)
		ct := d.typ
		if kindOf(ct) == kindInline && len(ca.Children) == 1 {
			if rt, ok := resourceType(ca.Children[0].Name); ok {
				ct = rt
			}
			if cb.Name != ca.Name || len(cb.Children) != 1 {
				return fmt.Sprintf("%s.%s: contained differs", path, ca.Name)
			}
			if s := diffNode(ca.Children[0], cb.Children[0], ct, path+"."+ca.Name); s != "" {
				return s
			}
			continue
		}
		idx := seen[ca.Name]
		seen[ca.Name] = idx + 1
		if s := diffNode(ca, cb, ct, path+"."+ca.Name+"["+strconv.Itoa(idx)+"]"); s != "" {
			return s
		}
	}
	if len(ka) != len(kb) {
		return fmt.Sprintf("%s: %d children != %d children", path, len(ka), len(kb))
	}
	return ""
}

// schemaOrdered returns n's children sorted by schema position (stable), without changing n.
func schemaOrdered(n *Node, t int) []*Node {
	kids := slices.Clone(n.Children)
	// Unknown elements have no schema position: group them by where their name first appears, which is
	// what a JSON round trip does.
	first := make(map[string]int, len(kids))
	for i, c := range kids {
		if _, ok := first[c.Name]; !ok {
			first[c.Name] = i
		}
	}
	slices.SortStableFunc(kids, func(x, y *Node) int {
		dx, _ := childType(t, x.Name)
		dy, _ := childType(t, y.Name)
		if c := cmp.Compare(dx.order, dy.order); c != 0 {
			return c
		}
		return cmp.Compare(first[x.Name], first[y.Name])
	})
	return kids
}

func sameNumber(x, y string) bool {
	if !validNumber(x) || !validNumber(y) {
		return false
	}
	fx, err1 := strconv.ParseFloat(x, 64)
	fy, err2 := strconv.ParseFloat(y, 64)
	return err1 == nil && err2 == nil && fx == fy
}

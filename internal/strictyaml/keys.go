package strictyaml

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/internal/suggest"
)

// Wrapper is implemented by types that decode themselves (yaml.Unmarshaler) but hold values of another
// type that CheckKeys must still check: At[T] holds one T, Map[T] a mapping of T. Other Unmarshalers are
// leaves: they check their own content.
type Wrapper interface {
	// WrappedType is the type of the held value(s).
	WrappedType() reflect.Type
	// WrapsMapping reports whether the node is a mapping of WrappedType values (Map) rather than one (At).
	WrapsMapping() bool
}

// CheckKeys records every mapping key under n that no field of out's type accepts (by yaml tag), with
// its position, the section it is in and the key probably meant. what names the top level in messages
// ("the top level", "the route"). It is done on the node tree rather than by go-yaml's own strict mode so
// that every unknown key is reported at once, with a suggestion, also after ExpandEnv rewrote the tree.
func (f *File) CheckKeys(n *yaml.Node, what string, out any) {
	f.checkNode(n, reflect.TypeOf(out), what, "")
}

var (
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	wrapperType     = reflect.TypeOf((*Wrapper)(nil)).Elem()
)

func (f *File) checkNode(n *yaml.Node, t reflect.Type, what, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if reflect.PointerTo(t).Implements(wrapperType) {
		w := reflect.New(t).Interface().(Wrapper)
		if !w.WrapsMapping() {
			f.checkNode(n, w.WrappedType(), what, path)
			return
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				f.checkNode(n.Content[i+1], w.WrappedType(), what, join(path, n.Content[i].Value))
			}
		}
		return
	}
	if t.Implements(unmarshalerType) || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			f.checkNode(c, t, what, path)
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for i, c := range n.Content {
				f.checkNode(c, t.Elem(), what, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				f.checkNode(n.Content[i+1], t.Elem(), what, join(path, n.Content[i].Value))
			}
		case reflect.Struct:
			fields := Fields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Value == "<<" { // merge key: the merged mapping has the same type
					f.checkNode(n.Content[i+1], t, what, path)
					continue
				}
				ft, ok := fields[k.Value]
				if !ok {
					f.Errorf(k, "unknown key %q in %s%s (allowed: %s)", k.Value, section(what, path), Suggest(k.Value, keysOf(fields)),
						strings.Join(keysInOrder(t), ", "))
					continue
				}
				f.checkNode(n.Content[i+1], ft.Type, what, join(path, k.Value))
			}
		}
	}
}

func section(what, path string) string {
	if path == "" {
		return what
	}
	return path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Field is a struct field as YAML sees it.
type Field struct {
	Name  string
	Type  reflect.Type
	Index []int
	Tag   reflect.StructTag
}

// Fields maps the YAML keys a struct accepts to their fields, following `yaml:",inline"` embedding.
func Fields(t reflect.Type) map[string]Field {
	m := map[string]Field{}
	for _, f := range fieldList(t) {
		m[f.Name] = f
	}
	return m
}

// fieldList is the struct's YAML fields in declaration order.
func fieldList(t reflect.Type) []Field {
	var out []Field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, opts, _ := strings.Cut(sf.Tag.Get("yaml"), ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := sf.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for _, inner := range fieldList(ft) {
					inner.Index = append([]int{i}, inner.Index...)
					out = append(out, inner)
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, Field{Name: name, Type: sf.Type, Index: []int{i}, Tag: sf.Tag})
	}
	return out
}

func keysOf(fields map[string]Field) []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func keysInOrder(t reflect.Type) []string {
	var out []string
	for _, f := range fieldList(t) {
		out = append(out, f.Name)
	}
	return out
}

// Suggest returns ` (did you mean "x"?)` when one of known is close to got, else "".
func Suggest(got string, known []string) string {
	best := suggest.Closest(got, known)
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

package strictyaml

import (
	"reflect"

	"go.yaml.in/yaml/v4"
)

// Pos is where a value stands in its file (1-based; 0 when it was absent).
type Pos struct{ Line, Column int }

// PosOf is n's position.
func PosOf(n *yaml.Node) Pos { return Pos{n.Line, n.Column} }

// At is a value of type T with its position, for the checks that come after decoding (a name that must
// exist elsewhere, a number that must be positive) to report where it was written. Set is false when the
// key was absent or its value could not be decoded (that is reported by the decoder).
type At[T any] struct {
	Value T
	Pos
	Set bool
	// Node is the value as written.
	Node *yaml.Node
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (a *At[T]) UnmarshalYAML(n *yaml.Node) error {
	a.Pos, a.Node = PosOf(n), n
	if err := n.Decode(&a.Value); err != nil {
		return err
	}
	a.Set = true
	return nil
}

// WrappedType implements Wrapper.
func (*At[T]) WrappedType() reflect.Type { return reflect.TypeFor[T]() }

// WrapsMapping implements Wrapper.
func (*At[T]) WrapsMapping() bool { return false }

// Entry is one key of a Map with its value.
type Entry[T any] struct {
	Key string
	// KeyPos is where the key is written; Pos where its value begins.
	KeyPos, Pos Pos
	Value       T
	Node        *yaml.Node
}

// Map is a YAML mapping of names to T that keeps the order and positions of its keys (a Go map keeps
// neither). Duplicate keys are refused by the parser.
type Map[T any] struct {
	Entries []Entry[T]
	Pos
	Set bool
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (m *Map[T]) UnmarshalYAML(n *yaml.Node) error {
	m.Pos, m.Set = PosOf(n), true
	if n.Kind != yaml.MappingNode {
		return &yaml.LoadErrors{Errors: []*yaml.LoadError{{Stage: yaml.ConstructorStage, Mark: yaml.Mark{Line: n.Line, Column: n.Column},
			Message: "want a mapping of name: value, got a " + KindName(n)}}}
	}
	var errs []*yaml.LoadError
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		e := Entry[T]{Key: k.Value, KeyPos: PosOf(k), Pos: PosOf(v), Node: v}
		if err := v.Decode(&e.Value); err != nil {
			if les, ok := err.(*yaml.LoadErrors); ok {
				errs = append(errs, les.Errors...)
				continue
			}
			return err
		}
		m.Entries = append(m.Entries, e)
	}
	if len(errs) > 0 {
		return &yaml.LoadErrors{Errors: errs}
	}
	return nil
}

// Get returns the entry named key.
func (m Map[T]) Get(key string) (Entry[T], bool) {
	for _, e := range m.Entries {
		if e.Key == key {
			return e, true
		}
	}
	return Entry[T]{}, false
}

// WrappedType implements Wrapper.
func (*Map[T]) WrappedType() reflect.Type { return reflect.TypeFor[T]() }

// WrapsMapping implements Wrapper.
func (*Map[T]) WrapsMapping() bool { return true }

// Raw is a value kept as written (its node), for values whose shape the reader interprets itself.
type Raw struct{ Node *yaml.Node }

// UnmarshalYAML implements yaml.Unmarshaler.
func (r *Raw) UnmarshalYAML(n *yaml.Node) error { r.Node = n; return nil }

// JSONSchema implements Schemaer: anything.
func (Raw) JSONSchema() map[string]any { return map[string]any{} }

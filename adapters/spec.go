package adapters

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
)

// FieldType is the type of one adapter setting.
type FieldType string

// Setting types.
const (
	TypeString   FieldType = "string"
	TypeSecret   FieldType = "secret" // a string never logged; usually "${ENV_VAR}"
	TypeInt      FieldType = "int"
	TypeBool     FieldType = "bool"
	TypeDuration FieldType = "duration" // Go syntax: 500ms, 30s, 5m
	TypeStrings  FieldType = "strings"  // list of strings
	TypeMap      FieldType = "map"      // string → string
	TypeObject   FieldType = "object"   // free-form mapping (e.g. a JSON body template)
)

// Field is one setting of an adapter.
type Field struct {
	Name        string
	Type        FieldType
	Description string
	Required    bool
	// Default is applied when the setting is absent (as written in YAML: "30s", 5, true).
	Default any
	// Enum restricts a string to these values.
	Enum []string
}

// Spec is an adapter's one declaration of its settings; decoding, lint, JSON Schema and docs all use it.
type Spec struct {
	Summary string
	Fields  []Field
}

func (s Spec) check() error {
	seen := map[string]bool{}
	for _, f := range s.Fields {
		if f.Name == "" || seen[f.Name] {
			return fmt.Errorf("spec field %q empty or duplicated", f.Name)
		}
		seen[f.Name] = true
		switch f.Type {
		case TypeString, TypeSecret, TypeInt, TypeBool, TypeDuration, TypeStrings, TypeMap, TypeObject:
		default:
			return fmt.Errorf("spec field %q has unknown type %q", f.Name, f.Type)
		}
		if f.Required && f.Default != nil {
			return fmt.Errorf("spec field %q is required and has a default", f.Name)
		}
	}
	return nil
}

// Field returns the field with the given name.
func (s Spec) Field(name string) (Field, bool) {
	for _, f := range s.Fields {
		if f.Name == name {
			return f, true
		}
	}
	return Field{}, false
}

// SettingError is a setting that does not match the spec, at a YAML position.
type SettingError struct {
	Line, Column int
	Message      string
}

func (e *SettingError) Error() string { return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Message) }

// Decode checks the settings node against the spec, applies defaults, expands ${ENV} references in strings
// (strictyaml.Expand: the dialect of every Koppelpoort YAML file) and decodes the result into target (a
// struct with yaml tags). node may be nil (no settings). All problems are returned, each a *SettingError
// with its position.
func (s Spec) Decode(node *yaml.Node, target any) error {
	return s.decode(node, target, os.LookupEnv)
}

func (s Spec) decode(node *yaml.Node, target any, lookupEnv strictyaml.Lookup) error {
	var errs []error
	fail := func(n *yaml.Node, format string, args ...any) {
		errs = append(errs, &SettingError{Line: n.Line, Column: n.Column, Message: fmt.Sprintf(format, args...)})
	}
	out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	present := map[string]bool{}
	if node != nil && !(node.Kind == yaml.ScalarNode && node.Tag == "!!null") {
		if node.Kind != yaml.MappingNode {
			return &SettingError{Line: node.Line, Column: node.Column, Message: "settings must be a mapping of name: value"}
		}
		for i := 0; i+1 < len(node.Content); i += 2 {
			k, v := node.Content[i], node.Content[i+1]
			f, ok := s.Field(k.Value)
			if !ok {
				fail(k, "unknown setting %q%s (known: %s)", k.Value, strictyaml.Suggest(k.Value, s.names()), strings.Join(s.names(), ", "))
				continue
			}
			if present[k.Value] {
				fail(k, "setting %q given twice", k.Value)
				continue
			}
			present[k.Value] = true
			nv, err := checkValue(f, v, lookupEnv)
			if err != nil {
				fail(v, "setting %q: %v", f.Name, err)
				continue
			}
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Name}, nv)
		}
	}
	for _, f := range s.Fields {
		if present[f.Name] {
			continue
		}
		if f.Required {
			line, col := 0, 0
			if node != nil {
				line, col = node.Line, node.Column
			}
			errs = append(errs, &SettingError{Line: line, Column: col, Message: fmt.Sprintf("missing required setting %q (%s)", f.Name, f.Description)})
			continue
		}
		if f.Default != nil {
			var dn yaml.Node
			if err := dn.Encode(f.Default); err != nil {
				return fmt.Errorf("encode default of %q: %w", f.Name, err)
			}
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: f.Name}, &dn)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	if target == nil {
		return nil
	}
	if err := out.Decode(target); err != nil {
		return fmt.Errorf("decode settings: %w", err)
	}
	return nil
}

func (s Spec) names() []string {
	n := make([]string, len(s.Fields))
	for i, f := range s.Fields {
		n[i] = f.Name
	}
	sort.Strings(n)
	return n
}

// checkValue validates one value node against its field and returns the node to decode (env expanded,
// durations kept as strings for the target's own parsing).
func checkValue(f Field, v *yaml.Node, lookupEnv strictyaml.Lookup) (*yaml.Node, error) {
	scalar := func() (string, error) {
		if v.Kind != yaml.ScalarNode {
			return "", fmt.Errorf("want a %s, got a %s", f.Type, strictyaml.KindName(v))
		}
		val, err := strictyaml.Expand(v.Value, lookupEnv)
		if err != nil {
			return "", err
		}
		return val, nil
	}
	switch f.Type {
	case TypeString, TypeSecret:
		val, err := scalar()
		if err != nil {
			return nil, err
		}
		if len(f.Enum) > 0 && !slices.Contains(f.Enum, val) {
			return nil, fmt.Errorf("%q is not one of %s", val, strings.Join(f.Enum, ", "))
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}, nil
	case TypeInt:
		val, err := scalar()
		if err != nil {
			return nil, err
		}
		if _, err := strconv.Atoi(val); err != nil {
			return nil, fmt.Errorf("%q is not a whole number", val)
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!int", Value: val}, nil
	case TypeBool:
		val, err := scalar()
		if err != nil {
			return nil, err
		}
		if val != "true" && val != "false" {
			return nil, fmt.Errorf("%q is not true or false", val)
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: val}, nil
	case TypeDuration:
		val, err := scalar()
		if err != nil {
			return nil, err
		}
		if _, err := time.ParseDuration(val); err != nil {
			return nil, fmt.Errorf("%q is not a duration such as 500ms, 30s or 5m", val)
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val}, nil
	case TypeStrings:
		if v.Kind != yaml.SequenceNode {
			return nil, fmt.Errorf("want a list of strings, got a %s", strictyaml.KindName(v))
		}
		out := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		for _, item := range v.Content {
			if item.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: list item must be a string", item.Line)
			}
			val, err := strictyaml.Expand(item.Value, lookupEnv)
			if err != nil {
				return nil, err
			}
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val})
		}
		return out, nil
	case TypeMap:
		if v.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("want a mapping of name: value, got a %s", strictyaml.KindName(v))
		}
		out := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, item := v.Content[i], v.Content[i+1]
			if item.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("line %d: value of %q must be a string", item.Line, k.Value)
			}
			val, err := strictyaml.Expand(item.Value, lookupEnv)
			if err != nil {
				return nil, err
			}
			out.Content = append(out.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k.Value},
				&yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: val})
		}
		return out, nil
	case TypeObject:
		return v, nil
	}
	return nil, fmt.Errorf("unknown type %q", f.Type)
}

// JSONSchema returns the JSON Schema (draft 2020-12 subset) of the settings.
func (s Spec) JSONSchema() map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range s.Fields {
		p := map[string]any{"description": f.Description}
		switch f.Type {
		case TypeString, TypeSecret, TypeDuration:
			p["type"] = "string"
		case TypeInt:
			p["type"] = []string{"integer", "string"}
		case TypeBool:
			p["type"] = []string{"boolean", "string"}
		case TypeStrings:
			p["type"] = "array"
			p["items"] = map[string]any{"type": "string"}
		case TypeMap:
			p["type"] = "object"
			p["additionalProperties"] = map[string]any{"type": "string"}
		case TypeObject:
			p["type"] = "object"
		}
		if len(f.Enum) > 0 {
			p["enum"] = f.Enum
		}
		if f.Default != nil {
			p["default"] = f.Default
		}
		if f.Required {
			required = append(required, f.Name)
		}
		props[f.Name] = p
	}
	out := map[string]any{"type": "object", "description": s.Summary, "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// Markdown renders the spec as a reference table.
func (s Spec) Markdown(id string) string {
	var b strings.Builder
	esc := strings.NewReplacer("<", "&lt;", ">", "&gt;", "|", "\\|").Replace
	fmt.Fprintf(&b, "### `%s`\n\n%s\n\n| setting | type | required | default | description |\n|---|---|---|---|---|\n", id, esc(s.Summary))
	for _, f := range s.Fields {
		def := ""
		if f.Default != nil {
			def = fmt.Sprintf("`%v`", f.Default)
		}
		desc := f.Description
		if len(f.Enum) > 0 {
			desc += " One of: " + strings.Join(f.Enum, ", ") + "."
		}
		fmt.Fprintf(&b, "| `%s` | %s | %v | %s | %s |\n", f.Name, f.Type, f.Required, def, esc(desc))
	}
	return b.String()
}

// Duration is a duration setting (TypeDuration) in an adapter's struct: Go syntax, 500ms, 30s, 5m.
type Duration struct{ time.Duration }

// UnmarshalText parses the setting.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(string(b))
	d.Duration = v
	return err
}

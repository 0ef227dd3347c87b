package strictyaml

import (
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Schemaer is implemented by types that describe their own YAML form (an adapter choice, an expression).
type Schemaer interface {
	JSONSchema() map[string]any
}

// DurationPattern is what a Go duration looks like (500ms, 30s, 1h30m).
const DurationPattern = `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

// Schema returns the JSON Schema (draft 2020-12) of values of t as YAML files write them, reflected from
// the same types Decode fills, so the schema cannot describe keys the decoder refuses:
//
//   - a struct is an object of its yaml-tagged fields, no others (additionalProperties false); a field's
//     `doc:"..."` tag is its description, `schema:"required,min=1,min_items=1,enum=a|b,default=x"` adds constraints;
//   - At[T] is T, Map[T] an object of T; a type with a JSONSchema method (Schemaer) describes itself;
//   - time.Duration is a string in Go syntax; Raw and interfaces are anything.
func Schema(t reflect.Type) map[string]any {
	for t.Kind() == reflect.Pointer {
		if s, ok := selfSchema(t); ok {
			return s
		}
		t = t.Elem()
	}
	if s, ok := selfSchema(t); ok {
		return s
	}
	if reflect.PointerTo(t).Implements(wrapperType) {
		w := reflect.New(t).Interface().(Wrapper)
		if w.WrapsMapping() {
			return map[string]any{"type": "object", "additionalProperties": Schema(w.WrappedType())}
		}
		return Schema(w.WrappedType())
	}
	switch t {
	case reflect.TypeFor[time.Duration]():
		return map[string]any{"type": "string", "pattern": DurationPattern, "description": "a duration such as 500ms, 30s, 5m or 1h30m"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": "array", "items": Schema(t.Elem())}
	case reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": Schema(t.Elem())}
	case reflect.Struct:
		return structSchema(t)
	}
	return map[string]any{}
}

func selfSchema(t reflect.Type) (map[string]any, bool) {
	if t.Implements(reflect.TypeFor[Schemaer]()) {
		var v reflect.Value
		if t.Kind() == reflect.Pointer {
			v = reflect.New(t.Elem())
		} else {
			v = reflect.New(t).Elem()
		}
		return v.Interface().(Schemaer).JSONSchema(), true
	}
	return nil, false
}

func structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	for _, f := range fieldList(t) {
		p := Schema(f.Type)
		if doc := f.Tag.Get("doc"); doc != "" {
			p = withKey(p, "description", doc)
		}
		for _, opt := range strings.Split(f.Tag.Get("schema"), ",") {
			key, val, _ := strings.Cut(opt, "=")
			switch key {
			case "required":
				required = append(required, f.Name)
			case "min":
				p = withKey(p, "minimum", literal(val))
			case "min_items":
				p = withKey(p, "minItems", literal(val))
			case "enum":
				p = withKey(p, "enum", strings.Split(val, "|"))
			case "default":
				p = withKey(p, "default", literal(val))
			}
		}
		props[f.Name] = p
	}
	out := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// withKey returns a copy of s with key set (schemas of shared types are not changed in place).
func withKey(s map[string]any, key string, v any) map[string]any {
	out := make(map[string]any, len(s)+1)
	for k, x := range s {
		out[k] = x
	}
	out[key] = v
	return out
}

func literal(s string) any {
	if i, err := strconv.ParseInt(s, 10, 64); err == nil {
		return i
	}
	if b, err := strconv.ParseBool(s); err == nil {
		return b
	}
	return s
}

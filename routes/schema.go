package routes

import (
	"reflect"

	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// JSONSchema returns the JSON Schema (draft 2020-12) of route files, reflected from the types the loader
// decodes (routeFile) with the registered adapters' specs for their settings, so editors can complete and
// validate route files and the schema cannot accept a key the loader refuses.
func JSONSchema() map[string]any {
	s := strictyaml.Schema(reflect.TypeFor[routeFile]())
	value := map[string]any{"$ref": "#/$defs/value"}
	var fnDocs []any
	for _, f := range transforms.Functions {
		fnDocs = append(fnDocs, f.Signature+": "+f.Doc)
	}
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://koppelpoort.nl/schema/route.json"
	s["title"] = "Koppelpoort route"
	s["$defs"] = map[string]any{
		"value": map[string]any{"oneOf": []any{
			exprSchema(),
			map[string]any{"type": "array", "items": value},
			map[string]any{"type": "object", "additionalProperties": value},
		}},
	}
	s["x-koppelpoort-functions"] = fnDocs
	return s
}

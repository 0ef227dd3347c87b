package routes

import (
	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// JSONSchema returns the JSON Schema (draft 2020-12) of route files, built from the registered adapters'
// specs, so editors can complete and validate route files.
func JSONSchema() map[string]any {
	// YAML reads `true` or `42` as non-strings; they are valid expressions too.
	expr := map[string]any{"type": []string{"string", "number", "boolean"}, "description": "an expr expression over `record`, `meta`, `route` and `fields`"}
	value := map[string]any{"$ref": "#/$defs/value"}
	adapterChoice := func(namespace string) map[string]any {
		var one []any
		for _, r := range adapters.List(namespace) {
			one = append(one, map[string]any{
				"type":                 "object",
				"description":          r.Spec.Summary,
				"properties":           map[string]any{r.Name(): r.Spec.JSONSchema()},
				"required":             []string{r.Name()},
				"additionalProperties": false,
			})
		}
		return map[string]any{"oneOf": one}
	}
	outputs := adapterChoice("outbound")
	for _, o := range outputs["oneOf"].([]any) {
		m := o.(map[string]any)
		m["properties"].(map[string]any)["name"] = map[string]any{"type": "string", "pattern": "^[A-Za-z0-9._-]+$"}
		m["required"] = append(m["required"].([]string), "name")
	}
	var fnDocs []any
	for _, f := range transforms.Functions {
		fnDocs = append(fnDocs, f.Signature+": "+f.Doc)
	}
	return map[string]any{
		"$schema":              "https://json-schema.org/draft/2020-12/schema",
		"$id":                  "https://koppelpoort.nl/schema/route.json",
		"title":                "Koppelpoort route",
		"type":                 "object",
		"required":             []string{"name", "input", "outputs"},
		"additionalProperties": false,
		"properties": map[string]any{
			"name":        map[string]any{"type": "string", "pattern": "^[A-Za-z0-9._-]+$"},
			"description": map[string]any{"type": "string"},
			"key":         expr,
			"input":       adapterChoice("inbound"),
			"outputs":     map[string]any{"type": "array", "minItems": 1, "items": outputs},
			"retry": map[string]any{"type": "object", "additionalProperties": false, "properties": map[string]any{
				"max_attempts": map[string]any{"type": "integer", "minimum": 1, "default": DefaultMaxAttempts},
				"backoff":      map[string]any{"type": "string", "default": DefaultBackoff.String()},
				"max_backoff":  map[string]any{"type": "string", "default": DefaultMaxBackoff.String()},
			}},
			"lookups": map[string]any{"type": "object", "additionalProperties": map[string]any{
				"type": "object", "required": []string{"entries"}, "additionalProperties": false,
				"properties": map[string]any{"entries": map[string]any{"type": "object"}, "default": map[string]any{}},
			}},
			"rules": map[string]any{"type": "array", "items": map[string]any{
				"type": "object", "additionalProperties": false,
				"properties": map[string]any{
					"when":        expr,
					"drop":        map[string]any{"type": "string", "description": "reason; {{ expressions }} allowed"},
					"dead_letter": map[string]any{"type": "string", "description": "reason; {{ expressions }} allowed"},
					"transform":   map[string]any{"type": "string"},
					"output":      map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}},
					"continue":    map[string]any{"type": "boolean"},
				},
			}},
			"transforms": map[string]any{"type": "object", "additionalProperties": map[string]any{
				"type": "object", "additionalProperties": false,
				"properties": map[string]any{
					"fields": map[string]any{"type": "object", "additionalProperties": value},
					"koppeltaal": map[string]any{
						"type": "object", "additionalProperties": false, "required": []string{"event", "resources"},
						"properties": map[string]any{
							"event":   map[string]any{"enum": koppeltaal.Events},
							"patient": expr,
							"resources": map[string]any{"type": "array", "minItems": 1, "items": map[string]any{
								"type": "object", "additionalProperties": false, "required": []string{"type", "id"},
								"properties": map[string]any{
									"type":   map[string]any{"enum": dstu1.MessageResourceTypes},
									"id":     expr,
									"fields": map[string]any{"type": "object", "additionalProperties": value},
								},
							}},
						},
					},
				},
			}},
		},
		"$defs": map[string]any{
			"value": map[string]any{"oneOf": []any{
				expr,
				map[string]any{"type": "array", "items": value},
				map[string]any{"type": "object", "additionalProperties": value},
			}},
		},
		"x-koppelpoort-functions": fnDocs,
	}
}

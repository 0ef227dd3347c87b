package routes

import (
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
)

// routeFile is a route file as written. The loader decodes it strictly (internal/strictyaml: an unknown key
// is an error with the key meant) and JSONSchema reflects the same types, so the schema editors use and
// the keys the loader accepts cannot drift apart. Adapter settings are decoded by each adapter's spec.
type routeFile struct {
	Name        strictyaml.At[string]         `yaml:"name" schema:"required" doc:"the route's name: unique among the routes of one server; letters, digits, - _ ."`
	Description string                        `yaml:"description" doc:"free text"`
	Key         *expression                   `yaml:"key" doc:"expression giving the record key; default the key the input assigns"`
	Input       *inputFile                    `yaml:"input" schema:"required" doc:"one inbound adapter: {<adapter>: {settings}}"`
	Lookups     strictyaml.Map[lookupFile]    `yaml:"lookups" doc:"named tables for lookup(table, key)"`
	Rules       []strictyaml.At[ruleFile]     `yaml:"rules" doc:"in order; the first that matches decides"`
	Transforms  strictyaml.Map[transformFile] `yaml:"transforms" doc:"named transforms"`
	Outputs     []outputFile                  `yaml:"outputs" schema:"required,min_items=1" doc:"one or more outputs, each with a name and one outbound adapter"`
	Retry       *strictyaml.At[retryFile]     `yaml:"retry" doc:"outbound retries: the wait doubles per attempt from backoff up to max_backoff"`
	Health      *strictyaml.At[healthFile]    `yaml:"health" doc:"when the route counts as unhealthy on /readyz"`
	// SkipUnchanged is change detection: see Route.SkipUnchanged.
	SkipUnchanged *strictyaml.At[bool] `yaml:"skip_unchanged" schema:"default=false" doc:"an output is not sent a record's output again when it is what the output was last sent for the same record key (a full export dropped again sends only what changed)"`
}

type healthFile struct {
	FailingAfter *strictyaml.At[time.Duration] `yaml:"failing_after" schema:"default=5m0s" doc:"/readyz reports the route once an output has been failing this long"`
}

type lookupFile struct {
	Entries map[string]any  `yaml:"entries" schema:"required" doc:"key: value"`
	Default *strictyaml.Raw `yaml:"default" doc:"the value for a key that is not in entries"`
}

type ruleFile struct {
	When       *expression            `yaml:"when" doc:"condition (a boolean expression); a rule without when matches every record"`
	Drop       *strictyaml.At[string] `yaml:"drop" doc:"drop the record on purpose, with this reason ({{ expressions }} allowed)"`
	DeadLetter *strictyaml.At[string] `yaml:"dead_letter" doc:"park the record for a person, with this reason ({{ expressions }} allowed)"`
	Transform  *strictyaml.At[string] `yaml:"transform" doc:"the transform the record goes through"`
	Output     *outputNames           `yaml:"output" doc:"the outputs it goes to (default: all)"`
	Continue   *strictyaml.At[bool]   `yaml:"continue" doc:"evaluation goes on, so later rules can add more branches"`
}

type transformFile struct {
	Fields     *fieldsTree                    `yaml:"fields" doc:"an object of expressions (nested objects and lists allowed)"`
	Koppeltaal *strictyaml.At[koppeltaalFile] `yaml:"koppeltaal" doc:"declare a Koppeltaal message"`
}

type koppeltaalFile struct {
	Event     strictyaml.At[eventName]      `yaml:"event" schema:"required"`
	Patient   *expression                   `yaml:"patient" doc:"the Patient id (under the output's resource_base) or a full URL"`
	Resources []strictyaml.At[resourceFile] `yaml:"resources" schema:"required,min_items=1" doc:"the first is the focal resource"`
}

type resourceFile struct {
	Type   strictyaml.At[resourceType] `yaml:"type" schema:"required"`
	ID     *expression                 `yaml:"id" schema:"required" doc:"stable per source record"`
	Fields *fieldsTree                 `yaml:"fields" doc:"FHIR DSTU1 elements of the resource"`
}

type retryFile struct {
	MaxAttempts *strictyaml.At[int]           `yaml:"max_attempts" schema:"min=1,default=12"`
	Backoff     *strictyaml.At[time.Duration] `yaml:"backoff" schema:"default=1s"`
	MaxBackoff  *strictyaml.At[time.Duration] `yaml:"max_backoff" schema:"default=5m0s"`
}

// expression is a YAML scalar holding an expr expression, kept as its node so compile errors point into
// the file.
type expression struct{ node *yaml.Node }

func (e *expression) UnmarshalYAML(n *yaml.Node) error { e.node = n; return nil }

func (expression) JSONSchema() map[string]any { return exprSchema() }

// YAML reads `true` or `42` as non-strings; they are valid expressions too.
func exprSchema() map[string]any {
	return map[string]any{"type": []string{"string", "number", "boolean"}, "description": "an expr expression over `record`, `meta`, `route` and `fields`"}
}

// fieldsTree is a mapping of names to values: expressions, objects of values or lists of values.
type fieldsTree struct{ node *yaml.Node }

func (t *fieldsTree) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.MappingNode {
		return positioned(n, "fields must be a mapping of name: expression, not a "+strictyaml.KindName(n))
	}
	t.node = n
	return nil
}

func (fieldsTree) JSONSchema() map[string]any {
	return map[string]any{"type": "object", "additionalProperties": map[string]any{"$ref": "#/$defs/value"}}
}

// outputNames is `output: name` or `output: [names]`.
type outputNames struct {
	Names []string
	strictyaml.Pos
	node *yaml.Node
}

func (o *outputNames) UnmarshalYAML(n *yaml.Node) error {
	o.Pos, o.node = strictyaml.PosOf(n), n
	if n.Kind == yaml.ScalarNode {
		o.Names = []string{n.Value}
		return nil
	}
	if err := n.Decode(&o.Names); err != nil {
		return positioned(n, "output must be an output name or a list of names")
	}
	return nil
}

func (outputNames) JSONSchema() map[string]any {
	return map[string]any{"oneOf": []any{map[string]any{"type": "string"}, map[string]any{"type": "array", "items": map[string]any{"type": "string"}}}}
}

type eventName string

func (eventName) JSONSchema() map[string]any { return map[string]any{"enum": koppeltaal.Events} }

type resourceType string

func (resourceType) JSONSchema() map[string]any {
	return map[string]any{"enum": dstu1.MessageResourceTypes}
}

// inputFile is `{<adapter>: {settings}}`: which adapter is the loader's to check (it knows the registry),
// the settings the adapter's spec's.
type inputFile struct{ node *yaml.Node }

func (i *inputFile) UnmarshalYAML(n *yaml.Node) error { i.node = n; return nil }

func (inputFile) JSONSchema() map[string]any { return adapterChoice("inbound", false) }

// outputFile is `{name: <name>, <adapter>: {settings}}`.
type outputFile struct{ node *yaml.Node }

func (o *outputFile) UnmarshalYAML(n *yaml.Node) error { o.node = n; return nil }

func (outputFile) JSONSchema() map[string]any { return adapterChoice("outbound", true) }

// adapterChoice is one of the namespace's registered adapters, described by its spec.
func adapterChoice(namespace string, named bool) map[string]any {
	var one []any
	for _, r := range adapters.List(namespace) {
		props := map[string]any{r.Name(): r.Spec.JSONSchema()}
		required := []string{r.Name()}
		if named {
			props["name"] = map[string]any{"type": "string", "pattern": "^[A-Za-z0-9._-]+$", "description": "rules refer to outputs by name"}
			required = append(required, "name")
		}
		one = append(one, map[string]any{"type": "object", "description": r.Spec.Summary, "properties": props,
			"required": required, "additionalProperties": false})
	}
	return map[string]any{"oneOf": one}
}

// positioned is an error at n's position (go-yaml reports an Unmarshaler's plain error at the node too;
// this keeps the message free of go-yaml's prefix).
func positioned(n *yaml.Node, msg string) error {
	return &yaml.LoadErrors{Errors: []*yaml.LoadError{{Stage: yaml.ConstructorStage, Message: msg,
		Mark: yaml.Mark{Line: n.Line, Column: n.Column}}}}
}

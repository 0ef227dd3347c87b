package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/rules"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// Default retry policy for outbound deliveries: 1s, 2s, 4s ... doubling up to 5m between attempts, 12
// attempts, so a delivery gives up after about 18 minutes of failing (RetryPolicy.Total) — long enough to
// ride out a restart or a short maintenance of the target, which take minutes, not seconds.
const (
	DefaultMaxAttempts = 12
	DefaultBackoff     = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
)

// shortRetries is the total below which lint warns that a route gives up before a target restart is over.
const shortRetries = time.Minute

// LoadFiles loads route files and globs (a glob skips route tests, *_test.yaml); all problems of all files
// are returned together (as Diagnostics). Route names must be unique.
func LoadFiles(patterns ...string) ([]*Route, error) {
	files, diags := MatchFiles(patterns...)
	var out []*Route
	names := map[string]string{}
	for _, f := range files {
		r, err := LoadFile(f)
		var ds Diagnostics
		if errors.As(err, &ds) {
			diags = append(diags, ds...)
			continue
		} else if err != nil {
			diags = append(diags, Diagnostic{File: f, Line: 1, Column: 1, Severity: SevError, Message: err.Error()})
			continue
		}
		if prev, dup := names[r.Name]; dup {
			diags = append(diags, Diagnostic{File: f, Line: 1, Column: 1, Severity: SevError, Message: fmt.Sprintf("route name %q is also used by %s", r.Name, prev)})
			continue
		}
		names[r.Name] = f
		out = append(out, r)
	}
	if diags.HasErrors() {
		return nil, diags.sorted()
	}
	return out, nil
}

// MatchFiles expands route files and globs into the route files they name, in order; a glob skips the
// route tests next to the routes (*_test.yaml). A pattern that matches nothing is a diagnostic.
func MatchFiles(patterns ...string) ([]string, Diagnostics) {
	var files []string
	var diags Diagnostics
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil || len(matches) == 0 {
			if _, statErr := os.Stat(p); statErr != nil {
				diags = append(diags, Diagnostic{File: p, Line: 1, Column: 1, Severity: SevError, Message: "no route file matches this path"})
				continue
			}
			matches = []string{p}
		}
		for _, m := range matches {
			// "routes/*.yaml" also matches the route tests next to the routes; they are not routes.
			if len(matches) > 1 && IsTestFile(filepath.Base(m)) || p != m && IsTestFile(filepath.Base(m)) {
				continue
			}
			files = append(files, m)
		}
	}
	return files, diags
}

// IsTestFile reports whether a file name is a route test (`*_test.yaml`).
func IsTestFile(name string) bool {
	return strings.HasSuffix(name, "_test.yaml") || strings.HasSuffix(name, "_test.yml")
}

// LoadFile reads and compiles one route file. A returned error is Diagnostics when the file has problems.
func LoadFile(path string) (*Route, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read route file: %w", err)
	}
	return Load(path, src)
}

// Load compiles a route from src; path is used in messages and to resolve relative paths.
func Load(path string, src []byte) (*Route, error) {
	l := &loader{file: path, lines: strings.Split(string(src), "\n")}
	r := l.load(src)
	sum := sha256.Sum256(src)
	r.Revision = hex.EncodeToString(sum[:6])
	if l.diags.HasErrors() {
		return nil, l.diags.sorted()
	}
	r.Warnings = l.diags.sorted()
	return r, nil
}

type loader struct {
	file  string
	lines []string
	diags Diagnostics
}

func (l *loader) at(sev Severity, line, col int, format string, args ...any) {
	l.diags = append(l.diags, Diagnostic{File: l.file, Line: line, Column: col, Severity: sev,
		Message: fmt.Sprintf(format, args...), Snippet: snippet(l.lines, line, col)})
}

func (l *loader) errf(n *yaml.Node, format string, args ...any) {
	l.at(SevError, n.Line, n.Column, format, args...)
}

// fields reads a mapping with the allowed keys; unknown and duplicate keys are errors.
func (l *loader) fields(n *yaml.Node, what string, allowed ...string) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	if n.Kind != yaml.MappingNode {
		l.errf(n, "%s must be a mapping (key: value), not a %s", what, adapters.KindName(n))
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if !slices.Contains(allowed, k.Value) {
			l.errf(k, "unknown key %q in %s%s (allowed: %s)", k.Value, what, adapters.Suggest(k.Value, allowed), strings.Join(allowed, ", "))
			continue
		}
		if _, dup := out[k.Value]; dup {
			l.errf(k, "key %q given twice in %s", k.Value, what)
			continue
		}
		out[k.Value] = v
	}
	return out
}

func (l *loader) str(n *yaml.Node, what string) string {
	if n == nil {
		return ""
	}
	if n.Kind != yaml.ScalarNode {
		l.errf(n, "%s must be a single value, not a %s", what, adapters.KindName(n))
		return ""
	}
	return n.Value
}

// expr compiles a scalar node as an expression and maps compile errors to file positions.
func (l *loader) expr(e *transforms.Engine, n *yaml.Node, kind transforms.Kind, what string) *transforms.Program {
	if n.Kind != yaml.ScalarNode {
		l.errf(n, "%s must be an expression (a single value), not a %s", what, adapters.KindName(n))
		return nil
	}
	p, err := e.Compile(n.Value, kind)
	if err != nil {
		var ce *transforms.CompileError
		if errors.As(err, &ce) {
			line, col := l.position(n, ce.Line, ce.Column)
			l.at(SevError, line, col, "%s: %s", what, ce.Message)
		} else {
			l.errf(n, "%s: %v", what, err)
		}
		return nil
	}
	return p
}

// position maps a 1-based line/column inside a scalar's value to the file.
func (l *loader) position(n *yaml.Node, line, col int) (int, int) {
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The block's indentation is that of its first content line; deeper lines keep their extra
		// spaces inside the expression text.
		indent := 0
		if n.Line < len(l.lines) {
			first := l.lines[n.Line]
			indent = len(first) - len(strings.TrimLeft(first, " "))
		}
		return n.Line + line, indent + col
	case yaml.DoubleQuotedStyle, yaml.SingleQuotedStyle:
		if line == 1 {
			return n.Line, n.Column + col
		}
	default:
		if line == 1 {
			return n.Line, n.Column + col - 1
		}
	}
	// A multi-line flow scalar: point at the continuation line's text.
	fileLine := n.Line + line - 1
	indent := 0
	if fileLine-1 < len(l.lines) {
		text := l.lines[fileLine-1]
		indent = len(text) - len(strings.TrimLeft(text, " "))
	}
	return fileLine, indent + col
}

func (l *loader) load(src []byte) *Route {
	r := &Route{File: l.file, Dir: filepath.Dir(l.file), Transforms: map[string]*Transform{},
		Retry: RetryPolicy{MaxAttempts: DefaultMaxAttempts, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff}}
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil {
		line := 1
		var te *yaml.TypeError
		msg := err.Error()
		if !errors.As(err, &te) {
			fmt.Sscanf(strings.TrimPrefix(msg, "yaml: "), "line %d:", &line)
		}
		l.at(SevError, line, 1, "not valid YAML: %s", strings.TrimPrefix(msg, "yaml: "))
		return r
	}
	if len(doc.Content) == 0 {
		l.at(SevError, 1, 1, "empty route file")
		return r
	}
	top := l.fields(doc.Content[0], "the route", "name", "description", "key", "input", "lookups", "rules", "transforms", "outputs", "retry")
	r.Name = l.str(top["name"], "name")
	if top["name"] == nil || strings.TrimSpace(r.Name) == "" {
		l.at(SevError, doc.Content[0].Line, doc.Content[0].Column, "the route needs a name")
	} else if !validName(r.Name) {
		l.errf(top["name"], "route name %q may only hold letters, digits, '-', '_' and '.'", r.Name)
	}
	r.Description = l.str(top["description"], "description")
	if n := top["retry"]; n != nil {
		l.retry(n, &r.Retry)
		if total := r.Retry.Total(); total < shortRetries {
			l.at(SevWarning, n.Line, n.Column, "retries give up after %s of failing; a restart of the target takes minutes (the default retries for about %s)",
				total, RetryPolicy{MaxAttempts: DefaultMaxAttempts, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff}.Total().Round(time.Minute))
		}
	}

	// The input comes first: its shape lets expressions be type-checked.
	shape := transforms.Shape{}
	if n := top["input"]; n != nil {
		r.Input = l.component(n, "inbound", "input", "input")
		if s, ok := r.Input.Adapter.(adapters.Shaper); ok {
			shape = s.Shape()
		}
	} else {
		l.at(SevError, doc.Content[0].Line, doc.Content[0].Column, "the route needs an input")
	}
	lookups := l.lookups(top["lookups"])
	engine, err := transforms.NewEngine(transforms.Config{Shape: shape, Lookups: lookups})
	if err != nil {
		l.at(SevError, 1, 1, "%v", err)
		return r
	}
	r.engine = engine
	if n := top["key"]; n != nil {
		r.Key = l.expr(engine, n, transforms.Any, "key")
	}

	outputNames := map[string]bool{}
	if n := top["outputs"]; n == nil {
		l.at(SevError, doc.Content[0].Line, doc.Content[0].Column, "the route needs at least one output")
	} else if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		l.errf(n, "outputs must be a list of outputs, each with a name and one adapter")
	} else {
		for _, item := range n.Content {
			c := l.output(item)
			if c.Name == "" {
				continue
			}
			if outputNames[c.Name] {
				l.errf(item, "output name %q is used twice", c.Name)
				continue
			}
			outputNames[c.Name] = true
			r.Outputs = append(r.Outputs, c)
		}
	}

	if n := top["transforms"]; n != nil {
		if n.Kind != yaml.MappingNode {
			l.errf(n, "transforms must be a mapping of name: transform")
		} else {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if _, dup := r.Transforms[k.Value]; dup {
					l.errf(k, "transform %q declared twice", k.Value)
					continue
				}
				t := l.transform(engine, k.Value, v)
				t.Line, t.Column = k.Line, k.Column
				r.Transforms[k.Value] = t
			}
		}
	}

	usedTransforms := map[string]bool{}
	if n := top["rules"]; n != nil {
		if n.Kind != yaml.SequenceNode {
			l.errf(n, "rules must be a list")
		} else {
			for _, item := range n.Content {
				if rule := l.rule(engine, item, r.Transforms, outputNames); rule != nil {
					r.Rules = append(r.Rules, rule)
					usedTransforms[rule.Transform] = true
				}
			}
		}
	}
	for _, u := range rules.Unreachable(r.Rules) {
		l.at(SevError, u.Line, u.Column, "rule can never match: an earlier rule without a condition always ends the evaluation (add `continue: true` to it or move this rule up)")
	}
	if len(r.Rules) == 0 && len(r.Transforms) > 0 {
		if len(r.Transforms) == 1 {
			// One transform and no rules: every record goes through it to every output.
			for name := range r.Transforms {
				r.Rules = []*rules.Rule{{Line: r.Transforms[name].Line, Transform: name}}
				usedTransforms[name] = true
			}
		} else {
			l.at(SevError, top["transforms"].Line, top["transforms"].Column, "several transforms but no rules: add rules that say which transform applies")
		}
	}
	// An output that no routing rule can reach is almost always a typo or a leftover.
	usedOutputs, allExplicit := map[string]bool{}, len(r.Rules) > 0
	for _, rule := range r.Rules {
		if rule.Action != rules.Route {
			continue
		}
		if len(rule.Outputs) == 0 {
			allExplicit = false
		}
		for _, o := range rule.Outputs {
			usedOutputs[o] = true
		}
	}
	if allExplicit {
		for _, o := range r.Outputs {
			if !usedOutputs[o.Name] {
				l.at(SevWarning, o.Line, o.Column, "output %q is not named by any rule, so it never receives anything", o.Name)
			}
		}
	}
	for name, t := range r.Transforms {
		if !usedTransforms[name] {
			l.at(SevWarning, t.Line, t.Column, "transform %q is not used by any rule", name)
		}
	}
	return r
}

func (l *loader) retry(n *yaml.Node, p *RetryPolicy) {
	f := l.fields(n, "retry", "max_attempts", "backoff", "max_backoff")
	if v := f["max_attempts"]; v != nil {
		var i int
		if err := v.Decode(&i); err != nil || i < 1 {
			l.errf(v, "max_attempts must be a whole number of at least 1")
		} else {
			p.MaxAttempts = i
		}
	}
	for key, dst := range map[string]*time.Duration{"backoff": &p.Backoff, "max_backoff": &p.MaxBackoff} {
		if v := f[key]; v != nil {
			d, err := time.ParseDuration(v.Value)
			if err != nil || d <= 0 {
				l.errf(v, "%s must be a positive duration such as 500ms or 30s", key)
				continue
			}
			*dst = d
		}
	}
}

// component decodes `{<adapter>: {settings}}` for the given namespace.
func (l *loader) component(n *yaml.Node, namespace, what, name string) Component {
	c := Component{Name: name, Line: n.Line, Column: n.Column}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		l.errf(n, "%s must name exactly one adapter, e.g. `file: {...}` (available: %s)", what, strings.Join(adapterNames(namespace), ", "))
		return c
	}
	k, settings := n.Content[0], n.Content[1]
	reg, ok := adapters.Get(namespace + "." + k.Value)
	if !ok {
		l.errf(k, "unknown %s adapter %q%s (available: %s)", namespace, k.Value, adapters.Suggest(k.Value, adapterNames(namespace)), strings.Join(adapterNames(namespace), ", "))
		return c
	}
	c.Registration = reg
	a := reg.New()
	if err := reg.Spec.Decode(settings, a); err != nil {
		l.settingErrors(err, k.Value, settings)
		return c
	}
	if v, ok := a.(adapters.Validator); ok {
		if err := v.Validate(); err != nil {
			l.errf(k, "%s adapter %q: %v", namespace, k.Value, err)
			return c
		}
	}
	c.Adapter = a
	return c
}

func (l *loader) settingErrors(err error, adapter string, n *yaml.Node) {
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	for _, e := range list {
		var se *adapters.SettingError
		if errors.As(e, &se) {
			l.at(SevError, se.Line, se.Column, "%s: %s", adapter, se.Message)
		} else {
			l.errf(n, "%s: %v", adapter, e)
		}
	}
}

func (l *loader) output(n *yaml.Node) Component {
	if n.Kind != yaml.MappingNode {
		l.errf(n, "an output must be a mapping with a name and one adapter")
		return Component{}
	}
	var name string
	var rest []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value == "name" {
			name = l.str(v, "output name")
			continue
		}
		rest = append(rest, k, v)
	}
	if name == "" {
		l.errf(n, "output needs a name (rules refer to outputs by name)")
		return Component{}
	}
	if !validName(name) {
		l.errf(n, "output name %q may only hold letters, digits, '-', '_' and '.'", name)
	}
	c := l.component(&yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column, Content: rest}, "outbound", "output "+name, name)
	c.Name = name
	return c
}

func (l *loader) lookups(n *yaml.Node) map[string]transforms.Lookup {
	out := map[string]transforms.Lookup{}
	if n == nil {
		return out
	}
	if n.Kind != yaml.MappingNode {
		l.errf(n, "lookups must be a mapping of table name: {entries: {...}, default: ...}")
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		f := l.fields(v, "lookup "+k.Value, "entries", "default")
		t := transforms.Lookup{Entries: map[string]any{}}
		if e := f["entries"]; e == nil {
			l.errf(v, "lookup %q needs entries", k.Value)
		} else if e.Kind != yaml.MappingNode {
			l.errf(e, "entries of lookup %q must be a mapping of key: value", k.Value)
		} else {
			for j := 0; j+1 < len(e.Content); j += 2 {
				var val any
				if err := e.Content[j+1].Decode(&val); err != nil {
					l.errf(e.Content[j+1], "lookup %q entry %q: %v", k.Value, e.Content[j].Value, err)
				}
				if _, dup := t.Entries[e.Content[j].Value]; dup {
					l.errf(e.Content[j], "lookup %q has key %q twice", k.Value, e.Content[j].Value)
				}
				t.Entries[e.Content[j].Value] = val
			}
		}
		if d := f["default"]; d != nil {
			if err := d.Decode(&t.Default); err != nil {
				l.errf(d, "lookup %q default: %v", k.Value, err)
			}
			t.HasDefault = true
		}
		out[k.Value] = t
	}
	return out
}

func (l *loader) transform(e *transforms.Engine, name string, n *yaml.Node) *Transform {
	t := &Transform{Name: name, Line: n.Line}
	f := l.fields(n, "transform "+name, "fields", "koppeltaal")
	if f["fields"] == nil && f["koppeltaal"] == nil {
		l.errf(n, "transform %q needs fields, koppeltaal, or both", name)
	}
	if v := f["fields"]; v != nil {
		if v.Kind != yaml.MappingNode {
			l.errf(v, "fields must be a mapping of name: expression")
		} else {
			t.Fields = l.value(e, v, "field")
		}
	}
	if v := f["koppeltaal"]; v != nil {
		t.Koppeltaal = l.koppeltaal(e, v)
	}
	return t
}

// value compiles a tree: scalars are expressions, mappings objects, sequences lists.
func (l *loader) value(e *transforms.Engine, n *yaml.Node, path string) *Value {
	switch n.Kind {
	case yaml.ScalarNode:
		p := l.expr(e, n, transforms.Any, path)
		return &Value{Expr: p}
	case yaml.MappingNode:
		v := &Value{Object: map[string]*Value{}}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i].Value
			if _, dup := v.Object[k]; dup {
				l.errf(n.Content[i], "%s: key %q given twice", path, k)
				continue
			}
			v.Keys = append(v.Keys, k)
			v.Object[k] = l.value(e, n.Content[i+1], path+"."+k)
		}
		return v
	case yaml.SequenceNode:
		v := &Value{List: []*Value{}}
		for i, item := range n.Content {
			v.List = append(v.List, l.value(e, item, fmt.Sprintf("%s[%d]", path, i)))
		}
		return v
	}
	l.errf(n, "%s: YAML aliases are not supported here", path)
	return &Value{}
}

func (l *loader) koppeltaal(e *transforms.Engine, n *yaml.Node) *KoppeltaalTemplate {
	f := l.fields(n, "koppeltaal", "event", "patient", "resources")
	k := &KoppeltaalTemplate{}
	if v := f["event"]; v == nil {
		l.errf(n, "koppeltaal needs an event (one of %s)", strings.Join(koppeltaal.Events, ", "))
	} else {
		k.Event = l.str(v, "event")
		if !slices.Contains(koppeltaal.Events, k.Event) {
			l.errf(v, "unknown Koppeltaal event %q%s (one of %s)", k.Event, adapters.Suggest(k.Event, koppeltaal.Events), strings.Join(koppeltaal.Events, ", "))
		}
	}
	if v := f["patient"]; v != nil {
		k.Patient = l.expr(e, v, transforms.Any, "koppeltaal.patient")
	}
	res := f["resources"]
	if res == nil || res.Kind != yaml.SequenceNode || len(res.Content) == 0 {
		at := n
		if res != nil {
			at = res
		}
		l.errf(at, "koppeltaal needs resources: a list whose first item is the focal resource")
		return k
	}
	for i, item := range res.Content {
		rf := l.fields(item, fmt.Sprintf("koppeltaal resource %d", i+1), "type", "id", "fields")
		rt := ResourceTemplate{Type: l.str(rf["type"], "type")}
		if rf["type"] == nil {
			l.errf(item, "resource needs a type (one of %s)", strings.Join(dstu1.MessageResourceTypes, ", "))
		} else if !slices.Contains(dstu1.MessageResourceTypes, rt.Type) {
			l.errf(rf["type"], "resource type %q is not allowed in a Koppeltaal message%s (one of %s)", rt.Type, adapters.Suggest(rt.Type, dstu1.MessageResourceTypes), strings.Join(dstu1.MessageResourceTypes, ", "))
		}
		if rf["id"] == nil {
			l.errf(item, "resource needs an id expression (stable per source record, e.g. '\"epd-\" + record.patientnummer')")
		} else {
			rt.ID = l.expr(e, rf["id"], transforms.Any, "resource id")
		}
		if v := rf["fields"]; v != nil {
			if v.Kind != yaml.MappingNode {
				l.errf(v, "resource fields must be a mapping of FHIR element: expression")
			} else {
				l.dstu1Elements(rt.Type, v)
				rt.Fields = l.value(e, v, rt.Type)
			}
		}
		k.Resources = append(k.Resources, rt)
	}
	if k.Patient == nil && k.Event != "" && k.Event != koppeltaal.EventCreateOrUpdatePractitioner && k.Event != koppeltaal.EventCreateOrUpdateActivityDefinition {
		l.errf(n, "event %s needs `patient:` (the Patient id for the MessageHeader#Patient extension)", k.Event)
	}
	return k
}

// dstu1Elements checks the element names of a resource's fields against the DSTU1 schema: a misspelt
// element (birthdate) would otherwise reach subscribers as an element their parser does not know.
func (l *loader) dstu1Elements(typ string, fields *yaml.Node) {
	known := dstu1.ResourceElements(client.DSTU1Type(typ))
	if known == nil {
		return // an unknown type is reported on its own
	}
	for i := 0; i+1 < len(fields.Content); i += 2 {
		k := fields.Content[i]
		if !slices.Contains(known, k.Value) {
			l.errf(k, "%s has no DSTU1 element %q%s", typ, k.Value, adapters.Suggest(k.Value, known))
		}
	}
}

func (l *loader) rule(e *transforms.Engine, n *yaml.Node, ts map[string]*Transform, outputs map[string]bool) *rules.Rule {
	f := l.fields(n, "rule", "when", "drop", "dead_letter", "transform", "output", "continue")
	r := &rules.Rule{Line: n.Line, Column: n.Column}
	if v := f["when"]; v != nil {
		r.HasCondition = true
		r.When = l.expr(e, v, transforms.Bool, "when")
	}
	actions := 0
	for _, key := range []string{"drop", "dead_letter"} {
		v := f[key]
		if v == nil {
			continue
		}
		actions++
		r.Action = rules.Drop
		if key == "dead_letter" {
			r.Action = rules.DeadLetter
		}
		reason := l.str(v, key)
		if strings.TrimSpace(reason) == "" {
			l.errf(v, "%s needs a reason (text; {{ expressions }} allowed)", key)
			continue
		}
		tpl, err := rules.CompileTemplate(e, reason)
		if err != nil {
			var te *rules.TemplateError
			if errors.As(err, &te) {
				// Single-line reasons: offset + column inside the expression.
				line, col := l.position(v, 1, te.Offset+te.Err.Column)
				l.at(SevError, line, col, "%s reason: %s", key, te.Err.Message)
			} else {
				l.errf(v, "%s reason: %v", key, err)
			}
			continue
		}
		r.Reason = tpl
	}
	if v := f["transform"]; v != nil {
		r.Transform = l.str(v, "transform")
		if _, ok := ts[r.Transform]; !ok {
			l.errf(v, "no transform named %q%s", r.Transform, adapters.Suggest(r.Transform, keys(ts)))
		}
	}
	if v := f["output"]; v != nil {
		var names []string
		if v.Kind == yaml.ScalarNode {
			names = []string{v.Value}
		} else if err := v.Decode(&names); err != nil {
			l.errf(v, "output must be an output name or a list of names")
		}
		for _, o := range names {
			if !outputs[o] {
				l.errf(v, "no output named %q%s", o, adapters.Suggest(o, keys(outputs)))
			}
		}
		r.Outputs = names
	}
	if v := f["continue"]; v != nil {
		if err := v.Decode(&r.Continue); err != nil {
			l.errf(v, "continue must be true or false")
		}
	}
	if actions > 1 {
		l.errf(n, "a rule either drops or dead-letters, not both")
	}
	if actions > 0 && (f["transform"] != nil || f["output"] != nil || f["continue"] != nil) {
		l.errf(n, "a drop or dead_letter rule cannot also have transform, output or continue")
	}
	return r
}

func adapterNames(namespace string) []string {
	var out []string
	for _, r := range adapters.List(namespace) {
		out = append(out, r.Name())
	}
	return out
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

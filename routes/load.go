package routes

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
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

// DefaultFailingAfter is how long an output may keep failing before /readyz reports its route: longer than
// a target's restart, so a restart does not flap readiness, short enough to be seen before records pile up.
const DefaultFailingAfter = 5 * time.Minute

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
		var ds strictyaml.Diagnostics
		if errors.As(err, &ds) {
			diags = append(diags, ds...)
			continue
		} else if err != nil {
			diags = append(diags, strictyaml.Diagnostic{File: f, Line: 1, Column: 1, Severity: strictyaml.SevError, Message: err.Error()})
			continue
		}
		if prev, dup := names[r.Name]; dup {
			diags = append(diags, strictyaml.Diagnostic{File: f, Line: 1, Column: 1, Severity: strictyaml.SevError, Message: fmt.Sprintf("route name %q is also used by %s", r.Name, prev)})
			continue
		}
		names[r.Name] = f
		out = append(out, r)
	}
	if err := diags.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// MatchFiles expands route files and globs into the route files they name, in order; a glob skips the
// route tests next to the routes (*_test.yaml). A pattern that matches nothing is a diagnostic.
func MatchFiles(patterns ...string) ([]string, strictyaml.Diagnostics) {
	var files []string
	var diags strictyaml.Diagnostics
	for _, p := range patterns {
		matches, err := filepath.Glob(p)
		if err != nil || len(matches) == 0 {
			if _, statErr := os.Stat(p); statErr != nil {
				diags = append(diags, strictyaml.Diagnostic{File: p, Line: 1, Column: 1, Severity: strictyaml.SevError, Message: "no route file matches this path"})
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

// LooksLikeRoute reports whether src may be a route file: anything but a YAML mapping none of whose top-level
// keys is a route's, not counting name and description (which other files have too). A directory walk
// (lint) skips other YAML with it — Prometheus rules, load scenarios, the regression suite's accounts —
// while a route with a misspelt key still has its others and is linted.
func LooksLikeRoute(src []byte) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return true // a syntax error is the linter's to report
	}
	keys := strictyaml.Fields(reflect.TypeOf(routeFile{}))
	top := doc.Content[0]
	for i := 0; i < len(top.Content); i += 2 {
		if k := top.Content[i].Value; k != "name" && k != "description" {
			if _, ok := keys[k]; ok {
				return true
			}
		}
	}
	return false
}

// LoadFile reads and compiles one route file. A returned error is strictyaml.Diagnostics when the file has
// problems.
func LoadFile(path string) (*Route, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read route file: %w", err)
	}
	return Load(path, src)
}

// Load compiles a route from src; path is used in messages and to resolve relative paths.
func Load(path string, src []byte) (*Route, error) {
	l := &loader{File: strictyaml.NewFile(path, src)}
	r := l.load(src)
	sum := sha256.Sum256(src)
	r.Revision = hex.EncodeToString(sum[:6])
	if err := l.Diags.Err(); err != nil {
		return nil, err
	}
	r.Warnings = l.Diags.Sorted()
	return r, nil
}

// loader compiles a decoded routeFile: adapters against their specs, expressions, rules, and the checks
// that span the file (names that must exist, rules that can never match).
type loader struct {
	*strictyaml.File
}

func (l *loader) atPos(sev strictyaml.Severity, p strictyaml.Pos, format string, args ...any) {
	l.At(sev, p.Line, p.Column, format, args...)
}

// expr compiles a scalar node as an expression and maps compile errors to file positions.
func (l *loader) expr(e *transforms.Engine, n *yaml.Node, kind transforms.Kind, what string) *transforms.Program {
	if n.Kind != yaml.ScalarNode {
		l.Errorf(n, "%s must be an expression (a single value), not a %s", what, strictyaml.KindName(n))
		return nil
	}
	p, err := e.Compile(n.Value, kind)
	if err != nil {
		var ce *transforms.CompileError
		if errors.As(err, &ce) {
			line, col := l.position(n, ce.Line, ce.Column)
			l.At(strictyaml.SevError, line, col, "%s: %s", what, ce.Message)
		} else {
			l.Errorf(n, "%s: %v", what, err)
		}
		return nil
	}
	return p
}

// position maps a 1-based line/column inside a scalar's value to the file.
func (l *loader) position(n *yaml.Node, line, col int) (int, int) {
	indentOf := func(text string) int { return len(text) - len(strings.TrimLeft(text, " ")) }
	switch n.Style {
	case yaml.LiteralStyle, yaml.FoldedStyle:
		// The block's indentation is that of its first content line; deeper lines keep their extra
		// spaces inside the expression text.
		return n.Line + line, indentOf(l.Line(n.Line+1)) + col
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
	return fileLine, indentOf(l.Line(fileLine)) + col
}

func defaultRetry() RetryPolicy {
	return RetryPolicy{MaxAttempts: DefaultMaxAttempts, Backoff: DefaultBackoff, MaxBackoff: DefaultMaxBackoff}
}

func (l *loader) load(src []byte) *Route {
	r := &Route{File: l.Name, Dir: filepath.Dir(l.Name), Transforms: map[string]*Transform{}, Retry: defaultRetry(),
		FailingAfter: DefaultFailingAfter}
	root := l.Parse(src)
	if root == nil {
		if !l.Diags.HasErrors() {
			l.At(strictyaml.SevError, 1, 1, "empty route file")
		}
		return r
	}
	if root.Kind != yaml.MappingNode {
		l.Errorf(root, "a route file is a mapping (name: ..., input: ..., outputs: ...), not a %s", strictyaml.KindName(root))
		return r
	}
	var rf routeFile
	if !l.Decode(root, "the route", &rf) && l.Diags.HasErrors() && !decodedEnough(&rf) {
		return r
	}
	top := strictyaml.PosOf(root)
	r.Name = string(rf.Name.Value)
	if strings.TrimSpace(r.Name) == "" {
		l.atPos(strictyaml.SevError, top, "the route needs a name")
	} else if !validName(r.Name) {
		l.atPos(strictyaml.SevError, rf.Name.Pos, "route name %q may only hold letters, digits, '-', '_' and '.'", r.Name)
	} else if reserved[strings.ToLower(r.Name)] {
		l.atPos(strictyaml.SevError, rf.Name.Pos, "route name %q is the built-in Koppeltaal server route's; choose another", r.Name)
	}
	r.Description = rf.Description
	if rf.SkipUnchanged != nil {
		r.SkipUnchanged = rf.SkipUnchanged.Value
	}
	if rf.Retry != nil {
		l.retry(rf.Retry, &r.Retry)
	}
	if rf.Health != nil {
		if d := rf.Health.Value.FailingAfter; d != nil && d.Set {
			if d.Value <= 0 {
				l.atPos(strictyaml.SevError, d.Pos, "failing_after must be a positive duration such as 5m")
			} else {
				r.FailingAfter = d.Value
			}
		}
	}

	// The input comes first: its shape lets expressions be type-checked.
	shape := transforms.Shape{}
	if rf.Input != nil {
		r.Input = l.component(rf.Input.node, "inbound", "input", "input")
		if s, ok := r.Input.Adapter.(adapters.Shaper); ok {
			shape = s.Shape()
		}
	} else {
		l.atPos(strictyaml.SevError, top, "the route needs an input")
	}
	engine, err := transforms.NewEngine(transforms.Config{Shape: shape, Lookups: l.lookups(rf.Lookups)})
	if err != nil {
		l.At(strictyaml.SevError, 1, 1, "%v", err)
		return r
	}
	r.engine = engine
	if rf.Key != nil {
		r.Key = l.expr(engine, rf.Key.node, transforms.Any, "key")
	}

	outputNames := map[string]bool{}
	if len(rf.Outputs) == 0 {
		l.atPos(strictyaml.SevError, top, "the route needs at least one output")
	}
	for _, item := range rf.Outputs {
		c := l.output(item.node)
		if c.Name == "" {
			continue
		}
		if outputNames[c.Name] {
			l.Errorf(item.node, "output name %q is used twice", c.Name)
			continue
		}
		outputNames[c.Name] = true
		r.Outputs = append(r.Outputs, c)
	}

	for _, e := range rf.Transforms.Entries {
		t := l.transform(engine, e.Key, e.Value, e.Pos)
		t.Line, t.Column = e.KeyPos.Line, e.KeyPos.Column
		r.Transforms[e.Key] = t
	}

	usedTransforms := map[string]bool{}
	for _, item := range rf.Rules {
		if rule := l.rule(engine, item, r.Transforms, outputNames); rule != nil {
			r.Rules = append(r.Rules, rule)
			usedTransforms[rule.Transform] = true
		}
	}
	for _, u := range rules.Unreachable(r.Rules) {
		l.At(strictyaml.SevError, u.Line, u.Column, "rule can never match: an earlier rule without a condition always ends the evaluation (add `continue: true` to it or move this rule up)")
	}
	if len(r.Rules) == 0 && len(r.Transforms) > 0 {
		if len(r.Transforms) == 1 {
			// One transform and no rules: every record goes through it to every output.
			for name := range r.Transforms {
				r.Rules = []*rules.Rule{{Line: r.Transforms[name].Line, Transform: name}}
				usedTransforms[name] = true
			}
		} else {
			l.atPos(strictyaml.SevError, rf.Transforms.Pos, "several transforms but no rules: add rules that say which transform applies")
		}
	}
	l.unused(r, usedTransforms)
	return r
}

// decodedEnough reports whether a route with decoding errors is still worth compiling for more
// diagnostics: its input and outputs were read.
func decodedEnough(rf *routeFile) bool { return rf.Input != nil && len(rf.Outputs) > 0 }

// unused warns about outputs no rule can reach and transforms no rule uses: almost always a typo or a
// leftover.
func (l *loader) unused(r *Route, usedTransforms map[string]bool) {
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
				l.At(strictyaml.SevWarning, o.Line, o.Column, "output %q is not named by any rule, so it never receives anything", o.Name)
			}
		}
	}
	for name, t := range r.Transforms {
		if !usedTransforms[name] {
			l.At(strictyaml.SevWarning, t.Line, t.Column, "transform %q is not used by any rule", name)
		}
	}
}

func (l *loader) retry(rf *strictyaml.At[retryFile], p *RetryPolicy) {
	f := rf.Value
	if v := f.MaxAttempts; v != nil && v.Set {
		if v.Value < 1 {
			l.atPos(strictyaml.SevError, v.Pos, "max_attempts must be a whole number of at least 1")
		} else {
			p.MaxAttempts = v.Value
		}
	}
	for key, d := range map[string]*strictyaml.At[time.Duration]{"backoff": f.Backoff, "max_backoff": f.MaxBackoff} {
		if d == nil || !d.Set {
			continue
		}
		if d.Value <= 0 {
			l.atPos(strictyaml.SevError, d.Pos, "%s must be a positive duration such as 500ms or 30s", key)
			continue
		}
		if key == "backoff" {
			p.Backoff = d.Value
		} else {
			p.MaxBackoff = d.Value
		}
	}
	if total := p.Total(); total < shortRetries {
		l.atPos(strictyaml.SevWarning, rf.Pos, "retries give up after %s of failing; a restart of the target takes minutes (the default retries for about %s)",
			total, defaultRetry().Total().Round(time.Minute))
	}
}

// component decodes `{<adapter>: {settings}}` for the given namespace.
func (l *loader) component(n *yaml.Node, namespace, what, name string) Component {
	c := Component{Name: name, Line: n.Line, Column: n.Column}
	if n.Kind != yaml.MappingNode || len(n.Content) != 2 {
		l.Errorf(n, "%s must name exactly one adapter, e.g. `file: {...}` (available: %s)", what, strings.Join(adapterNames(namespace), ", "))
		return c
	}
	k, settings := n.Content[0], n.Content[1]
	reg, ok := adapters.Get(namespace + "." + k.Value)
	if !ok {
		l.Errorf(k, "unknown %s adapter %q%s (available: %s)", namespace, k.Value, strictyaml.Suggest(k.Value, adapterNames(namespace)), strings.Join(adapterNames(namespace), ", "))
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
			l.Errorf(k, "%s adapter %q: %v", namespace, k.Value, err)
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
			l.At(strictyaml.SevError, se.Line, se.Column, "%s: %s", adapter, se.Message)
		} else {
			l.Errorf(n, "%s: %v", adapter, e)
		}
	}
}

// output decodes `{name: <name>, <adapter>: {settings}}`.
func (l *loader) output(n *yaml.Node) Component {
	if n.Kind != yaml.MappingNode {
		l.Errorf(n, "an output must be a mapping with a name and one adapter")
		return Component{}
	}
	var name string
	var rest []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Value != "name" {
			rest = append(rest, k, v)
		} else if v.Kind != yaml.ScalarNode {
			l.Errorf(v, "output name must be a single value, not a %s", strictyaml.KindName(v))
		} else {
			name = v.Value
		}
	}
	if name == "" {
		l.Errorf(n, "output needs a name (rules refer to outputs by name)")
		return Component{}
	}
	if !validName(name) {
		l.Errorf(n, "output name %q may only hold letters, digits, '-', '_' and '.'", name)
	}
	c := l.component(&yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column, Content: rest}, "outbound", "output "+name, name)
	c.Name = name
	return c
}

func (l *loader) lookups(m strictyaml.Map[lookupFile]) map[string]transforms.Lookup {
	out := map[string]transforms.Lookup{}
	for _, e := range m.Entries {
		if e.Value.Entries == nil {
			l.atPos(strictyaml.SevError, e.Pos, "lookup %q needs entries", e.Key)
		}
		t := transforms.Lookup{Entries: e.Value.Entries}
		if t.Entries == nil {
			t.Entries = map[string]any{}
		}
		if d := e.Value.Default; d != nil {
			if err := d.Node.Decode(&t.Default); err != nil {
				l.Errorf(d.Node, "lookup %q default: %v", e.Key, err)
			}
			t.HasDefault = true
		}
		out[e.Key] = t
	}
	return out
}

func (l *loader) transform(e *transforms.Engine, name string, tf transformFile, at strictyaml.Pos) *Transform {
	t := &Transform{Name: name, Line: at.Line}
	if tf.Fields == nil && tf.Koppeltaal == nil {
		l.atPos(strictyaml.SevError, at, "transform %q needs fields, koppeltaal, or both", name)
	}
	if tf.Fields != nil {
		t.Fields = l.value(e, tf.Fields.node, "field")
	}
	if tf.Koppeltaal != nil {
		t.Koppeltaal = l.koppeltaal(e, &tf.Koppeltaal.Value, tf.Koppeltaal.Pos)
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
	l.Errorf(n, "%s: YAML aliases are not supported here", path)
	return &Value{}
}

func (l *loader) koppeltaal(e *transforms.Engine, kf *koppeltaalFile, at strictyaml.Pos) *KoppeltaalTemplate {
	k := &KoppeltaalTemplate{Event: string(kf.Event.Value)}
	if !kf.Event.Set {
		l.atPos(strictyaml.SevError, at, "koppeltaal needs an event (one of %s)", strings.Join(koppeltaal.Events, ", "))
	} else if !koppeltaal.KnownEvent(k.Event) {
		l.atPos(strictyaml.SevError, kf.Event.Pos, "unknown Koppeltaal event %q%s (one of %s)", k.Event, strictyaml.Suggest(k.Event, koppeltaal.Events), strings.Join(koppeltaal.Events, ", "))
	}
	if kf.Patient != nil {
		k.Patient = l.expr(e, kf.Patient.node, transforms.Any, "koppeltaal.patient")
	}
	if len(kf.Resources) == 0 {
		l.atPos(strictyaml.SevError, at, "koppeltaal needs resources: a list whose first item is the focal resource")
		return k
	}
	for _, item := range kf.Resources {
		rf := item.Value
		rt := ResourceTemplate{Type: string(rf.Type.Value)}
		if !rf.Type.Set {
			l.atPos(strictyaml.SevError, item.Pos, "resource needs a type (one of %s)", strings.Join(dstu1.MessageResourceTypes, ", "))
		} else if !slices.Contains(dstu1.MessageResourceTypes, rt.Type) {
			l.atPos(strictyaml.SevError, rf.Type.Pos, "resource type %q is not allowed in a Koppeltaal message%s (one of %s)", rt.Type, strictyaml.Suggest(rt.Type, dstu1.MessageResourceTypes), strings.Join(dstu1.MessageResourceTypes, ", "))
		}
		if rf.ID == nil {
			l.atPos(strictyaml.SevError, item.Pos, "resource needs an id expression (stable per source record, e.g. '\"epd-\" + record.patientnummer')")
		} else {
			rt.ID = l.expr(e, rf.ID.node, transforms.Any, "resource id")
		}
		if rf.Fields != nil {
			l.dstu1Elements(rt.Type, rf.Fields.node)
			rt.Fields = l.value(e, rf.Fields.node, rt.Type)
		}
		k.Resources = append(k.Resources, rt)
	}
	if k.Patient == nil && k.Event != "" && k.Event != koppeltaal.EventCreateOrUpdatePractitioner && k.Event != koppeltaal.EventCreateOrUpdateActivityDefinition {
		l.atPos(strictyaml.SevError, at, "event %s needs `patient:` (the Patient id for the MessageHeader#Patient extension)", k.Event)
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
			l.Errorf(k, "%s has no DSTU1 element %q%s", typ, k.Value, strictyaml.Suggest(k.Value, known))
		}
	}
}

func (l *loader) rule(e *transforms.Engine, item strictyaml.At[ruleFile], ts map[string]*Transform, outputs map[string]bool) *rules.Rule {
	f := item.Value
	r := &rules.Rule{Line: item.Line, Column: item.Column}
	if f.When != nil {
		r.HasCondition = true
		r.When = l.expr(e, f.When.node, transforms.Bool, "when")
	}
	actions := 0
	for _, a := range []struct {
		key    string
		reason *strictyaml.At[string]
		action rules.Action
	}{{"drop", f.Drop, rules.Drop}, {"dead_letter", f.DeadLetter, rules.DeadLetter}} {
		if a.reason == nil {
			continue
		}
		actions++
		r.Action = a.action
		if strings.TrimSpace(a.reason.Value) == "" {
			l.atPos(strictyaml.SevError, a.reason.Pos, "%s needs a reason (text; {{ expressions }} allowed)", a.key)
			continue
		}
		tpl, err := rules.CompileTemplate(e, a.reason.Value)
		if err != nil {
			var te *rules.TemplateError
			if errors.As(err, &te) {
				// Single-line reasons: offset + column inside the expression.
				line, col := l.position(a.reason.Node, 1, te.Offset+te.Err.Column)
				l.At(strictyaml.SevError, line, col, "%s reason: %s", a.key, te.Err.Message)
			} else {
				l.atPos(strictyaml.SevError, a.reason.Pos, "%s reason: %v", a.key, err)
			}
			continue
		}
		r.Reason = tpl
	}
	if v := f.Transform; v != nil {
		r.Transform = v.Value
		if _, ok := ts[r.Transform]; !ok {
			l.atPos(strictyaml.SevError, v.Pos, "no transform named %q%s", r.Transform, strictyaml.Suggest(r.Transform, keys(ts)))
		}
	}
	if v := f.Output; v != nil {
		for _, o := range v.Names {
			if !outputs[o] {
				l.atPos(strictyaml.SevError, v.Pos, "no output named %q%s", o, strictyaml.Suggest(o, keys(outputs)))
			}
		}
		r.Outputs = v.Names
	}
	if f.Continue != nil {
		r.Continue = f.Continue.Value
	}
	if actions > 1 {
		l.atPos(strictyaml.SevError, item.Pos, "a rule either drops or dead-letters, not both")
	}
	if actions > 0 && (f.Transform != nil || f.Output != nil || f.Continue != nil) {
		l.atPos(strictyaml.SevError, item.Pos, "a drop or dead_letter rule cannot also have transform, output or continue")
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

// Package transforms is the expression engine of route files: it compiles expr-lang expressions once at route
// load, type-checks them against what is known of the inbound record, and offers the mapping function library
// (strings, Dutch dates, identifiers, lookups, FHIR DSTU1 builders).
package transforms

import (
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"time"
	_ "time/tzdata" // Europe/Amsterdam must resolve on machines without a zoneinfo database

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/ast"
	"github.com/expr-lang/expr/file"
	"github.com/expr-lang/expr/vm"
)

// Kind is the result type an expression must have.
type Kind int

const (
	// Any accepts any result.
	Any Kind = iota
	// Bool requires a boolean (conditions).
	Bool
	// String requires a string.
	String
)

// Shape is what is known about the inbound record before any record arrives.
type Shape struct {
	// Fields are the known top-level field names (e.g. a CSV header). Nil means unknown: any field is allowed.
	Fields []string
	// StringValues says every value is a string (CSV, form posts), so `record.x` is typed string.
	StringValues bool
	// Views are top-level names expressions may use besides record, each computed from the record once per
	// record (the mllp input's `msg`: the parsed HL7 message, so expressions write msg.PID[3][1]).
	Views map[string]func(record map[string]any) (any, error)
}

// Config configures an Engine for one route.
type Config struct {
	// Shape of the inbound record, used to reject misspelt fields at load.
	Shape Shape
	// Lookups are the small tables declared in the route, by name.
	Lookups map[string]Lookup
	// Location is the zone for local dates and times; default Europe/Amsterdam.
	Location *time.Location
}

// Lookup is a small table declared in a route: a key → value map and an optional default.
type Lookup struct {
	Entries    map[string]any
	Default    any
	HasDefault bool
}

// Engine compiles expressions for one route. It is safe for concurrent use after construction.
type Engine struct {
	cfg    Config
	fields map[string]bool
	opts   []expr.Option
}

// Env is what an expression sees at run time.
type Env struct {
	// Record is the inbound record.
	Record map[string]any
	// Meta carries facts about the record's origin (file name, row number, adapter), all strings.
	Meta map[string]string
	// Route is the route name.
	Route string
	// Vars are the values a transform computed in its `fields` section; later expressions see them as `fields`.
	Vars map[string]any
	// Views are the Shape's views computed for this record (Engine.Views).
	Views map[string]any
}

// CompileError is an expression that does not compile; Line and Column (both 1-based) are positions inside
// the expression source.
type CompileError struct {
	Line    int
	Column  int
	Message string
}

func (e *CompileError) Error() string {
	return fmt.Sprintf("%d:%d: %s", e.Line, e.Column, e.Message)
}

// Program is a compiled expression.
type Program struct {
	src  string
	prog *vm.Program
	kind Kind
}

// Source returns the expression text.
func (p *Program) Source() string { return p.src }

// NewEngine builds an engine with the function library bound to the route's lookups.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Location == nil {
		loc, err := time.LoadLocation("Europe/Amsterdam")
		if err != nil {
			return nil, fmt.Errorf("load Europe/Amsterdam time zone (is tzdata available?): %w", err)
		}
		cfg.Location = loc
	}
	e := &Engine{cfg: cfg}
	if cfg.Shape.Fields != nil {
		e.fields = make(map[string]bool, len(cfg.Shape.Fields))
		for _, f := range cfg.Shape.Fields {
			e.fields[f] = true
		}
	}
	var recordType any = map[string]any{}
	if cfg.Shape.StringValues {
		recordType = map[string]string{}
	}
	envType := map[string]any{
		"record": recordType,
		"meta":   map[string]string{},
		"route":  "",
		"fields": map[string]any{},
	}
	for name := range cfg.Shape.Views {
		if _, taken := envType[name]; taken {
			return nil, fmt.Errorf("view %q would hide the expression variable of the same name", name)
		}
		envType[name] = map[string]any{}
	}
	e.opts = append([]expr.Option{expr.Env(envType)}, e.library()...)
	return e, nil
}

// Compile compiles src once; kind says what result type is required.
func (e *Engine) Compile(src string, kind Kind) (*Program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, &CompileError{Line: 1, Column: 1, Message: "empty expression"}
	}
	checker := &shapeChecker{engine: e}
	opts := append([]expr.Option{}, e.opts...)
	opts = append(opts, expr.Patch(checker))
	switch kind {
	case Bool:
		opts = append(opts, expr.AsBool())
	case String:
		opts = append(opts, expr.AsKind(reflect.String))
	}
	prog, err := expr.Compile(src, opts...)
	if checker.err != nil {
		return nil, positioned(src, checker.pos, checker.err.Error())
	}
	if err != nil {
		var fe *file.Error
		if errors.As(err, &fe) {
			fe.Bind(file.NewSource(src))
			return nil, &CompileError{Line: fe.Line, Column: fe.Column + 1, Message: fe.Message}
		}
		return nil, &CompileError{Line: 1, Column: 1, Message: err.Error()}
	}
	return &Program{src: src, prog: prog, kind: kind}, nil
}

// positioned turns a rune offset into a 1-based line/column error.
func positioned(src string, offset int, msg string) *CompileError {
	line, col := 1, 1
	for i, r := range []rune(src) {
		if i == offset {
			break
		}
		if r == '\n' {
			line++
			col = 1
		} else {
			col++
		}
	}
	return &CompileError{Line: line, Column: col, Message: msg}
}

// shapeChecker rejects fields the record is known not to have and lookup tables the route does not declare.
type shapeChecker struct {
	engine *Engine
	err    error
	pos    int
}

func (c *shapeChecker) Visit(node *ast.Node) {
	if c.err != nil {
		return
	}
	switch n := (*node).(type) {
	case *ast.MemberNode:
		id, ok := n.Node.(*ast.IdentifierNode)
		if !ok || id.Value != "record" || c.engine.fields == nil {
			return
		}
		prop, ok := n.Property.(*ast.StringNode)
		if !ok || c.engine.fields[prop.Value] || n.Optional {
			return
		}
		c.err = fmt.Errorf("record has no field %q (known fields: %s)", prop.Value, strings.Join(sortedKeys(c.engine.fields), ", "))
		c.pos = n.Property.Location().From
	case *ast.CallNode:
		id, ok := n.Callee.(*ast.IdentifierNode)
		if !ok || id.Value != "lookup" || len(n.Arguments) == 0 {
			return
		}
		name, ok := n.Arguments[0].(*ast.StringNode)
		if !ok {
			c.err = errors.New("lookup: the table name must be a quoted string")
			c.pos = n.Arguments[0].Location().From
			return
		}
		if _, ok := c.engine.cfg.Lookups[name.Value]; !ok {
			c.err = fmt.Errorf("lookup: no table %q declared in this route's lookups (declared: %s)", name.Value, strings.Join(sortedKeys(c.engine.cfg.Lookups), ", "))
			c.pos = name.Location().From
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Eval runs the program against env.
func (p *Program) Eval(env Env) (any, error) {
	out, err := expr.Run(p.prog, env.asMap())
	if err != nil {
		return nil, fmt.Errorf("evaluate %q: %w", p.src, err)
	}
	return out, nil
}

// EvalBool runs a condition.
func (p *Program) EvalBool(env Env) (bool, error) {
	out, err := p.Eval(env)
	if err != nil {
		return false, err
	}
	b, ok := out.(bool)
	if !ok {
		return false, fmt.Errorf("evaluate %q: result is %T, want bool", p.src, out)
	}
	return b, nil
}

// Views computes the Shape's views for one record; the result goes into Env.Views.
func (e *Engine) Views(record map[string]any) (map[string]any, error) {
	if len(e.cfg.Shape.Views) == 0 {
		return nil, nil
	}
	out := make(map[string]any, len(e.cfg.Shape.Views))
	for name, f := range e.cfg.Shape.Views {
		v, err := f(record)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = v
	}
	return out, nil
}

func (env Env) asMap() map[string]any {
	m := map[string]any{"record": env.Record, "meta": env.Meta, "route": env.Route, "fields": env.Vars}
	for k, v := range env.Views {
		m[k] = v
	}
	if env.Record == nil {
		m["record"] = map[string]any{}
	}
	if env.Meta == nil {
		m["meta"] = map[string]string{}
	}
	if env.Vars == nil {
		m["fields"] = map[string]any{}
	}
	return m
}

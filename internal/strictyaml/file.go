// Package strictyaml is how Koppelpoort reads YAML: the configuration file, route files and their adapter
// settings, route tests, the tools' files. One parser (go.yaml.in/yaml/v4, whose syntax errors carry the
// right line and column), strict keys (an unknown key is an error naming the key probably meant), one
// ${ENV} dialect (Expand), and one kind of error: Diagnostics, each with file:line:col, the source line and
// a caret. JSONSchema describes the same Go types for editors.
package strictyaml

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v4"
)

// File is one YAML file being read: its name and lines (for snippets) and the problems found so far.
type File struct {
	Name  string
	lines []string
	Diags Diagnostics
}

// NewFile starts reading src, named name in diagnostics.
func NewFile(name string, src []byte) *File {
	return &File{Name: name, lines: strings.Split(string(src), "\n")}
}

// At records a problem at line:col (1-based).
func (f *File) At(sev Severity, line, col int, format string, args ...any) {
	f.Diags = append(f.Diags, Diagnostic{File: f.Name, Line: line, Column: col, Severity: sev,
		Message: fmt.Sprintf(format, args...), Snippet: snippet(f.lines, line, col)})
}

// Errorf records an error at n.
func (f *File) Errorf(n *yaml.Node, format string, args ...any) {
	f.At(SevError, n.Line, n.Column, format, args...)
}

// Line returns line n (1-based) of the file, "" past its end.
func (f *File) Line(n int) string {
	if n < 1 || n > len(f.lines) {
		return ""
	}
	return f.lines[n-1]
}

// Parse reads the file's single document. It returns nil (and records nothing) for an empty file, and
// nil with a diagnostic for a syntax error: file:line:col where the parser stopped, and where the construct
// it was reading began when that is elsewhere.
func (f *File) Parse(src []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(src)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		f.loadError(err, nil)
		return nil
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return doc.Content[0]
}

// Decode decodes n into out (a pointer to tagged structs): every mapping key is checked against out's
// yaml tags (CheckKeys), and values are converted, a value of the wrong type reported at its position.
// Both run, so one pass reports every problem; Decode reports whether it found none.
func (f *File) Decode(n *yaml.Node, what string, out any) bool {
	before := len(f.Diags)
	f.CheckKeys(n, what, out)
	if err := n.Decode(out); err != nil {
		f.loadError(err, n)
	}
	return len(f.Diags) == before
}

// loadError records a go-yaml error at its positions (at fallback, or line 1, when it has none).
func (f *File) loadError(err error, fallback *yaml.Node) {
	var les *yaml.LoadErrors
	var le *yaml.LoadError
	var all []*yaml.LoadError
	switch {
	case errors.As(err, &les):
		all = les.Errors
	case errors.As(err, &le):
		all = []*yaml.LoadError{le}
	}
	recorded := false
	for _, le := range all {
		if le.Mark.Line == 0 {
			continue
		}
		msg := le.Message
		if le.ContextMsg != "" && le.ContextMark != le.Mark {
			msg += fmt.Sprintf(" (%s at line %d, column %d)", le.ContextMsg, le.ContextMark.Line, le.ContextMark.Column)
		}
		f.At(SevError, le.Mark.Line, le.Mark.Column, "%s", msg)
		recorded = true
	}
	if !recorded {
		line, col := 1, 1
		if fallback != nil {
			line, col = fallback.Line, fallback.Column
		}
		f.At(SevError, line, col, "%s", strings.TrimPrefix(err.Error(), "yaml: "))
	}
}

// ExpandEnv substitutes environment variables (Expand) in every scalar value under n — not in keys — and
// records an error for each reference that cannot be expanded. Working on nodes rather than on the text
// keeps positions and means a secret holding YAML syntax (": ", "#") cannot change the document's shape.
// An unquoted value that expands to a whole number, a decimal, true or false is that (max_open_conns:
// ${CONNS} is an int; a string setting still gets the text); anything else — also "null" or "~" — is text.
func (f *File) ExpandEnv(n *yaml.Node, lookup Lookup) {
	if n == nil {
		return
	}
	switch n.Kind {
	case yaml.ScalarNode:
		if !strings.Contains(n.Value, "${") {
			return
		}
		v, err := Expand(n.Value, lookup)
		if err != nil {
			f.Errorf(n, "%v", err)
			return
		}
		n.Value = v
		if n.Tag == "" || n.Tag == "!!str" || n.Tag == "!!null" {
			n.Tag = scalarTag(n, v)
		}
	case yaml.MappingNode:
		for i := 1; i < len(n.Content); i += 2 {
			f.ExpandEnv(n.Content[i], lookup)
		}
	case yaml.SequenceNode, yaml.DocumentNode:
		for _, c := range n.Content {
			f.ExpandEnv(c, lookup)
		}
	}
}

var (
	intText   = regexp.MustCompile(`^[-+]?[0-9]+$`)
	floatText = regexp.MustCompile(`^[-+]?([0-9]+\.[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$`)
)

// scalarTag is the tag of a substituted value v: text, unless n is unquoted and v a number or boolean.
func scalarTag(n *yaml.Node, v string) string {
	if n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle|yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
		return "!!str"
	}
	switch {
	case intText.MatchString(v):
		return "!!int"
	case floatText.MatchString(v):
		return "!!float"
	case v == "true" || v == "false":
		return "!!bool"
	}
	return "!!str"
}

// snippet renders line (1-based) of lines with a caret under col (1-based).
func snippet(lines []string, line, col int) string {
	if line < 1 || line > len(lines) {
		return ""
	}
	text := strings.ReplaceAll(lines[line-1], "\t", " ")
	caret := strings.Repeat(" ", max(col-1, 0)) + "^"
	return "    " + text + "\n    " + caret
}

// KindName names a node's kind for messages ("mapping", "list", "single value").
func KindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "single value"
	}
	return "alias"
}

// Decode reads src (named name in errors) into out the way the configuration file is read: parsed, every
// value expanded (ExpandEnv with lookup; nil: no substitution, for files that are data such as route
// tests), every key checked against out's yaml tags, decoded. An empty file leaves out unchanged. The
// error is Diagnostics.
func Decode(name string, src []byte, lookup Lookup, out any) error {
	f := NewFile(name, src)
	n := f.Parse(src)
	if n == nil {
		return f.Diags.Err()
	}
	if lookup != nil {
		f.ExpandEnv(n, lookup)
	}
	f.Decode(n, "the top level", out)
	return f.Diags.Err()
}

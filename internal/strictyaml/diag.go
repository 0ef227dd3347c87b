package strictyaml

import (
	"fmt"
	"sort"
	"strings"
)

// Severity of a Diagnostic.
type Severity string

// Severities: errors make a file unusable, warnings are printed by lint.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
)

// Diagnostic is one problem in a YAML file, at a position, with the offending line and a caret under it.
type Diagnostic struct {
	File string
	// Line and Column are 1-based; Line 0 means the position is unknown (a value checked after decoding),
	// and the diagnostic reads "file: severity: message".
	Line     int
	Column   int
	Severity Severity
	Message  string
	// Snippet is the source line and a caret line under Column (empty when the line is unknown).
	Snippet string
}

func (d Diagnostic) String() string {
	var b strings.Builder
	if d.Line == 0 {
		fmt.Fprintf(&b, "%s: %s: %s", d.File, d.Severity, d.Message)
	} else {
		fmt.Fprintf(&b, "%s:%d:%d: %s: %s", d.File, d.Line, d.Column, d.Severity, d.Message)
	}
	if d.Snippet != "" {
		b.WriteString("\n")
		b.WriteString(d.Snippet)
	}
	return b.String()
}

// Diagnostics is a list of problems; as an error it holds at least one SevError.
type Diagnostics []Diagnostic

func (ds Diagnostics) Error() string {
	parts := make([]string, len(ds))
	for i, d := range ds {
		parts[i] = d.String()
	}
	return strings.Join(parts, "\n")
}

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SevError {
			return true
		}
	}
	return false
}

// Sorted orders the diagnostics by file, line and column (stable: equal positions keep their order).
func (ds Diagnostics) Sorted() Diagnostics {
	sort.SliceStable(ds, func(i, j int) bool {
		if ds[i].File != ds[j].File {
			return ds[i].File < ds[j].File
		}
		if ds[i].Line != ds[j].Line {
			return ds[i].Line < ds[j].Line
		}
		return ds[i].Column < ds[j].Column
	})
	return ds
}

// Err returns the sorted diagnostics as an error when any is an error, else nil.
func (ds Diagnostics) Err() error {
	if ds.HasErrors() {
		return ds.Sorted()
	}
	return nil
}

package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"

	"github.com/koppelpoort/koppelpoort/internal/suggest"
	"go.yaml.in/yaml/v4"
)

func errEOF() error { return io.EOF }

// CheckKnownFields walks a decoded YAML document against the Go type of out
// and reports every mapping key that no struct field accepts, with its line
// and column and, where one is close, the key that was probably meant.
// yaml.v3's own strict mode works on a byte stream, not on a node tree that
// has been rewritten (environment substitution), so this checks the tree.
func CheckKnownFields(doc *yaml.Node, out any) error {
	var errs []error
	checkNode(doc, reflect.TypeOf(out), "", &errs)
	return errors.Join(errs...)
}

func checkNode(n *yaml.Node, t reflect.Type, path string, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			checkNode(c, t, path, errs)
		}
	case yaml.AliasNode:
		if n.Alias != nil {
			checkNode(n.Alias, t, path, errs)
		}
	case yaml.SequenceNode:
		if t.Kind() == reflect.Slice || t.Kind() == reflect.Array {
			for _, c := range n.Content {
				checkNode(c, t.Elem(), path+"[]", errs)
			}
		}
	case yaml.MappingNode:
		switch t.Kind() {
		case reflect.Map:
			for i := 0; i+1 < len(n.Content); i += 2 {
				checkNode(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value), errs)
			}
		case reflect.Struct:
			if implementsUnmarshaler(t) {
				return
			}
			fields := yamlFields(t)
			for i := 0; i+1 < len(n.Content); i += 2 {
				k := n.Content[i]
				if k.Value == "<<" { // merge key: check the merged mapping against the same type
					checkNode(n.Content[i+1], t, path, errs)
					continue
				}
				ft, ok := fields[k.Value]
				if !ok {
					msg := fmt.Sprintf("line %d, column %d: unknown key %q in %s", k.Line, k.Column, k.Value, sectionName(path))
					if s := closest(k.Value, fields); s != "" {
						msg += fmt.Sprintf(" (did you mean %q?)", s)
					}
					*errs = append(*errs, errors.New(msg))
					continue
				}
				checkNode(n.Content[i+1], ft, join(path, k.Value), errs)
			}
		}
	}
}

func implementsUnmarshaler(t reflect.Type) bool {
	u := reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	return t.Implements(u) || reflect.PointerTo(t).Implements(u)
}

func sectionName(path string) string {
	if path == "" {
		return "the top level"
	}
	return "section " + path
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// yamlFields maps the YAML keys a struct accepts to their types, following
// `yaml:",inline"` embedding.
func yamlFields(t reflect.Type) map[string]reflect.Type {
	m := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") {
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range yamlFields(ft) {
					m[k] = v
				}
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		m[name] = f.Type
	}
	return m
}

// closest returns the known key nearest to k, if any is close.
func closest(k string, fields map[string]reflect.Type) string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return suggest.Closest(k, names)
}

// envRef matches ${NAME} and ${NAME:-default}; $${ escapes a literal ${.
var envRef = regexp.MustCompile(`\$?\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// substituteEnv replaces ${VAR} in scalar values (not keys) of the tree. Doing
// it on nodes rather than on the raw text keeps line numbers and means a
// secret containing YAML syntax (": ", "#") cannot change the document's shape.
func substituteEnv(n *yaml.Node, getenv func(string) string) error {
	if getenv == nil {
		getenv = os.Getenv
	}
	var errs []error
	var walk func(n *yaml.Node, isKey bool)
	walk = func(n *yaml.Node, isKey bool) {
		if n.Kind == yaml.ScalarNode && !isKey && strings.Contains(n.Value, "${") {
			n.Value = envRef.ReplaceAllStringFunc(n.Value, func(m string) string {
				if strings.HasPrefix(m, "$$") {
					return m[1:]
				}
				sub := envRef.FindStringSubmatch(m)
				v := getenv(sub[1])
				if v == "" {
					if sub[2] != "" {
						return sub[3]
					}
					errs = append(errs, fmt.Errorf("line %d, column %d: environment variable %s is not set (use ${%s:-default} for a default)", n.Line, n.Column, sub[1], sub[1]))
				}
				return v
			})
			// A substituted value is text, never a YAML number/bool/null in disguise.
			if n.Tag == "" || n.Tag == "!!null" {
				n.Tag = "!!str"
			}
			return
		}
		for i, c := range n.Content {
			walk(c, n.Kind == yaml.MappingNode && i%2 == 0)
		}
	}
	walk(n, false)
	return errors.Join(errs...)
}

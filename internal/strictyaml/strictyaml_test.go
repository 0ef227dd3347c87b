package strictyaml

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func lookup(vars map[string]string) Lookup {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// TestExpand pins the one ${ENV} dialect: set, unset, empty-but-set, defaults, the $${ escape and
// malformed references.
func TestExpand(t *testing.T) {
	env := lookup(map[string]string{"SET": "v", "EMPTY": "", "SECRET": "a: b # c"})
	cases := []struct{ in, want, err string }{
		{"${SET}", "v", ""},
		{"x-${SET}-y", "x-v-y", ""},
		{"${SECRET}", "a: b # c", ""},
		{"${UNSET}", "", "environment variable UNSET is not set (use ${UNSET:-default} for a default)"},
		{"${EMPTY}", "", "environment variable EMPTY is empty (use ${EMPTY:-} to allow an empty value)"},
		{"${UNSET:-dflt}", "dflt", ""},
		{"${EMPTY:-dflt}", "dflt", ""},
		{"${SET:-dflt}", "v", ""},
		{"${EMPTY:-}", "", ""},
		{"$${SET}", "${SET}", ""},
		{"$${UNSET} and ${SET}", "${UNSET} and v", ""},
		{"pa$$word$", "pa$$word$", ""},
		{"${SET", "", "is not closed"},
		{"${1X}", "", "is not an environment variable name"},
		{"${A B}", "", "is not an environment variable name"},
	}
	for _, c := range cases {
		got, err := Expand(c.in, env)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("Expand(%q) = %q, %v; want error containing %q", c.in, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Expand(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
}

type testConfig struct {
	Server struct {
		Addr    string        `yaml:"addr"`
		Timeout time.Duration `yaml:"timeout"`
	} `yaml:"server"`
	Items []struct {
		Name string `yaml:"name"`
	} `yaml:"items"`
	Named Map[struct {
		Value int `yaml:"value"`
	}] `yaml:"named"`
	Count At[int] `yaml:"count"`
}

// TestDecodeDiagnostics: every problem is a Diagnostic with file:line:col, a caret under the column and,
// for a misspelt key, the key meant — also inside lists and position-keeping wrappers.
func TestDecodeDiagnostics(t *testing.T) {
	src := "server:\n  adr: x\n  timeout: soon\nitems:\n  - nmae: a\nnamed:\n  one: {valeu: 1}\ncount: ${N}\nstroe: 1\n"
	err := Decode("c.yaml", []byte(src), lookup(nil), &testConfig{})
	var ds Diagnostics
	if !errors.As(err, &ds) {
		t.Fatalf("want Diagnostics, got %v", err)
	}
	for _, want := range []string{
		"c.yaml:2:3: error: unknown key \"adr\" in server (did you mean \"addr\"?) (allowed: addr, timeout)\n      adr: x\n      ^",
		`c.yaml:5:5: error: unknown key "nmae" in items[0] (did you mean "name"?)`,
		`c.yaml:7:9: error: unknown key "valeu" in named.one (did you mean "value"?)`,
		`c.yaml:8:8: error: environment variable N is not set`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("diagnostics do not contain\n%s\ngot:\n%s", want, err)
		}
	}
	// Keys are checked before values are converted; a clean file gets its type errors with positions.
	err = Decode("c.yaml", []byte("server:\n  timeout: soon\ncount: many\n"), nil, &testConfig{})
	for _, want := range []string{"c.yaml:2:12: error: cannot construct !!str `soon` into time.Duration", "c.yaml:3:8: error: cannot construct !!str `many` into int"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want %q, got %v", want, err)
		}
	}
}

func TestDecodeKeepsPositionsAndOrder(t *testing.T) {
	var c testConfig
	src := "named:\n  b: {value: 2}\n  a: {value: 1}\ncount: ${N:-7}\n"
	if err := Decode("c.yaml", []byte(src), lookup(nil), &c); err != nil {
		t.Fatal(err)
	}
	if len(c.Named.Entries) != 2 || c.Named.Entries[0].Key != "b" || c.Named.Entries[1].Value.Value != 1 || c.Named.Entries[1].KeyPos != (Pos{3, 3}) {
		t.Errorf("named = %+v", c.Named)
	}
	// A substituted value is text; an int field still takes it (7), and its position is kept.
	if !c.Count.Set || c.Count.Pos != (Pos{4, 8}) {
		t.Errorf("count = %+v", c.Count)
	}
}

func TestSyntaxError(t *testing.T) {
	err := Decode("s.yaml", []byte("a: [1,\n  2\nb: 3\n"), nil, &map[string]any{})
	if err == nil || !strings.HasPrefix(err.Error(), "s.yaml:3:2: error: ") {
		t.Fatalf("got %v", err)
	}
}

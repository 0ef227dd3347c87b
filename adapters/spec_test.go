package adapters

import (
	"strings"
	"testing"

	"go.yaml.in/yaml/v4"
)

var testSpec = Spec{Summary: "test", Fields: []Field{
	{Name: "url", Type: TypeString, Required: true, Description: "where"},
	{Name: "token", Type: TypeSecret},
	{Name: "tries", Type: TypeInt, Default: 3},
	{Name: "on", Type: TypeBool, Default: true},
	{Name: "wait", Type: TypeDuration, Default: "2s"},
	{Name: "mode", Type: TypeString, Default: "a", Enum: []string{"a", "b"}},
	{Name: "tags", Type: TypeStrings},
	{Name: "headers", Type: TypeMap},
}}

type testTarget struct {
	URL     string            `yaml:"url"`
	Token   string            `yaml:"token"`
	Tries   int               `yaml:"tries"`
	On      bool              `yaml:"on"`
	Wait    string            `yaml:"wait"`
	Mode    string            `yaml:"mode"`
	Tags    []string          `yaml:"tags"`
	Headers map[string]string `yaml:"headers"`
}

func node(t *testing.T, src string) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

func TestSpecDecode(t *testing.T) {
	env := func(name string) (string, bool) {
		switch name {
		case "KP_TOKEN":
			return "s3cret", true
		case "KP_EMPTY":
			return "", true
		}
		return "", false
	}
	var got testTarget
	err := testSpec.decode(node(t, "url: ${KP_URL:-http://x}\ntoken: ${KP_TOKEN}\ntags: [a, b]\nheaders: {X-A: \"1\"}\n"), &got, env)
	if err != nil {
		t.Fatal(err)
	}
	if got.URL != "http://x" || got.Token != "s3cret" || got.Tries != 3 || !got.On || got.Wait != "2s" || got.Mode != "a" || len(got.Tags) != 2 || got.Headers["X-A"] != "1" {
		t.Fatalf("decoded %+v", got)
	}
	tests := []struct{ src, want string }{
		{"tries: 3\n", `1:1: missing required setting "url"`},
		{"url: x\nurll: y\n", `2:1: unknown setting "urll" (did you mean "url"?)`},
		{"url: x\ntries: many\n", `2:8: setting "tries": "many" is not a whole number`},
		{"url: x\nwait: 5 minutes\n", `2:7: setting "wait": "5 minutes" is not a duration`},
		{"url: x\nmode: c\n", `2:7: setting "mode": "c" is not one of a, b`},
		{"url: x\ntoken: ${NOPE}\n", `2:8: setting "token": environment variable NOPE is not set`},
		// An empty variable is refused as in the configuration file (it used to give an empty token here);
		// ${KP_EMPTY:-} allows it on purpose.
		{"url: x\ntoken: ${KP_EMPTY}\n", `2:8: setting "token": environment variable KP_EMPTY is empty`},
		{"url: [x]\n", `1:6: setting "url": want a string, got a list`},
		{"- x\n", `settings must be a mapping`},
	}
	for _, tc := range tests {
		err := testSpec.decode(node(t, tc.src), &testTarget{}, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.src, err, tc.want)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	for name, r := range map[string]Registration{
		"no namespace": {ID: "file", New: func() any { return nil }},
		"not inbound":  {ID: "inbound.x", New: func() any { return struct{}{} }},
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("want panic")
				}
			}()
			Register(r)
		})
	}
}

func TestSpecJSONSchema(t *testing.T) {
	s := testSpec.JSONSchema()
	if s["additionalProperties"] != false || len(s["required"].([]string)) != 1 {
		t.Fatalf("schema %v", s)
	}
}

package examples_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v4"

	_ "github.com/koppelpoort/koppelpoort/adapters/all"
	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/routes"
)

// compileSchema compiles a schema Koppelpoort generates (`koppelpoort schema`, `schema --config`).
func compileSchema(t *testing.T, name string, s map[string]any) *jsonschema.Schema {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource(name, doc); err != nil {
		t.Fatal(err)
	}
	sch, err := c.Compile(name)
	if err != nil {
		t.Fatalf("%s does not compile as JSON Schema: %v", name, err)
	}
	return sch
}

// yamlInstance reads a YAML file as the JSON value a schema validates.
func yamlInstance(t *testing.T, path string) any {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := yaml.Unmarshal(src, &v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

// TestYAMLFilesMatchTheirSchemas: every configuration and route file under examples/ and docs/ validates
// against the JSON Schema Koppelpoort prints for it, and each is also accepted by the loader — so the
// schema (reflected from the loader's types) and the loader agree on real files. Route tests
// (*_test.yaml) are data for `koppelpoort test` and have no schema.
func TestYAMLFilesMatchTheirSchemas(t *testing.T) {
	// YAML files in docs/ that other programs read (checked by their own tests).
	notOurs := map[string]bool{"../docs/prometheus-alerts.yaml": true}
	routeSchema := compileSchema(t, "route.json", routes.JSONSchema())
	configSchema := compileSchema(t, "config.json", config.JSONSchema())
	var files []string
	for _, dir := range []string{".", "../docs"} {
		err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".") && p != dir) {
				return filepath.SkipDir
			}
			if notOurs[filepath.ToSlash(p)] {
				return nil
			}
			if !d.IsDir() && (strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) && !routes.IsTestFile(d.Name()) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	var configs, routeFiles int
	for _, f := range files {
		src, _ := os.ReadFile(f)
		if config.IsConfigFile(src) {
			configs++
			if err := configSchema.Validate(yamlInstance(t, f)); err != nil {
				t.Errorf("%s does not match `koppelpoort schema --config`:\n%v", f, err)
			}
			if _, err := config.Parse(f, src, func(string) string { return "set" }); err != nil {
				t.Errorf("%s: %v", f, err)
			}
			continue
		}
		routeFiles++
		if err := routeSchema.Validate(yamlInstance(t, f)); err != nil {
			t.Errorf("%s does not match `koppelpoort schema`:\n%v", f, err)
		}
	}
	if configs < 2 || routeFiles < 5 {
		t.Errorf("checked %d configuration and %d route files; want the examples' and docs/koppelpoort.example.yaml", configs, routeFiles)
	}
}

// TestSchemasRefuseWhatTheLoaderRefuses: a misspelt key fails both the schema and the loader (the schema is
// no looser than the decoder), and the schema's retry defaults are the loader's.
func TestSchemasRefuseWhatTheLoaderRefuses(t *testing.T) {
	routeSchema := compileSchema(t, "route.json", routes.JSONSchema())
	configSchema := compileSchema(t, "config.json", config.JSONSchema())
	dir := t.TempDir()
	route := filepath.Join(dir, "r.yaml")
	os.WriteFile(route, []byte("name: r\ninput: {http: {path: /x, auth: none}}\nrules:\n  - wehn: 'true'\noutputs:\n  - {name: o, file: {dir: ./o}}\n"), 0o644)
	if err := routeSchema.Validate(yamlInstance(t, route)); err == nil {
		t.Error("route schema accepts rules[].wehn")
	}
	if _, err := routes.LoadFile(route); err == nil {
		t.Error("loader accepts rules[].wehn")
	}
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte("server:\n  adr: x\n"), 0o644)
	if err := configSchema.Validate(yamlInstance(t, cfg)); err == nil {
		t.Error("config schema accepts server.adr")
	}
	retry := routes.JSONSchema()["properties"].(map[string]any)["retry"].(map[string]any)["properties"].(map[string]any)
	for key, want := range map[string]any{"max_attempts": int64(routes.DefaultMaxAttempts), "backoff": routes.DefaultBackoff.String(), "max_backoff": routes.DefaultMaxBackoff.String()} {
		if got := retry[key].(map[string]any)["default"]; got != want {
			t.Errorf("schema default of retry.%s = %v, the loader's is %v", key, got, want)
		}
	}
}

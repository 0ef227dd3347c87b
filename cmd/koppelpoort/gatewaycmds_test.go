package main

import (
	"context"

	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/store"
	"github.com/spf13/cobra"
)

func runCmd(t *testing.T, c *cobra.Command, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	c.SetOut(&out)
	c.SetErr(&out)
	c.SetArgs(args)
	err := c.Execute()
	return out.String(), err
}

func TestLintCmd(t *testing.T) {
	out, err := runCmd(t, newLintCmd(), "../../routes/testdata/patients.yaml")
	if err != nil || !strings.Contains(out, "ok (route epd-patients)") {
		t.Fatalf("good route: %v\n%s", err, out)
	}
	out, err = runCmd(t, newLintCmd(), "../../routes/testdata/bad/expr.yaml")
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("bad route: want exit 1, got %v", err)
	}
	if !strings.Contains(out, `expr.yaml:8:28: error: when: record has no field "bsm"`) || !strings.Contains(out, "^") {
		t.Fatalf("bad route output:\n%s", out)
	}
}

func TestRouteTestCmd(t *testing.T) {
	out, err := runCmd(t, newRouteTestCmd(), "../../routes/testdata")
	if err != nil || !strings.Contains(out, "2 passed, 0 failed") {
		t.Fatalf("%v\n%s", err, out)
	}
	dir := t.TempDir()
	src, _ := os.ReadFile("../../routes/testdata/patients.yaml")
	os.WriteFile(filepath.Join(dir, "patients.yaml"), src, 0o644)
	os.WriteFile(filepath.Join(dir, "x_test.yaml"), []byte("route: patients.yaml\ntests:\n  - name: wrong\n    input: {records: [{bsn: ''}]}\n    expect: [{outcome: routed}]\n"), 0o644)
	out, err = runCmd(t, newRouteTestCmd(), dir)
	var ee exitError
	if !errors.As(err, &ee) || !strings.Contains(out, "FAIL") || !strings.Contains(out, "outcome dropped (reason: geen BSN), want routed") {
		t.Fatalf("want failure, got %v\n%s", err, out)
	}
}

func TestSchemaCmd(t *testing.T) {
	out, err := runCmd(t, newSchemaCmd())
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil || m["title"] != "Koppelpoort route" {
		t.Fatalf("schema: %v", err)
	}
	if !strings.Contains(out, `"delimiter"`) {
		t.Fatal("schema lacks the file adapter's settings")
	}
	out, err = runCmd(t, newSchemaCmd(), "--markdown")
	if err != nil || !strings.Contains(out, "### `inbound.file`") {
		t.Fatalf("markdown: %v\n%s", err, out)
	}
}

func TestReplayCmd(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "kp.db")
	st, err := store.Open(context.Background(), store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Update(context.Background(), func(tx *store.Tx) error {
		return tx.PutDeadLetter(context.Background(), store.DeadLetter{ID: "dl1", Route: "r1", Stage: "rules", RecordKey: "k1",
			Record: `{"key":"k1","fields":{"a":"1"}}`, Reason: "bad BSN " + strings.Repeat("and more ", 20) + "END", Revision: "abc123", CreatedAt: 1,
			Attempts: 3, AttemptLog: `[{"at":1796251004958947,"error":"503 first"},{"at":1796251005958947,"error":"503 second"}]`})
	}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	if _, err := runCmd(t, newReplayCmd(), "--dsn", dsn); err == nil {
		t.Fatal("replay without a selection must fail")
	}
	out, err := runCmd(t, newReplayCmd(), "--dsn", dsn, "--route", "r1")
	if err != nil || !strings.Contains(out, "dry run: 1 dead letters would be replayed") || !strings.Contains(out, "bad BSN") {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	// --id shows the dead letter whole (issue 14, defect 5: the reason was cut at 100 characters).
	out, err = runCmd(t, newReplayCmd(), "--dsn", dsn, "--id", "dl1")
	for _, want := range []string{"r1 (revision abc123)", "stage        rules", "and more END", `"a": "1"`,
		"attempts:\n  (1 earlier attempts not kept)\n  2026-12-02T22:36:44Z  503 first\n  2026-12-02T22:36:45Z  503 second\n"} {
		if err != nil || !strings.Contains(out, want) {
			t.Errorf("replay --id lacks %q: %v\n%s", want, err, out)
		}
	}
	out, err = runCmd(t, newReplayCmd(), "--dsn", dsn, "--id", "dl1", "--yes")
	if err != nil || !strings.Contains(out, "replayed 1 dead letters") {
		t.Fatalf("replay: %v\n%s", err, out)
	}
	out, _ = runCmd(t, newReplayCmd(), "--dsn", dsn, "--all")
	if !strings.Contains(out, "no dead letters to replay in SQLite "+dsn) {
		t.Fatalf("after replay: %s", out)
	}
	// Without --config it says it looked in the embedded default (defect 3), and where nothing ever ran it
	// says so instead of creating an empty database there.
	t.Chdir(t.TempDir())
	t.Setenv("KOPPELPOORT_DSN", "")
	out, err = runCmd(t, newReplayCmd(), "--route", "epd-patients")
	if err == nil || !strings.Contains(err.Error(), "no store there (nothing has run on it) (the embedded default; give --config FILE") {
		t.Fatalf("without --config: %v\n%s", err, out)
	}
	if _, err := os.Stat("koppelpoort-data"); err == nil {
		t.Fatal("replay created the embedded default's database")
	}
}

func TestLintSkipsRouteTestFiles(t *testing.T) {
	out, err := runCmd(t, newLintCmd(), "../../examples/epd-to-koppeltaal/patients.yaml", "../../examples/epd-to-koppeltaal/patients_test.yaml")
	if err != nil {
		t.Fatalf("a glob matching route tests too must not fail lint: %v\n%s", err, out)
	}
	if !strings.Contains(out, "patients_test.yaml: skipped (a route test file") {
		t.Fatalf("route test file not reported as skipped:\n%s", out)
	}
}

// `koppelpoort lint examples` lints the example routes and checks the example configuration as a
// configuration instead of reporting it as a broken route (issue 14, defect 24).
func TestLintDirectoryWithConfig(t *testing.T) {
	out, err := runCmd(t, newLintCmd(), "../../examples")
	if err != nil {
		t.Fatalf("lint examples: %v\n%s", err, out)
	}
	for _, want := range []string{
		"examples/koppelpoort-examples.yaml: ok (Koppelpoort configuration; routes: 6 files)",
		"examples/epd-to-koppeltaal/patients.yaml: ok (route epd-patients)",
		"examples/koppeltaal-to-epd/activity-status.yaml: ok (route kt-activity-status)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if n := strings.Count(out, "epd-to-koppeltaal/patients.yaml: ok"); n != 1 {
		t.Errorf("patients.yaml linted %d times (named by the directory and the config): want once\n%s", n, out)
	}
	// A broken configuration is an error naming the file and key.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "kp.yaml"), []byte("server:\n  adr: x\nroutes: [nope/*.yaml]\n"), 0o644)
	out, err = runCmd(t, newLintCmd(), dir)
	var ee exitError
	if !errors.As(err, &ee) || !strings.Contains(out, `unknown key "adr"`) {
		t.Fatalf("broken config: %v\n%s", err, out)
	}
}

// `koppelpoort lint` with no arguments in a folder without routes says where it looked (defect 8).
func TestLintNoArgumentsNoRoutes(t *testing.T) {
	t.Chdir(t.TempDir())
	_, err := runCmd(t, newLintCmd())
	if err == nil || strings.Contains(err.Error(), "[]") || !strings.Contains(err.Error(), "in the current directory") {
		t.Fatalf("got %v", err)
	}
}

// forget-sent removes the skip_unchanged hashes of one route (or one of its outputs) and nothing else; a
// dry run only counts.
func TestForgetSentCmd(t *testing.T) {
	dsn := filepath.Join(t.TempDir(), "kp.db")
	st, err := store.Open(context.Background(), store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	put := func(route, output, key string) {
		if err := st.Update(context.Background(), func(tx *store.Tx) error {
			return tx.PutSentHash(context.Background(), route, output, key, "h-"+key, 1)
		}); err != nil {
			t.Fatal(err)
		}
	}
	count := func(route string) int {
		var n int
		if err := st.View(context.Background(), func(tx *store.Tx) (err error) {
			n, err = tx.SentHashes(context.Background(), route, "")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	put("epd-patients", "koppeltaal", "1001")
	put("epd-patients", "koppeltaal", "1004")
	put("epd-patients", "archive", "1001")
	put("epd-careplans", "koppeltaal", "1001")

	if _, err := runCmd(t, newForgetSentCmd(), "--dsn", dsn); err == nil || !strings.Contains(err.Error(), "--route") {
		t.Fatalf("without --route: %v", err)
	}
	out, err := runCmd(t, newForgetSentCmd(), "--dsn", dsn, "--route", "epd-patients")
	if err != nil || !strings.Contains(out, "dry run: 3 sent hashes of route epd-patients would be forgotten") || count("epd-patients") != 3 {
		t.Fatalf("dry run: %v, %d left\n%s", err, count("epd-patients"), out)
	}
	out, err = runCmd(t, newForgetSentCmd(), "--dsn", dsn, "--route", "epd-patients", "--output", "archive", "--yes")
	if err != nil || !strings.Contains(out, "forgot 1 sent hashes of route epd-patients, output archive") || count("epd-patients") != 2 {
		t.Fatalf("--output archive: %v, %d left\n%s", err, count("epd-patients"), out)
	}
	out, err = runCmd(t, newForgetSentCmd(), "--dsn", dsn, "--route", "epd-patients", "--yes")
	if err != nil || !strings.Contains(out, "forgot 2 sent hashes of route epd-patients:") || count("epd-patients") != 0 {
		t.Fatalf("--yes: %v, %d left\n%s", err, count("epd-patients"), out)
	}
	if count("epd-careplans") != 1 {
		t.Fatal("another route's hashes were forgotten too")
	}
	out, _ = runCmd(t, newForgetSentCmd(), "--dsn", dsn, "--route", "epd-patients", "--yes")
	if !strings.Contains(out, "no sent hashes kept for route epd-patients in SQLite "+dsn) {
		t.Fatalf("nothing left: %s", out)
	}
	missing := filepath.Join(t.TempDir(), "none.db")
	if _, err := runCmd(t, newForgetSentCmd(), "--dsn", missing, "--route", "epd-patients", "--yes"); err == nil ||
		!strings.Contains(err.Error(), "no store there") {
		t.Fatalf("on a store that is not there: %v", err)
	}
	if _, err := os.Stat(missing); err == nil {
		t.Fatal("forget-sent created a database")
	}
}

// lint of a directory skips YAML that is no route and no configuration (Prometheus rules, load scenarios: a
// checkout's root gave 6 files with errors), saying so, and still lints a route with a misspelt key; a file
// named on the command line is linted whatever it looks like.
func TestLintDirectorySkipsOtherYAML(t *testing.T) {
	dir := t.TempDir()
	route := must(os.ReadFile("../../routes/testdata/patients.yaml"))
	os.WriteFile(filepath.Join(dir, "patients.yaml"), route, 0o644)
	os.WriteFile(filepath.Join(dir, "alerts.yaml"), []byte("groups:\n  - name: koppelpoort\n    rules: []\n"), 0o644)
	out, err := runCmd(t, newLintCmd(), dir)
	if err != nil || !strings.Contains(out, "alerts.yaml: skipped (no route keys") || !strings.Contains(out, "patients.yaml: ok") {
		t.Fatalf("lint %s: %v\n%s", dir, err, out)
	}
	if out, err := runCmd(t, newLintCmd(), filepath.Join(dir, "alerts.yaml")); err == nil || !strings.Contains(out, `unknown key "groups"`) {
		t.Fatalf("lint of the file named: %v\n%s", err, out)
	}
	os.WriteFile(filepath.Join(dir, "typo.yaml"), bytes.Replace(route, []byte("outputs:"), []byte("outptus:"), 1), 0o644)
	if out, err := runCmd(t, newLintCmd(), dir); err == nil || !strings.Contains(out, `unknown key "outptus"`) {
		t.Fatalf("a route with a misspelt key was not linted: %v\n%s", err, out)
	}
}

// Every problem lint prints reads once, `file:line:col: error: message` (with the caret and the "did you
// mean"), or `file: error: message` where no position is known (a value checked after decoding): a broken
// configuration printed `kp.yaml: error: kp.yaml:2:3: error: …`, and its second invalid value on a line
// naming no file. Several files with several errors each.
func TestLintErrorsReadOnce(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "kp.yaml"), []byte("server:\n  adr: x\nstore:\n  dns: y\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "values.yaml"), []byte("log:\n  level: loud\n  format: xml\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "route.yaml"), []byte("name: r\ninput:\n  tyep: file\n"), 0o644)
	kp, values, route := filepath.Join(dir, "kp.yaml"), filepath.Join(dir, "values.yaml"), filepath.Join(dir, "route.yaml")
	lint := newLintCmd()
	lint.SilenceUsage, lint.SilenceErrors = true, true // as under the root command
	out, err := runCmd(t, lint, kp, values, route)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 || !strings.Contains(out, "3 of 3 files have errors") {
		t.Fatalf("want exit 1 for 3 of 3 files: %v\n%s", err, out)
	}
	want := kp + `:2:3: error: unknown key "adr" in server (did you mean "addr"?) (allowed: addr, read_timeout, write_timeout, shutdown_timeout, public_url, trusted_proxies, failed_logins, metrics, tls)
      adr: x
      ^
` + kp + `:4:3: error: unknown key "dns" in store (did you mean "dsn"?) (allowed: dsn, sqlite_synchronous, busy_timeout, max_open_conns)
      dns: y
      ^
` + values + `: error: log.level: "loud" is not one of debug, info, warn, error
` + values + `: error: log.format: "xml" is not one of json, text
` + route + `:1:1: error: the route needs at least one output
    name: r
    ^
` + route + `:3:3: error: unknown inbound adapter "tyep" (available: file, http, koppeltaal, mllp, sql)
      tyep: file
      ^
3 of 3 files have errors
`
	if out != want {
		t.Errorf("lint printed\n%s\nwant\n%s", out, want)
	}
}

// A configuration whose routes pattern matches nothing is an error of that configuration, without an "ok" after
// it, and a file that cannot be read is named once.
func TestLintPatternMatchingNothingAndMissingFile(t *testing.T) {
	dir := t.TempDir()
	kp, missing := filepath.Join(dir, "kp.yaml"), filepath.Join(dir, "missing.yaml")
	os.WriteFile(kp, []byte("store:\n  dsn: ./x.db\nroutes: [\"nothing/*.yaml\"]\n"), 0o644)
	lint := newLintCmd()
	lint.SilenceUsage, lint.SilenceErrors = true, true
	out, err := runCmd(t, lint, kp, missing)
	var ee exitError
	if !errors.As(err, &ee) || ee.code != 1 {
		t.Fatalf("want exit 1: %v\n%s", err, out)
	}
	want := kp + `: error: routes: "` + filepath.Join(dir, "nothing/*.yaml") + `" matches no route file
` + missing + `: error: cannot open the file: no such file or directory
2 of 2 files have errors
`
	if out != want {
		t.Errorf("lint printed\n%s\nwant\n%s", out, want)
	}
}

// Package routetest runs route tests written as data: YAML files (`*_test.yaml`) that feed records (inline or
// from files read by the route's own input adapter) through a route, with outputs replaced by capture, and
// compare what happened — deliveries with their fields and Koppeltaal messages, drops, dead letters, bad
// rows — with what the file expects. `koppelpoort test` is its command line.
package routetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/routes"
)

// File is one route test file.
type File struct {
	// Route is the route file under test, relative to the test file.
	Route string `yaml:"route"`
	Tests []Case `yaml:"tests"`
}

// Case is one named test.
type Case struct {
	Name  string `yaml:"name"`
	Input Input  `yaml:"input"`
	// Expect lists, in order, what must happen to each input record.
	Expect []Expectation `yaml:"expect"`
	// BadRows are the lines an input file must report as unreadable.
	BadRows []int `yaml:"bad_rows"`
}

// Input gives records inline or as a file that the route's input adapter decodes.
type Input struct {
	Records []map[string]any  `yaml:"records"`
	File    string            `yaml:"file"`
	Meta    map[string]string `yaml:"meta"`
}

// Expectation is what must happen to one record.
type Expectation struct {
	Outcome string `yaml:"outcome"`
	// Key, when set, must equal the record key.
	Key string `yaml:"key"`
	// Reason must equal the drop/dead-letter reason; ReasonContains must be part of it.
	Reason         string `yaml:"reason"`
	ReasonContains string `yaml:"reason_contains"`
	// Deliveries must match the deliveries one to one, in order (fields are matched as subsets).
	Deliveries []DeliveryExpectation `yaml:"deliveries"`
}

// DeliveryExpectation is one expected delivery.
type DeliveryExpectation struct {
	Output     string         `yaml:"output"`
	Fields     map[string]any `yaml:"fields"`
	Koppeltaal map[string]any `yaml:"koppeltaal"`
}

// CaseResult is the outcome of one test case.
type CaseResult struct {
	File, Name string
	// Failures are readable differences; empty means the case passed.
	Failures []string
	// Actual is the actual outcome as YAML, shown with failures.
	Actual string
}

// Passed reports whether the case passed.
func (c CaseResult) Passed() bool { return len(c.Failures) == 0 }

// FindFiles returns the route test files under dir (recursively), sorted.
func FindFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && routes.IsTestFile(d.Name()) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// RunFile runs every case in one test file. The error is for a test file or route that cannot be loaded.
func RunFile(path string) ([]CaseResult, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read route test: %w", err)
	}
	// Test data is taken as written: no ${ENV} substitution, so a route test means the same everywhere.
	var f File
	if err := strictyaml.Decode(path, src, nil, &f); err != nil {
		return nil, err
	}
	if f.Route == "" {
		return nil, fmt.Errorf("%s: `route:` (the route file under test) is missing", path)
	}
	dir := filepath.Dir(path)
	routePath := f.Route
	if !filepath.IsAbs(routePath) {
		routePath = filepath.Join(dir, routePath)
	}
	r, err := routes.LoadFile(routePath)
	if err != nil {
		return nil, err
	}
	if len(f.Tests) == 0 {
		return nil, fmt.Errorf("%s: no tests", path)
	}
	var out []CaseResult
	for i, c := range f.Tests {
		name := c.Name
		if name == "" {
			name = fmt.Sprintf("test %d", i+1)
		}
		out = append(out, runCase(path, dir, name, r, c))
	}
	return out, nil
}

func runCase(path, dir, name string, r *routes.Route, c Case) CaseResult {
	res := CaseResult{File: path, Name: name}
	fail := func(format string, args ...any) { res.Failures = append(res.Failures, fmt.Sprintf(format, args...)) }
	recs, badLines, err := inputRecords(dir, r, c.Input)
	if err != nil {
		fail("input: %v", err)
		return res
	}
	if !equalInts(badLines, c.BadRows) {
		fail("bad rows: got lines %v, want %v", badLines, c.BadRows)
	}
	var actual []map[string]any
	for i, rec := range recs {
		got := r.Process(rec)
		actual = append(actual, describe(got))
		if i >= len(c.Expect) {
			fail("record %d (%s): %s, but the test expects only %d records", i+1, got.Key, got.Outcome, len(c.Expect))
			continue
		}
		compare(fmt.Sprintf("record %d (%s)", i+1, got.Key), c.Expect[i], got, fail)
	}
	if len(c.Expect) > len(recs) {
		fail("the test expects %d records, the input has %d", len(c.Expect), len(recs))
	}
	if !res.Passed() {
		b, _ := yaml.Marshal(actual)
		res.Actual = string(b)
	}
	return res
}

func inputRecords(dir string, r *routes.Route, in Input) ([]adapters.Record, []int, error) {
	var recs []adapters.Record
	for i, fields := range in.Records {
		meta := map[string]string{"adapter": "test"}
		for k, v := range in.Meta {
			meta[k] = v
		}
		f, _ := normalize(fields).(map[string]any)
		if s, ok := r.Input.Adapter.(adapters.Shaper); ok && s.Shape().StringValues {
			// CSV-like inputs deliver strings; YAML would make `bsn: 111222333` a number.
			for k, v := range f {
				if v != nil {
					f[k] = scalarText(v)
				}
			}
		}
		recs = append(recs, adapters.Record{Key: fmt.Sprintf("record-%d", i+1), Fields: f, Meta: meta})
	}
	if in.File == "" {
		if len(recs) == 0 {
			return nil, nil, errors.New("no records and no file")
		}
		return recs, nil, nil
	}
	p := in.File
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, nil, err
	}
	dec, ok := r.Input.Adapter.(FileDecoder)
	if !ok {
		return nil, nil, fmt.Errorf("the route's input adapter %q does not read files; give records inline", r.Input.Registration.Name())
	}
	fileRecs, bad, err := dec.DecodeFileLines(filepath.Base(p), data)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", in.File, err)
	}
	return append(recs, fileRecs...), bad, nil
}

// FileDecoder is implemented by inbound adapters whose records come from files (file, http with CSV).
type FileDecoder interface {
	// DecodeFileLines decodes a file and returns its records and the line numbers of unreadable rows.
	DecodeFileLines(name string, data []byte) ([]adapters.Record, []int, error)
}

func describe(r routes.Result) map[string]any {
	m := map[string]any{"outcome": string(r.Outcome), "key": r.Key}
	if r.Reason != "" {
		m["reason"] = r.Reason
	}
	var ds []any
	for _, d := range r.Deliveries {
		dm := map[string]any{"output": d.Output, "fields": normalize(d.Fields)}
		if d.Koppeltaal != nil {
			dm["koppeltaal"] = koppeltaalMap(d.Koppeltaal)
		}
		ds = append(ds, dm)
	}
	if len(ds) > 0 {
		m["deliveries"] = ds
	}
	return m
}

func koppeltaalMap(k *adapters.KoppeltaalMessage) map[string]any {
	var res []any
	for _, r := range k.Resources {
		res = append(res, map[string]any{"type": r.Type, "id": r.ID, "fields": normalize(r.Body)})
	}
	m := map[string]any{"event": k.Event, "resources": res}
	if k.Patient != "" {
		m["patient"] = k.Patient
	}
	return m
}

func compare(where string, want Expectation, got routes.Result, fail func(string, ...any)) {
	if want.Outcome == "" {
		want.Outcome = string(routes.Routed)
	}
	if want.Outcome != string(got.Outcome) {
		extra := ""
		if got.Reason != "" {
			extra = fmt.Sprintf(" (reason: %s)", got.Reason)
		}
		fail("%s: outcome %s%s, want %s", where, got.Outcome, extra, want.Outcome)
		return
	}
	if want.Key != "" && want.Key != got.Key {
		fail("%s: key %q, want %q", where, got.Key, want.Key)
	}
	if want.Reason != "" && want.Reason != got.Reason {
		fail("%s: reason %q, want %q", where, got.Reason, want.Reason)
	}
	if want.ReasonContains != "" && !strings.Contains(got.Reason, want.ReasonContains) {
		fail("%s: reason %q does not contain %q", where, got.Reason, want.ReasonContains)
	}
	if got.Outcome != routes.Routed {
		return
	}
	if want.Deliveries == nil {
		return
	}
	if len(want.Deliveries) != len(got.Deliveries) {
		var outs []string
		for _, d := range got.Deliveries {
			outs = append(outs, d.Output)
		}
		fail("%s: %d deliveries (to %s), want %d", where, len(got.Deliveries), strings.Join(outs, ", "), len(want.Deliveries))
		return
	}
	for i, wd := range want.Deliveries {
		gd := got.Deliveries[i]
		at := fmt.Sprintf("%s: delivery %d", where, i+1)
		if wd.Output != "" && wd.Output != gd.Output {
			fail("%s: output %q, want %q", at, gd.Output, wd.Output)
		}
		if wd.Fields != nil {
			diff(at+": fields", normalize(wd.Fields), normalize(gd.Fields), fail)
		}
		if wd.Koppeltaal != nil {
			if gd.Koppeltaal == nil {
				fail("%s: no Koppeltaal message, want one", at)
				continue
			}
			diff(at+": koppeltaal", normalize(wd.Koppeltaal), normalize(koppeltaalMap(gd.Koppeltaal)), fail)
		}
	}
}

// diff compares want (a subset) with got and reports each difference by path. Objects match when every
// expected key matches; lists must have the same length; scalars compare by their text, so `id: 1` in YAML
// matches the string "1".
func diff(path string, want, got any, fail func(string, ...any)) {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			fail("%s: got %s, want an object", path, show(got))
			return
		}
		for _, k := range sortedKeys(w) {
			gv, ok := g[k]
			if !ok {
				if w[k] != nil {
					fail("%s.%s: missing, want %s", path, k, show(w[k]))
				}
				continue
			}
			diff(path+"."+k, w[k], gv, fail)
		}
	case []any:
		g, ok := got.([]any)
		if !ok {
			fail("%s: got %s, want a list", path, show(got))
			return
		}
		if len(g) != len(w) {
			fail("%s: %d items, want %d: got %s", path, len(g), len(w), show(got))
			return
		}
		for i := range w {
			diff(fmt.Sprintf("%s[%d]", path, i), w[i], g[i], fail)
		}
	default:
		if got == nil && want == nil {
			return
		}
		if _, isObj := got.(map[string]any); isObj || fmt.Sprint(want) != fmt.Sprint(got) {
			fail("%s: got %s, want %s", path, show(got), show(want))
		} else if _, isList := got.([]any); isList {
			fail("%s: got %s, want %s", path, show(got), show(want))
		}
	}
}

func show(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// normalize turns any value into JSON-shaped data (map[string]any, []any, scalars).
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		return v
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// scalarText writes numbers without exponents (a BSN read as a YAML number stays 9 digits).
func scalarText(v any) string {
	if f, ok := v.(float64); ok {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return fmt.Sprint(v)
}

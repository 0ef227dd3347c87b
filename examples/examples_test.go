// Package examples_test checks every example: its routes lint clean and its route tests pass; the
// end-to-end tests run the examples against this repository's Koppeltaal server.
package examples_test

import (
	"os"
	"strings"
	"testing"

	_ "github.com/koppelpoort/koppelpoort/adapters/all"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/routetest"
)

func exampleDirs(t *testing.T) []string {
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		if files, _ := routes.RouteFiles(e.Name()); len(files) > 0 {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		t.Fatal("no examples found")
	}
	return out
}

func TestExamplesLint(t *testing.T) {
	for _, d := range exampleDirs(t) {
		rs, err := routes.LoadDir(d)
		if err != nil {
			t.Errorf("%s:\n%v", d, err)
			continue
		}
		for _, r := range rs {
			if len(r.Warnings) > 0 {
				t.Errorf("%s: warnings:\n%v", r.File, r.Warnings)
			}
		}
	}
}

func TestExamplesRouteTests(t *testing.T) {
	for _, d := range exampleDirs(t) {
		files, err := routetest.FindFiles(d)
		if err != nil || len(files) == 0 {
			t.Errorf("%s: no route tests (%v)", d, err)
			continue
		}
		for _, f := range files {
			results, err := routetest.RunFile(f)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			for _, r := range results {
				if !r.Passed() {
					t.Errorf("%s / %s:\n%s\nactual:\n%s", f, r.Name, strings.Join(r.Failures, "\n"), r.Actual)
				}
			}
		}
	}
}

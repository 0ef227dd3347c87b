// Package examples_test checks every example: its routes lint clean and its route tests pass; the
// end-to-end tests run the examples against this repository's Koppeltaal server.
package examples_test

import (
	"os"
	"os/exec"
	"path/filepath"
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
		if files, _ := routes.MatchFiles(filepath.Join(e.Name(), "*.yaml")); len(files) > 0 {
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
		rs, err := routes.LoadFiles(filepath.Join(d, "*.yaml"))
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

// Running the examples must not leave untracked files in the checkout (issue 14, defect 12): what the
// routes create at run time is ignored by git.
func TestExampleRuntimeFilesIgnored(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git not installed")
	}
	if err := exec.Command("git", "rev-parse", "--is-inside-work-tree").Run(); err != nil {
		t.Skip("not a git checkout")
	}
	for _, p := range []string{
		"epd-to-koppeltaal/inbox/patienten_20261127.csv",
		"epd-to-koppeltaal/inbox/done/patienten_20261127.csv",
		"epd-to-koppeltaal/inbox/error/patienten_broken.csv.error.txt",
		"koppeltaal-to-epd/archive/activity-status.ndjson",
		"koppeltaal-to-epd/epd.db",
		"koppeltaal-to-epd/epd.db-wal",
	} {
		if err := exec.Command("git", "check-ignore", "-q", p).Run(); err != nil {
			t.Errorf("%s is not ignored by git: running the examples leaves it untracked", p)
		}
	}
}

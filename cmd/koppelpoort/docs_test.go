package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// markdownFiles lists the repository's Markdown files (the binary's tests run in cmd/koppelpoort).
func markdownFiles(t *testing.T) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir("../..", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != "../.." || d.Name() == "testdata" || d.Name() == "koppelpoort-data") {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var mdLink = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// Every relative link in the docs points at a file that exists (issue 14, defect 2: README and
// docs/configuration.md linked a routes/README.md that did not exist).
func TestDocsLinksExist(t *testing.T) {
	for _, f := range markdownFiles(t) {
		src, _ := os.ReadFile(f)
		for _, m := range mdLink.FindAllStringSubmatch(string(src), -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(f), target)); err != nil {
				t.Errorf("%s links %s, which does not exist", f, m[1])
			}
		}
	}
}

var configFlag = regexp.MustCompile(`--config\s+([^\s]+\.ya?ml)`)

// Every command in a code block that names a --config file names one that exists (defect 19: the README's
// PostgreSQL command used a koppelpoort.yaml nobody had). Placeholders for the reader's own file start "my-".
func TestDocsCommandsNameExistingConfigs(t *testing.T) {
	for _, f := range markdownFiles(t) {
		src, _ := os.ReadFile(f)
		inCode := false
		for i, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(strings.TrimSpace(line), "```") {
				inCode = !inCode
				continue
			}
			if !inCode {
				continue
			}
			for _, m := range configFlag.FindAllStringSubmatch(line, -1) {
				if strings.HasPrefix(filepath.Base(m[1]), "my-") {
					continue
				}
				// Commands are run from the repository root.
				if _, err := os.Stat(filepath.Join("../..", m[1])); err != nil {
					t.Errorf("%s:%d: --config %s does not exist (commands run from the repository root)", f, i+1, m[1])
				}
			}
		}
	}
}

// The diagnostic docs/configuration.md shows is what `koppelpoort lint koppelpoort.yaml` prints for that
// misspelt section, to the letter: lint checked a configuration with a misspelt section as a route
// (unknown key "server" in the route …), and printed a configuration's diagnostics after a second prefix.
func TestDocsLintOutputAsShown(t *testing.T) {
	doc := string(must(os.ReadFile("../../docs/configuration.md")))
	_, block, _ := strings.Cut(doc, "  ```\n  koppelpoort.yaml:3:1: error: unknown key \"stroe\"")
	block, _, ok := strings.Cut(block, "  ```\n")
	if !ok {
		t.Fatal("docs/configuration.md no longer shows the stroe diagnostic")
	}
	want := "koppelpoort.yaml:3:1: error: unknown key \"stroe\""
	for _, line := range strings.SplitAfter(block, "\n") {
		want += strings.TrimPrefix(line, "  ") // the block is indented under its list item
	}
	t.Chdir(t.TempDir())
	os.WriteFile("koppelpoort.yaml", []byte("server:\n  addr: 127.0.0.1:8080\nstroe:\n  dsn: kp.db\n"), 0o644)
	lint := newLintCmd()
	lint.SilenceUsage, lint.SilenceErrors = true, true
	out, _ := runCmd(t, lint, "koppelpoort.yaml")
	if !strings.HasPrefix(out, want) {
		t.Errorf("lint printed\n%s\nthe docs show\n%s", out, want)
	}
}

package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	_ "github.com/koppelpoort/koppelpoort/adapters/all" // register the built-in adapters
	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/routes"
)

// newLintCmd checks route files: strict YAML keys, adapter settings against their specs, expressions (with
// file:line:col and a caret), unknown functions and unreachable rules. A Koppelpoort configuration file among
// them is checked as a configuration, and the routes it names are linted too.
func newLintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lint [route files, config files or directories...]",
		Short: "Check route files and print every problem with file:line:col",
		Long: `lint loads each route file the way serve does and prints every problem it finds.
A directory is searched recursively for *.yaml files (route tests, *_test.yaml, testdata/ folders and
YAML without a route's keys are skipped, each saying so); a Koppelpoort configuration file (server:, store:, koppeltaal:, routes:) is checked as a
configuration and the route files its routes: entries name are linted with it.
With no arguments it checks the current directory. Exit status 1 when any file has an error.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			found := map[string]bool{} // found in a directory, not named: other YAML there is skipped
			files, err := expandArgs(args, func(dir string) ([]string, error) {
				fs, err := lintFiles(dir)
				for _, f := range fs {
					found[filepath.Clean(f)] = true
				}
				return fs, err
			})
			if err != nil {
				return err
			}
			if len(files) == 0 {
				if len(args) == 0 {
					return fmt.Errorf("no route files (*.yaml) in the current directory; name route files or directories, e.g. koppelpoort lint routes/")
				}
				return fmt.Errorf("no route files (*.yaml) in %s", strings.Join(args, ", "))
			}
			l := linter{out: cmd.OutOrStdout(), seen: map[string]bool{}, found: found}
			for _, f := range files {
				l.file(f)
			}
			if l.failed > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d of %d files have errors\n", l.failed, l.checked)
				return exitError{code: 1}
			}
			return nil
		},
	}
}

// linter prints one verdict per file and remembers what it checked, so a route named both on the command
// line and by a configuration file is linted once.
type linter struct {
	out             io.Writer
	seen, found     map[string]bool
	failed, checked int
}

func (l *linter) file(f string) {
	f = filepath.Clean(f)
	if l.seen[f] {
		return
	}
	l.seen[f] = true
	if routes.IsTestFile(filepath.Base(f)) {
		// A glob like routes/*.yaml also matches the route tests next to the routes.
		fmt.Fprintf(l.out, "%s: skipped (a route test file: run it with koppelpoort test)\n", f)
		return
	}
	src, err := os.ReadFile(f)
	if err == nil && l.found[f] && !config.IsConfigFile(src) && !routes.LooksLikeRoute(src) {
		// Prometheus rules, load scenarios and the like next to the routes (lint in a checkout's root).
		fmt.Fprintf(l.out, "%s: skipped (no route keys such as input: or outputs:; name the file to lint it anyway)\n", f)
		return
	}
	l.checked++
	if err == nil && config.IsConfigFile(src) {
		l.config(f)
		return
	}
	r, err := routes.LoadFile(f)
	if err != nil {
		l.fail(f, err)
		return
	}
	if len(r.Warnings) > 0 {
		fmt.Fprintln(l.out, r.Warnings.Error())
	}
	fmt.Fprintf(l.out, "%s: ok (route %s)\n", f, r.Name)
}

// fail prints f's error: diagnostics as they are (each names its file and position already), anything else
// (a file that cannot be read) as "f: error: …".
func (l *linter) fail(f string, err error) {
	l.failed++
	var ds strictyaml.Diagnostics
	if errors.As(err, &ds) {
		fmt.Fprintln(l.out, ds.Error())
		return
	}
	// A file that cannot be read: its name once ("f: error: cannot open the file: no such file or directory").
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path == f {
		fmt.Fprintf(l.out, "%s: error: cannot %s the file: %v\n", f, pe.Op, pe.Err)
		return
	}
	fmt.Fprintf(l.out, "%s: error: %v\n", f, err)
}

// config checks a configuration file as serve reads it, then lints the routes it names.
func (l *linter) config(f string) {
	cfg, err := config.Load(f, os.Getenv)
	if err == nil {
		err = cfg.Validate()
	}
	if err != nil {
		l.fail(f, err)
		return
	}
	files, diags := routes.MatchFiles(cfg.RoutePatterns()...)
	if len(diags) > 0 {
		// The pattern is in f: that is the file to fix (serve refuses to start on it too).
		l.failed++
		for _, d := range diags {
			fmt.Fprintf(l.out, "%s: error: routes: %q matches no route file\n", f, d.File)
		}
	} else {
		fmt.Fprintf(l.out, "%s: ok (Koppelpoort configuration; routes: %d files)\n", f, len(files))
	}
	for _, rf := range files {
		l.file(rf)
	}
}

// lintFiles finds the *.yaml files under dir, recursively, skipping testdata/ and hidden folders.
func lintFiles(dir string) ([]string, error) {
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != dir && (name == "testdata" || strings.HasPrefix(name, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if (strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) && !routes.IsTestFile(name) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out, err
}

// expandArgs turns command-line arguments into files: a directory becomes the
// files find returns for it, anything else is taken as a file; no arguments
// means the current directory.
func expandArgs(args []string, find func(dir string) ([]string, error)) ([]string, error) {
	if len(args) == 0 {
		args = []string{"."}
	}
	var files []string
	for _, a := range args {
		if st, err := os.Stat(a); err == nil && st.IsDir() {
			found, err := find(a)
			if err != nil {
				return nil, err
			}
			files = append(files, found...)
			continue
		}
		files = append(files, a)
	}
	return files, nil
}

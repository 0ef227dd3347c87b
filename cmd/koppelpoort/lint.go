package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	_ "github.com/koppelpoort/koppelpoort/adapters/all" // register the built-in adapters
	"github.com/koppelpoort/koppelpoort/routes"
)

// newLintCmd checks route files: strict YAML keys, adapter settings against their specs, expressions (with
// file:line:col and a caret), unknown functions and unreachable rules.
func newLintCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "lint [route files or directories...]",
		Short: "Check route files and print every problem with file:line:col",
		Long:  "lint loads each route file the way serve does and prints every problem it finds.\nWith no arguments it checks the *.yaml files in the current directory. Exit status 1 when any route has an error.",
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := expandArgs(args, routes.RouteFiles)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no route files found in %v", args)
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, f := range files {
				if strings.HasSuffix(f, "_test.yaml") || strings.HasSuffix(f, "_test.yml") {
					// A glob like routes/*.yaml also matches the route tests next to the routes.
					fmt.Fprintf(out, "%s: skipped (a route test file: run it with koppelpoort test)\n", filepath.Clean(f))
					continue
				}
				r, err := routes.LoadFile(f)
				var ds routes.Diagnostics
				switch {
				case errors.As(err, &ds):
					failed++
					fmt.Fprintln(out, ds.Error())
				case err != nil:
					failed++
					fmt.Fprintf(out, "%s: error: %v\n", f, err)
				default:
					if len(r.Warnings) > 0 {
						fmt.Fprintln(out, r.Warnings.Error())
					}
					fmt.Fprintf(out, "%s: ok (route %s)\n", filepath.Clean(f), r.Name)
				}
			}
			if failed > 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "%d of %d route files have errors\n", failed, len(files))
				return exitError{code: 1}
			}
			return nil
		},
	}
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

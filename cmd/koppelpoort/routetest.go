package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	_ "github.com/koppelpoort/koppelpoort/adapters/all" // register the built-in adapters
	"github.com/koppelpoort/koppelpoort/routes/routetest"
)

// newRouteTestCmd runs route tests written as data (*_test.yaml) with outputs replaced by capture.
func newRouteTestCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "test [dir or *_test.yaml files...]",
		Short: "Run route tests (*_test.yaml) and show a readable diff for each failure",
		Long:  "test finds *_test.yaml files (recursively in directories; default: the current directory),\nfeeds their input records through the route under test with outputs captured, and compares\ndeliveries, drops and dead letters with the expectations. Exit status 1 when any test fails.",
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := expandArgs(args, routetest.FindFiles)
			if err != nil {
				return err
			}
			if len(files) == 0 {
				return fmt.Errorf("no route tests (*_test.yaml) found in %v", args)
			}
			out := cmd.OutOrStdout()
			passed, failed := 0, 0
			for _, f := range files {
				results, err := routetest.RunFile(f)
				if err != nil {
					failed++
					fmt.Fprintf(out, "FAIL %s\n%v\n", f, err)
					continue
				}
				for _, r := range results {
					if r.Passed() {
						passed++
						if verbose {
							fmt.Fprintf(out, "ok   %s: %s\n", f, r.Name)
						}
						continue
					}
					failed++
					fmt.Fprintf(out, "FAIL %s: %s\n", f, r.Name)
					for _, line := range r.Failures {
						fmt.Fprintf(out, "    %s\n", line)
					}
					fmt.Fprintf(out, "  actual:\n    %s\n", strings.ReplaceAll(strings.TrimSpace(r.Actual), "\n", "\n    "))
				}
			}
			fmt.Fprintf(out, "%d passed, %d failed\n", passed, failed)
			if failed > 0 {
				return exitError{code: 1}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "list passing tests too")
	return cmd
}

// Command koppelpoort is the Koppelpoort binary: a Koppeltaal 1.3 server and an
// integration gateway for Dutch mental-health care.
//
//	koppelpoort serve [--config file]   run the server (embedded default: SQLite + demo domain)
//	koppelpoort version                 print the version
//
// Run `koppelpoort help` for every subcommand.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	root := newRootCmd()
	if err := root.Execute(); err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(ee.code)
		}
		// One clear line, no usage dump and no stack trace.
		fmt.Fprintf(os.Stderr, "koppelpoort: %v\n", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "koppelpoort",
		Short:         "Koppeltaal 1.3 server and integration gateway for GGZ",
		Long:          "Koppelpoort is a Koppeltaal 1.3.x server (mailbox, routing, claim/ack, versioning, SSO)\nand an integration gateway (routes, rules, expression transforms, adapters) in one binary.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newVersionCmd())
	root.AddCommand(extraCommands()...)
	return root
}

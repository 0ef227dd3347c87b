package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/adapters/all" // registers the built-in adapters
	"github.com/koppelpoort/koppelpoort/routes"
)

// newSchemaCmd prints the JSON Schema for route files (or the adapter reference as Markdown).
func newSchemaCmd() *cobra.Command {
	var markdown bool
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema for route files (for editors), or --markdown for the adapter reference",
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if markdown {
				fmt.Fprint(out, all.Reference()) // what adapters/README.md holds
				return nil
			}
			b, err := json.MarshalIndent(routes.JSONSchema(), "", "  ")
			if err != nil {
				return fmt.Errorf("encode schema: %w", err)
			}
			fmt.Fprintln(out, string(b))
			return nil
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the adapter settings reference as Markdown")
	return cmd
}

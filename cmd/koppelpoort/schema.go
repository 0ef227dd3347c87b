package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/adapters/all" // registers the built-in adapters
	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/routes"
)

// newSchemaCmd prints the JSON Schema for route files (or the adapter reference as Markdown).
func newSchemaCmd() *cobra.Command {
	var markdown, configFile bool
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print the JSON Schema for route files (for editors), --config for the configuration file, or --markdown for the adapter reference",
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			if markdown {
				fmt.Fprint(out, all.Reference()) // what adapters/README.md holds
				return nil
			}
			schema := routes.JSONSchema()
			if configFile {
				schema = config.JSONSchema()
			}
			b, err := json.MarshalIndent(schema, "", "  ")
			if err != nil {
				return fmt.Errorf("encode schema: %w", err)
			}
			fmt.Fprintln(out, string(b))
			return nil
		},
	}
	cmd.Flags().BoolVar(&markdown, "markdown", false, "print the adapter settings reference as Markdown")
	cmd.Flags().BoolVar(&configFile, "config", false, "print the JSON Schema of the configuration file (koppelpoort.yaml)")
	return cmd
}

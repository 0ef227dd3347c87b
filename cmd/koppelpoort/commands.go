package main

import "github.com/spf13/cobra"

// extraCommands lists the subcommands contributed by other parts of the
// program (route lint/test/schema/replay, load tool, admin), so main.go stays
// a short table of contents.
func extraCommands() []*cobra.Command {
	return []*cobra.Command{
		newLintCmd(),
		newRouteTestCmd(),
		newSchemaCmd(),
		newReplayCmd(),
		newForgetSentCmd(),
		newLoadCmd(),
		newAdminCmd(),
		newAuditCmd(),
		newHTTPLogCmd(),
		newRegressCmd(),
		newTestClientCmd(),
	}
}

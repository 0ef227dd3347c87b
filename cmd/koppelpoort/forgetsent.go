package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/store"
)

// newForgetSentCmd clears what change detection (a route's skip_unchanged) remembers, so the route's next
// records are sent again whether they changed or not: a full resend after a target lost its data, or to
// send everything through a changed target. Without --yes it only counts.
func newForgetSentCmd() *cobra.Command {
	var (
		f      serveFlags
		route  string
		output string
		yes    bool
	)
	cmd := &cobra.Command{
		Use:   "forget-sent --route NAME [--output NAME] [--yes]",
		Short: "Forget what skip_unchanged remembers for a route, so its next records are all sent again; a dry run unless --yes",
		Long: `A route with skip_unchanged: true keeps, per output and record key, a hash of what it last sent
(table route_sent_hashes) and sends a record again only when that changed. forget-sent removes those
hashes for one route (--output: for one of its outputs only): the next export, poll or webhook call then
sends every record again. It sends nothing itself; drop the export again (or wait for the next one).
It may run while 'koppelpoort serve' runs on the same store: the routes read the hashes from the store.
Without --yes it prints how many hashes it would forget and changes nothing.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if route == "" {
				return fmt.Errorf("say which route: --route NAME (its name: in the route file)")
			}
			_, st, err := openConfiguredStore(cmd.Context(), f, true)
			if err != nil {
				return err
			}
			defer st.Close()
			what := "route " + route
			if output != "" {
				what += ", output " + output
			}
			var n int
			if !yes {
				err = st.View(cmd.Context(), func(tx *store.Tx) error {
					n, err = tx.SentHashes(cmd.Context(), route, output)
					return err
				})
			} else {
				err = st.Update(cmd.Context(), func(tx *store.Tx) error {
					n, err = tx.ForgetSentHashes(cmd.Context(), route, output)
					return err
				})
			}
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			switch {
			case n == 0:
				fmt.Fprintf(out, "no sent hashes kept for %s in %s%s\n", what, st.Where(), embeddedDefaultNote(f))
			case !yes:
				fmt.Fprintf(out, "dry run: %d sent hashes of %s would be forgotten; run again with --yes to forget them\n", n, what)
			default:
				fmt.Fprintf(out, "forgot %d sent hashes of %s: its next records are all sent again\n", n, what)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); its store is used")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().StringVar(&route, "route", "", "the route (its name:) whose hashes to forget")
	cmd.Flags().StringVar(&output, "output", "", "only this output of the route (default: all its outputs)")
	cmd.Flags().BoolVar(&yes, "yes", false, "really forget (default: dry run)")
	return cmd
}

// embeddedDefaultNote says, when no flag, file or environment named a store, that the store looked in was
// the embedded default (issue 14, defect 3: a command silently used another database than serve's).
func embeddedDefaultNote(f serveFlags) string {
	if f.configPath == "" && f.dsn == "" && os.Getenv("KOPPELPOORT_DSN") == "" {
		return " (the embedded default; give --config FILE to use the store of your configuration)"
	}
	return ""
}

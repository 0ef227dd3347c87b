package main

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/routes/runtime"
)

// newReplayCmd lists dead letters and replays them (all, by route, by id). Without --yes it only shows what
// it would do.
func newReplayCmd() *cobra.Command {
	var (
		f     serveFlags
		route string
		ids   []string
		all   bool
		yes   bool
	)
	cmd := &cobra.Command{
		Use:   "replay (--all | --route NAME | --id ID...) [--yes]",
		Short: "Re-run dead-lettered records through their (fixed) routes; a dry run unless --yes",
		Long: `replay sends dead-lettered records through their routes again, with the routes as they are now.
Without --yes it prints what it would replay and changes nothing. A running 'koppelpoort serve'
on the same store picks the replayed records up.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !all && route == "" && len(ids) == 0 {
				return fmt.Errorf("say what to replay: --all, --route NAME or --id ID")
			}
			cfg, err := loadConfig(f, os.Getenv)
			if err != nil {
				return err
			}
			st, err := openStore(cmd.Context(), cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer st.Close()
			list, err := runtime.Replay(cmd.Context(), st, runtime.Filter{Route: route, IDs: ids}, !yes)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(list) == 0 {
				fmt.Fprintln(out, "no dead letters to replay")
				return nil
			}
			tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tROUTE\tSTAGE\tRECORD\tSINCE\tREASON")
			for _, d := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Route, d.Stage, d.RecordKey, d.CreatedAt.Format("2006-01-02 15:04"), oneLineReason(d.Reason))
			}
			tw.Flush()
			if !yes {
				fmt.Fprintf(out, "dry run: %d dead letters would be replayed; run again with --yes to replay them\n", len(list))
				return nil
			}
			fmt.Fprintf(out, "replayed %d dead letters\n", len(list))
			return nil
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); its store is used")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().StringVar(&route, "route", "", "replay the dead letters of this route")
	cmd.Flags().StringSliceVar(&ids, "id", nil, "replay these dead letters (repeatable)")
	cmd.Flags().BoolVar(&all, "all", false, "replay every dead letter")
	cmd.Flags().BoolVar(&yes, "yes", false, "really replay (default: dry run)")
	return cmd
}

func oneLineReason(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		return s[:97] + "..."
	}
	return s
}

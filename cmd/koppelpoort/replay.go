package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
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
Without --yes it prints what it would replay and changes nothing.

While 'koppelpoort serve' runs on the same store, replay asks that server to do it: the server
applies its route files as they are on disk first (a fix saved a moment ago counts), then runs the
records through its routes. Without a running server, the records are put back on their routes'
queues in the store and run when 'koppelpoort serve' starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !all && route == "" && len(ids) == 0 {
				return fmt.Errorf("say what to replay: --all, --route NAME or --id ID")
			}
			_, st, err := openConfiguredStore(cmd.Context(), f, true)
			if err != nil {
				return err
			}
			defer st.Close()
			list, err := runtime.Replay(cmd.Context(), st, runtime.Filter{Route: route, IDs: ids}, true)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(list) == 0 {
				// Say where it looked: without --config that is the embedded default, not the store a
				// configuration file names (issue 14, defect 3).
				fmt.Fprintf(out, "no dead letters to replay in %s%s\n", st.Where(), embeddedDefaultNote(f))
				return nil
			}
			if len(ids) > 0 {
				// Asked for by id: everything there is to know, the whole reason included.
				for _, d := range list {
					printDeadLetter(out, d)
				}
			} else {
				tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tROUTE\tSTAGE\tRECORD\tSINCE\tREASON")
				for _, d := range list {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Route, d.Stage, d.RecordKey, d.CreatedAt.Format("2006-01-02 15:04"), oneLineReason(d.Reason))
				}
				tw.Flush()
				fmt.Fprintln(out, "(replay --id ID shows a dead letter whole: its reason, route revision and record)")
			}
			if !yes {
				fmt.Fprintf(out, "dry run: %d dead letters would be replayed; run again with --yes to replay them\n", len(list))
				return nil
			}
			return replayNow(cmd.Context(), out, st, list)
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

// replayWait is how long replay waits for a running server to take its request.
var replayWait = 30 * time.Second

// replayNow replays list: through the running server when there is one (runtime.RequestReplay), else by
// putting the records back on their routes' topics.
func replayNow(ctx context.Context, out io.Writer, st *store.Store, list []runtime.DeadLetter) error {
	ids := make([]string, len(list))
	for i, d := range list {
		ids[i] = d.ID
	}
	holder, running, err := runtime.RequestReplay(ctx, st, ids, replayWait)
	if err != nil {
		return err
	}
	if running {
		fmt.Fprintf(out, "replayed %d dead letters through the running server (%s), on its routes as they are on disk now\n", len(list), holder)
		return nil
	}
	if _, err := runtime.Replay(ctx, st, runtime.Filter{IDs: ids}, false); err != nil {
		return err
	}
	fmt.Fprintf(out, "replayed %d dead letters: no server is running on %s, so the records wait on their routes' queues "+
		"and run when 'koppelpoort serve' starts\n", len(list), st.Where())
	return nil
}

// printDeadLetter writes one dead letter whole: what, where, when, why, and the record it holds.
func printDeadLetter(out io.Writer, d runtime.DeadLetter) {
	tw := tabwriter.NewWriter(out, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "dead letter\t%s\n", d.ID)
	fmt.Fprintf(tw, "route\t%s (revision %s)\n", d.Route, orDash(d.Revision))
	stage := d.Stage
	if d.Output != "" {
		stage += " (output " + d.Output + ")"
	}
	fmt.Fprintf(tw, "stage\t%s\n", stage)
	fmt.Fprintf(tw, "record key\t%s\n", d.RecordKey)
	fmt.Fprintf(tw, "since\t%s\n", d.CreatedAt.Format(time.RFC3339))
	fmt.Fprintf(tw, "attempts\t%d\n", d.Attempts)
	tw.Flush()
	fmt.Fprintf(out, "reason:\n  %s\n", strings.ReplaceAll(d.Reason, "\n", "\n  "))
	if len(d.History) > 0 {
		fmt.Fprintln(out, "attempts:")
		if d.Attempts > len(d.History) {
			fmt.Fprintf(out, "  (%d earlier attempts not kept)\n", d.Attempts-len(d.History))
		}
		for _, a := range d.History {
			fmt.Fprintf(out, "  %s  %s\n", a.At.Format(time.RFC3339), strings.ReplaceAll(a.Error, "\n", " "))
		}
	}
	rec, _ := json.MarshalIndent(d.Record, "  ", "  ")
	fmt.Fprintf(out, "record:\n  %s\n\n", rec)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func oneLineReason(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len(s) > 100 {
		return s[:97] + "..."
	}
	return s
}

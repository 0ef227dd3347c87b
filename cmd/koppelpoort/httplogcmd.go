package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/httplog"
)

// newHTTPLogCmd reads the HTTP request log as JSON lines, newest first.
func newHTTPLogCmd() *cobra.Command {
	var (
		f              serveFlags
		q              httplog.Filter
		from, to, stat string
		all            bool
	)
	cmd := &cobra.Command{
		Use:   "httplog [--from T] [--to T] [--caller NAME] [--status 4xx] [--path PREFIX] [--request-id ID]",
		Short: "Export the HTTP request log (IntegrationMessageLogs) as JSON lines, newest first",
		Long: `httplog writes the logged HTTP requests that match the filters to standard output, one JSON object
a line, newest first: method, path, query (secret values REDACTED), caller (instance, OAuth client or
administrator), status, duration, request id and source address; the bodies too with --bodies when
http_log.bodies kept them. --status takes a class (2xx, 4xx, 5xx) or "failed" (4xx and 5xx). Without
--all it stops after --limit entries and prints the cursor of the next page on standard error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if q.From, q.To, err = parseRange(from, to); err != nil {
				return err
			}
			if q.StatusClass, q.Failed, err = httplog.ParseStatus(stat); err != nil {
				return fmt.Errorf("--status: %w", err)
			}
			_, st, err := openConfiguredStore(cmd.Context(), f, true)
			if err != nil {
				return err
			}
			defer st.Close()
			enc := json.NewEncoder(cmd.OutOrStdout())
			n := 0
			for {
				page, next, err := httplog.Query(cmd.Context(), st, q)
				if err != nil {
					return err
				}
				for _, e := range page {
					if err := enc.Encode(e); err != nil {
						return err
					}
				}
				n += len(page)
				if next == "" || !all {
					fmt.Fprintf(cmd.ErrOrStderr(), "%d requests\n", n)
					if next != "" {
						fmt.Fprintf(cmd.ErrOrStderr(), "more: --cursor %s\n", next)
					}
					return nil
				}
				q.Cursor = next
			}
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); its store is used")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().StringVar(&from, "from", "", "only requests started at or after this time")
	cmd.Flags().StringVar(&to, "to", "", "only requests started before this time")
	cmd.Flags().StringVar(&q.Caller, "caller", "", "only requests of this caller (instance user name, OAuth client or administrator)")
	cmd.Flags().StringVar(&stat, "status", "", "only this status class: 2xx, 3xx, 4xx, 5xx, or failed")
	cmd.Flags().StringVar(&q.PathPrefix, "path", "", "only paths starting with this (e.g. /FHIR/Koppeltaal/MessageHeader)")
	cmd.Flags().StringVar(&q.RequestID, "request-id", "", "only the request with this id (its X-Request-Id)")
	cmd.Flags().StringVar(&q.Cursor, "cursor", "", "continue after the page that printed this cursor")
	cmd.Flags().IntVar(&q.Limit, "limit", 100, "entries a page (at most 1000)")
	cmd.Flags().BoolVar(&all, "all", false, "every matching entry, page after page")
	cmd.Flags().BoolVar(&q.Bodies, "bodies", false, "include the kept request and response bodies")
	return cmd
}

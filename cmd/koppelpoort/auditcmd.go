package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// newAuditCmd reads the audit trail: records by patient, actor, action and
// time range as JSON lines, and `audit verify` for the hash chain.
func newAuditCmd() *cobra.Command {
	var (
		f        serveFlags
		q        audit.Filter
		from, to string
	)
	cmd := &cobra.Command{
		Use:   "audit [--patient URL] [--actor NAME] [--action A] [--from T] [--to T]",
		Short: "Export the audit trail of access to patient data as JSON lines (NEN 7513)",
		Long: `audit writes the records of the audit trail that match the filters to standard output, one JSON
object a line, oldest first: who (actor: instance, application, domain, OAuth client, launch user and
patient of a Bearer token, source address, request id), what (action, result, status), whose data
(patient), which message or resource (object), and when (at). --from and --to take RFC 3339 times
or dates (2026-05-01). "audit verify" checks the hash chain.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var err error
			if q.From, q.To, err = parseRange(from, to); err != nil {
				return err
			}
			st, _, err := openAuditStore(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer st.Close()
			n, err := audit.Export(cmd.Context(), st, q, cmd.OutOrStdout())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "%d records\n", n)
			return nil
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); its store is used")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().StringVar(&q.Patient, "patient", "", "only records about this patient (its URL)")
	cmd.Flags().StringVar(&q.Actor, "actor", "", "only records of this actor (instance or administrator user name, or OAuth client)")
	cmd.Flags().StringVar(&q.Action, "action", "", "only this action: post, claim, read, search, ack, launch, authorize, token, storage-read, storage-write, storage-delete, admin")
	cmd.Flags().StringVar(&from, "from", "", "only records at or after this time")
	cmd.Flags().StringVar(&to, "to", "", "only records before this time")
	cmd.AddCommand(newAuditVerifyCmd())
	return cmd
}

func newAuditVerifyCmd() *cobra.Command {
	var (
		f      serveFlags
		maxLag time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit trail's hash chain; names the first changed, removed or moved record",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, rec, err := openAuditStore(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer st.Close()
			defer rec.Close()
			rp, err := rec.Verify(cmd.Context(), maxLag)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), rp.String())
			if !rp.OK() {
				return errors.New("audit trail is not intact")
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); its store and audit.key are used")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().DurationVar(&maxLag, "max-lag", time.Minute, "a record not sealed this long after it was written is reported")
	return cmd
}

func openAuditStore(ctx context.Context, f serveFlags) (*store.Store, *audit.Recorder, error) {
	cfg, st, err := openConfiguredStore(ctx, f, true) // verify on a new empty store would say intact
	if err != nil {
		return nil, nil, err
	}
	rec, err := audit.New(audit.Options{Store: st, Key: []byte(cfg.Audit.Key), RetentionDays: cfg.Audit.RetentionDays})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, rec, nil
}

// parseRange reads --from and --to.
func parseRange(from, to string) (time.Time, time.Time, error) {
	f, err := parseWhen("--from", from)
	if err != nil {
		return f, time.Time{}, err
	}
	t, err := parseWhen("--to", to)
	return f, t, err
}

func parseWhen(flag, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%s %q: want an RFC 3339 time (2026-05-01T12:00:00Z) or a date (2026-05-01)", flag, v)
}

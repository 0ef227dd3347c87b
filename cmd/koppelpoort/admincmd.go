package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/internal/config"
	"github.com/koppelpoort/koppelpoort/store"
)

// newAdminCmd groups the administrator commands that run on the server's
// machine against its store: the first system administrator and API tokens.
func newAdminCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Manage administrator accounts and API tokens in the store",
	}
	cmd.AddCommand(newCreateUserCmd(), newCreateTokenCmd())
	return cmd
}

// openAdminStore opens the store named by the flags/config, with the accounts service on it.
func openAdminStore(ctx context.Context, f serveFlags) (*store.Store, *admin.Accounts, error) {
	cfg, st, err := openConfiguredStore(ctx, f, false) // the first administrator comes before the first serve
	if err != nil {
		return nil, nil, err
	}
	acc, err := admin.New(admin.Options{Store: st, Config: cfg.Admin, Logger: newLogger(config.LogConfig{Level: "warn", Format: "text"}, os.Stderr)})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return st, acc, nil
}

// openConfiguredStore loads the configuration the flags name and opens its store (migrated). existing: only
// a store that is there (openExistingStore), for the commands that read what serve wrote.
func openConfiguredStore(ctx context.Context, f serveFlags, existing bool) (*config.Config, *store.Store, error) {
	cfg, err := loadConfig(f, os.Getenv)
	if err != nil {
		return nil, nil, err
	}
	var st *store.Store
	if existing {
		st, err = openExistingStore(ctx, cfg, f)
	} else {
		st, err = openStore(ctx, cfg, slog.New(slog.DiscardHandler))
	}
	if err != nil {
		return nil, nil, err
	}
	return cfg, st, nil
}

func newCreateUserCmd() *cobra.Command {
	var (
		f             serveFlags
		u             admin.NewUser
		passwordStdin bool
	)
	cmd := &cobra.Command{
		Use:   "create-user --username NAME --role system|domain|application [--domain D...] [--application A...]",
		Short: "Create an administrator (the first system administrator, for example)",
		Long: `create-user creates an administrator account in the store, managed through the console and the
Support API (accounts declared under admin.users in the configuration file are managed by the file).
The password is read from standard input with --password-stdin; otherwise a random one is generated
and printed once.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if passwordStdin {
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && err != io.EOF {
					return fmt.Errorf("read password: %w", err)
				}
				u.Password = strings.TrimRight(line, "\r\n")
			} else {
				u.Password = admin.GeneratePassword()
			}
			st, acc, err := openAdminStore(ctx, f)
			if err != nil {
				return err
			}
			defer st.Close()
			var created store.AdminUser
			err = st.Update(ctx, func(tx *store.Tx) error {
				var err error
				if created, err = acc.CreateUser(ctx, tx, u); err != nil {
					return err
				}
				p := &admin.Principal{User: store.AdminUser{Username: "(command line)"}, Via: "command line", Remote: "local"}
				return acc.Auditor().Record(ctx, tx, admin.Action{Principal: p, Verb: "create", Object: fmt.Sprintf("AdminUser/%d", created.ID), Detail: u.Username})
			})
			if err != nil {
				return fmt.Errorf("create administrator %q: %w", u.Username, err)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "created %s administrator %q (id %d)\n", created.Role, created.Username, created.ID)
			if !passwordStdin {
				fmt.Fprintf(out, "password: %s\n(shown once; log in at /console/ and change it there)\n", u.Password)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); its store is used")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().StringVar(&u.Username, "username", "", "login name (personal: actions are traced to it)")
	cmd.Flags().StringVar(&u.Name, "name", "", "full name")
	cmd.Flags().StringVar(&u.Email, "email", "", "e-mail address")
	cmd.Flags().StringVar(&u.Role, "role", admin.RoleSystem, "system, domain or application")
	cmd.Flags().StringSliceVar(&u.Domains, "domain", nil, "domain a domain administrator administers (repeatable)")
	cmd.Flags().StringSliceVar(&u.Applications, "application", nil, "application an application administrator administers (repeatable)")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	return cmd
}

func newCreateTokenCmd() *cobra.Command {
	var (
		f        serveFlags
		username string
		name     string
		lifetime time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create-token --username NAME [--name LABEL] [--lifetime 720h]",
		Short: "Issue an API token for an administrator (for scripts using the Support API)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, acc, err := openAdminStore(cmd.Context(), f)
			if err != nil {
				return err
			}
			defer st.Close()
			secret, k, err := acc.CreateTokenFor(cmd.Context(), username, name, lifetime)
			if err != nil {
				return fmt.Errorf("create token for %q: %w", username, err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s\n", secret)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %d for %q expires %s; send it as 'Authorization: Bearer <token>'\n",
				k.ID, username, time.UnixMicro(k.ExpiresAt).UTC().Format(time.RFC3339))
			return nil
		},
	}
	cmd.Flags().StringVarP(&f.configPath, "config", "c", "", "configuration file (YAML); its store is used")
	cmd.Flags().StringVar(&f.dsn, "dsn", "", "store: SQLite file path or postgres:// URL (env KOPPELPOORT_DSN)")
	cmd.Flags().StringVar(&username, "username", "", "administrator the token acts for")
	cmd.Flags().StringVar(&name, "name", "", "label to recognise the token by")
	cmd.Flags().DurationVar(&lifetime, "lifetime", 0, "lifetime (default admin.token_lifetime, 90 days)")
	return cmd
}

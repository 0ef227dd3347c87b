package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/store"
)

// `koppelpoort audit` exports the records of one patient as JSON lines, and
// `audit verify` passes on an intact trail and names the record someone changed.
func TestAuditCommands(t *testing.T) {
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "kp.db")
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := audit.New(audit.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"https://epd.example/Patient/1", "https://epd.example/Patient/2"} {
		rec.Record(ctx, audit.Event{Action: audit.ActionRead, Actor: audit.Actor{Kind: audit.KindInstance, Name: "game@demo"}, Patient: p})
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Seal(ctx); err != nil {
		t.Fatal(err)
	}
	rec.Close()
	run := func(args ...string) (string, error) {
		cmd := newAuditCmd()
		var out bytes.Buffer
		cmd.SetOut(&out)
		cmd.SetErr(&bytes.Buffer{})
		cmd.SetArgs(append(args, "--dsn", dsn))
		err := cmd.ExecuteContext(ctx)
		return out.String(), err
	}
	out, err := run("--patient", "https://epd.example/Patient/2")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"patient":"https://epd.example/Patient/2"`) || !strings.Contains(out, `"name":"game@demo"`) {
		t.Fatalf("export: %v\n%s", err, out)
	}
	if out, err := run("verify"); err != nil || !strings.Contains(out, "intact") {
		t.Fatalf("verify of an intact trail: %v\n%s", err, out)
	}
	var id int64
	if err := st.Update(ctx, func(tx *store.Tx) error {
		if err := tx.Get(ctx, &id, "SELECT id FROM audit_events ORDER BY id LIMIT 1 OFFSET 1"); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, "DROP TRIGGER audit_events_append_only"); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, "UPDATE audit_events SET actor = 'nobody' WHERE id = ?", id)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	out, err = run("verify")
	if err == nil || !strings.Contains(out, "BROKEN at position 2") || !strings.Contains(out, "record id "+strconv.FormatInt(id, 10)) {
		t.Fatalf("verify after a change: %v\n%s", err, out)
	}
	st.Close()
}

// audit verify (and the exports) on a store that is not there say so instead of creating an empty one and
// calling its chain intact: an auditor who forgot --config checked a new database.
func TestAuditOnMissingStoreSaysSo(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "none.db")
	for _, c := range []struct {
		name string
		cmd  *cobra.Command
		args []string
	}{{"audit verify", newAuditCmd(), []string{"verify", "--dsn", missing}}, {"audit", newAuditCmd(), []string{"--dsn", missing}},
		{"httplog", newHTTPLogCmd(), []string{"--dsn", missing}}} {
		out, err := runCmd(t, c.cmd, c.args...)
		if err == nil || !strings.Contains(err.Error(), "no store there") || strings.Contains(out, "intact") {
			t.Errorf("%s on a missing store: %v\n%s", c.name, err, out)
		}
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%s created %s", c.name, missing)
		}
	}
}

package routes_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "github.com/koppelpoort/koppelpoort/adapters/file"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/routes"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestLoadGood(t *testing.T) {
	r, err := routes.LoadFile("testdata/patients.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if r.Name != "epd-patients" || len(r.Rules) != 3 || len(r.Outputs) != 1 || r.Input.Registration.ID != "inbound.file" {
		t.Fatalf("unexpected route: %+v", r)
	}
	if len(r.Warnings) != 0 {
		t.Fatalf("warnings: %v", r.Warnings)
	}
}

// TestLintGolden checks the exact diagnostics (file:line:col, message, caret) for broken route files.
func TestLintGolden(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no bad route fixtures")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			_, err := routes.LoadFile(f)
			var ds strictyaml.Diagnostics
			if !errors.As(err, &ds) {
				t.Fatalf("want Diagnostics, got %v", err)
			}
			got := ds.Error() + "\n"
			golden := strings.TrimSuffix(f, ".yaml") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update)", err)
			}
			if got != string(want) {
				t.Errorf("diagnostics differ from %s:\n--- got\n%s\n--- want\n%s", golden, got, want)
			}
		})
	}
}

func TestLintWarnings(t *testing.T) {
	r, err := routes.LoadFile("testdata/warn/unused.yaml")
	if err != nil {
		t.Fatal(err)
	}
	got := r.Warnings.Error()
	for _, want := range []string{
		`unused.yaml:12:3: warning: transform "b" is not used by any rule`,
		`unused.yaml:17:5: warning: output "two" is not named by any rule`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("warnings %q lack %q", got, want)
		}
	}
}

// The default retries ride out a restart of the target (minutes), and lint warns about a policy that gives
// up within a minute (issue 14, defect 11: a record was dead-lettered after 5 tries in 8.2 s).
func TestRetryDefaultsRideOutARestart(t *testing.T) {
	r, err := routes.LoadFile("testdata/patients.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if total := r.Retry.Total(); total < 10*time.Minute || total > time.Hour {
		t.Errorf("default retries give up after %s, want between 10 minutes and an hour", total)
	}
	src := "name: r\ninput:\n  http: {path: /x, auth: none}\nretry: {max_attempts: 5, backoff: 500ms, max_backoff: 30s}\noutputs:\n  - name: o\n    file: {dir: ./o}\n"
	r, err = routes.Load("r.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(r.Warnings.Error(), "r.yaml:4:8: warning: retries give up after 7.5s of failing") {
		t.Errorf("warnings: %v", r.Warnings)
	}
}

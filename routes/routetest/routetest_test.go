package routetest_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	_ "github.com/koppelpoort/koppelpoort/adapters/file"
	"github.com/koppelpoort/koppelpoort/routes/routetest"
)

func TestRouteTestsPass(t *testing.T) {
	files, err := routetest.FindFiles("../testdata")
	if err != nil || len(files) == 0 {
		t.Fatalf("find: %v %v", files, err)
	}
	for _, f := range files {
		results, err := routetest.RunFile(f)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, r := range results {
			if !r.Passed() {
				t.Errorf("%s / %s:\n%s\nactual:\n%s", r.File, r.Name, strings.Join(r.Failures, "\n"), r.Actual)
			}
		}
	}
}

// TestRouteTestsFail makes sure a wrong expectation fails with a readable, path-based difference.
func TestRouteTestsFail(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.ReadFile("../testdata/patients.yaml")
	os.WriteFile(filepath.Join(dir, "patients.yaml"), src, 0o644)
	os.WriteFile(filepath.Join(dir, "p_test.yaml"), []byte(`route: patients.yaml
tests:
  - name: wrong birth date and outcome
    input:
      records:
        - {patientnummer: 1, bsn: 111222333, voornaam: A, tussenvoegsel: "", achternaam: B, geslacht: 1, geboortedatum: 03-02-1980, email: ""}
        - {patientnummer: 2, bsn: "", voornaam: A, tussenvoegsel: "", achternaam: B, geslacht: 1, geboortedatum: 03-02-1980, email: ""}
    expect:
      - deliveries:
          - koppeltaal:
              resources:
                - fields: {birthDate: "1980-03-02"}
      - outcome: routed
`), 0o644)
	results, err := routetest.RunFile(filepath.Join(dir, "p_test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(results[0].Failures, "\n")
	for _, want := range []string{
		`record 1 (1): delivery 1: koppeltaal.resources[0].fields.birthDate: got "1980-02-03", want "1980-03-02"`,
		`record 2 (2): outcome dropped (reason: geen BSN), want routed`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("failures %q\nlack %q", got, want)
		}
	}
}

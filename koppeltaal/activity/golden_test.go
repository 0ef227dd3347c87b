package activity_test

import (
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/internal/buildinfo"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// volatile are the parts of a published message that differ per run.
var volatile = []struct {
	re   *regexp.Regexp
	with string
}{
	{regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`), "UUID"},
	{regexp.MustCompile(`http://127\.0\.0\.1:\d+`), "http://SERVER"},
	{regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(:\d{3}\.\d{4}|Z|[+-]\d\d:\d\d)`), "TIME"},
	{regexp.MustCompile(`"` + regexp.QuoteMeta(buildinfo.Version()) + `"`), `"VERSION"`},
}

// TestPublishedMessageGolden pins the wire form (XML and JSON) of the
// server-generated CreateOrUpdateActivityDefinition message as a subscriber
// claims it. Run with -update to rewrite testdata/golden/.
func TestPublishedMessageGolden(t *testing.T) {
	b := storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")}
	e := newEnv(t, b)
	for name, f := range map[string]dstu1.Format{"createorupdateactivitydefinition.xml": dstu1.FormatXML, "createorupdateactivitydefinition.json": dstu1.FormatJSON} {
		r := e.do("GET", "/FHIR/Koppeltaal/MessageHeader/_search?_id=1", d1Portal, f, nil)
		if r.Status != 200 {
			t.Fatalf("read: %d %s", r.Status, r.Body)
		}
		got := r.Body
		for _, v := range volatile {
			got = v.re.ReplaceAll(got, []byte(v.with))
		}
		path := filepath.Join("testdata", "golden", name)
		if *update {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if string(want) != string(got) {
			t.Errorf("%s differs from the golden file (run with -update if the change is intended):\n%s", name, got)
		}
	}
}

// TestPublishedSourceIsTheOldServers: the source of a server-generated CreateOrUpdateActivityDefinition is
// the old server's, element for element, as in the recorded example (SPEC.md §3.7).
func TestPublishedSourceIsTheOldServers(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "createorupdateactivitydefinition-message-edge.xml"))
	if err != nil {
		t.Fatal(err)
	}
	example, err := dstu1.ParseBundle(raw, dstu1.FormatXML)
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, storetest.Backend{Name: "sqlite", DSN: filepath.Join(t.TempDir(), "kp.db")})
	for _, f := range []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON} {
		r := e.do("GET", "/FHIR/Koppeltaal/MessageHeader/_search?_id=1", d1Portal, f, nil)
		if r.Status != 200 {
			t.Fatalf("read: %d %s", r.Status, r.Body)
		}
		got, err := dstu1.ParseBundle(r.Body, f)
		if err != nil {
			t.Fatal(err)
		}
		if g, w := got.MessageHeader().Source(), example.MessageHeader().Source(); g != w {
			t.Errorf("%s: source = %+v, want the old server's %+v", f, g, w)
		}
	}
}

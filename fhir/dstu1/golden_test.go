package dstu1

import (
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// TestGolden pins the exact XML and JSON output for a few messages. Run with -update after an intended
// change of the output, and review the diff.
func TestGolden(t *testing.T) {
	sources := []string{
		"testdata/examples/createorupdatecareplan-request-vzvztest-careteam.xml",
		"testdata/examples/bv-step3-queued-message-getnextnewandclaim.xml",
		"testdata/clients/python-connector-03-post-mailbox.json",
		"testdata/examples/operationoutcome-409-version-conflict-to.xml",
		"testdata/examples/messageheader-put-processingstatus-success-soapui.repaired.xml",
	}
	for _, src := range sources {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		base := filepath.Base(src)
		base = base[:len(base)-len(filepath.Ext(base))]
		var xmlOut, jsonOut []byte
		if b, err := ParseBundle(data, Sniff(data)); err == nil {
			xmlOut, jsonOut = b.XML(), b.JSON()
		} else {
			r, err := ParseResource(data, Sniff(data))
			if err != nil {
				t.Fatalf("%s: %v", src, err)
			}
			xmlOut, jsonOut = r.XML(), r.JSON()
		}
		for ext, got := range map[string][]byte{".xml": xmlOut, ".json": jsonOut} {
			golden := filepath.Join("testdata", "golden", base+ext)
			if *update {
				if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run with -update to create)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s differs from %s (run with -update and review the diff)\n got: %.300s", src, golden, got)
			}
		}
	}
}

// TestGeneratedTableIsCurrent regenerates the schema table and compares it with the committed file, so a
// schema or generator change without `go generate` fails.
func TestGeneratedTableIsCurrent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the generator")
	}
	out := filepath.Join(t.TempDir(), "schema_gen.go")
	cmd := exec.Command("go", "run", "./internal/gen", "-schema", "schema", "-out", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generator: %v\n%s", err, msg)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("schema_gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("schema_gen.go is stale: run go generate ./fhir/dstu1")
	}
}

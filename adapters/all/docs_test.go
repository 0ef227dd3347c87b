package all

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite adapters/README.md")

// TestReferenceIsCurrent keeps adapters/README.md in step with the adapters' specs.
func TestReferenceIsCurrent(t *testing.T) {
	got := Reference()
	if *update {
		if err := os.WriteFile("../README.md", []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("../README.md")
	if err != nil || string(want) != got {
		t.Fatal("adapters/README.md is not the current adapter reference; run go test ./adapters/all -update")
	}
}

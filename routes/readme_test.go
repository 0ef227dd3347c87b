package routes_test

import (
	"os"
	"strings"
	"testing"

	_ "github.com/koppelpoort/koppelpoort/adapters/all"
	"github.com/koppelpoort/koppelpoort/routes"
)

// TestReadmeIsCurrent keeps the generated part of routes/README.md in step with the code.
func TestReadmeIsCurrent(t *testing.T) {
	const begin, end = "<!-- BEGIN GENERATED -->\n", "<!-- END GENERATED -->"
	src, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	head, rest, ok1 := strings.Cut(string(src), begin)
	_, tail, ok2 := strings.Cut(rest, end)
	if !ok1 || !ok2 {
		t.Fatal("routes/README.md lacks the generated-section markers")
	}
	want := head + begin + routes.Reference() + end + tail
	if *update {
		if err := os.WriteFile("README.md", []byte(want), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(src) != want {
		t.Fatal("routes/README.md is not current; run go test ./routes -run TestReadmeIsCurrent -update")
	}
}

package routes_test

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/adapters"
	_ "github.com/koppelpoort/koppelpoort/adapters/all"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/transforms"
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
	want := head + begin + reference() + end + tail
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

// Reference renders the generated part of routes/README.md from the code: the registered adapters, the
// expression functions and the Koppeltaal vocabulary, so the page cannot drift from what lint accepts.
func reference() string {
	var b strings.Builder
	b.WriteString("### Adapters\n\nSettings of each: [`../adapters/README.md`](../adapters/README.md).\n\n| id | what it does |\n|---|---|\n")
	for _, r := range adapters.List("") {
		fmt.Fprintf(&b, "| `%s` | %s |\n", r.ID, mdCell(r.Spec.Summary))
	}
	b.WriteString("\n### Functions\n\nBesides expr's built-ins (`trim`, `upper`, `lower`, `split`, `replace`, `filter`, `len`, `int`, ...):\n\n| function | what it does |\n|---|---|\n")
	for _, f := range transforms.Functions {
		fmt.Fprintf(&b, "| `%s` | %s |\n", f.Signature, mdCell(f.Doc))
	}
	fmt.Fprintf(&b, "\n### Koppeltaal\n\nEvents (`koppeltaal.event`): %s.\n\nResource types (`resources[].type`): %s.\n",
		codeList(koppeltaal.Events), codeList(dstu1.MessageResourceTypes))
	return b.String()
}

func mdCell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func codeList(xs []string) string {
	out := make([]string, len(xs))
	for i, x := range xs {
		out[i] = "`" + x + "`"
	}
	return strings.Join(out, ", ")
}

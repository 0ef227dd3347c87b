package routes

import (
	"fmt"
	"strings"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// Reference renders the generated part of routes/README.md from the code: the registered adapters, the
// expression functions and the Koppeltaal vocabulary, so the page cannot drift from what lint accepts.
func Reference() string {
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
		codeList(KoppeltaalEvents), codeList(KoppeltaalResourceTypes))
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

package all

import (
	"strings"

	"github.com/koppelpoort/koppelpoort/adapters"
)

// Reference renders the settings reference of every registered adapter as Markdown (adapters/README.md is
// this output; `koppelpoort schema --markdown` prints it too).
func Reference() string {
	var b strings.Builder
	b.WriteString("# Adapters\n\n")
	b.WriteString("Inbound adapters turn something outside into route records; outbound adapters deliver what a route\n")
	b.WriteString("produces. Each registers under a namespaced id in `init()` and declares its settings once (its spec);\n")
	b.WriteString("that spec drives strict decoding, `koppelpoort lint`, the JSON Schema (`koppelpoort schema`) and this\n")
	b.WriteString("page, which `go test ./adapters/all -update` regenerates. Settings accept `${ENV}` and `${ENV:-default}`.\n")
	for _, r := range adapters.List("") {
		b.WriteString("\n")
		b.WriteString(r.Spec.Markdown(r.ID))
	}
	return b.String()
}

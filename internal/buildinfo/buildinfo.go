// Package buildinfo names this binary: the product and its version, the one place both are defined
// (`koppelpoort version` prints them; the server writes them where FHIR wants the software named).
package buildinfo

import "runtime/debug"

// Product is the product name, as the server writes it in MessageHeader.source and Conformance.software.
const Product = "Koppelpoort"

// version is set at build time:
//
//	go build -ldflags "-X github.com/koppelpoort/koppelpoort/internal/buildinfo.version=v0.1.0" ./cmd/koppelpoort
var version = "dev"

// Version is the version of this binary: the one set at build time, else the module version Go recorded
// (go install …@v0.1.0), else "dev".
func Version() string {
	if version != "dev" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return version
}

// Package buildinfo names this binary: the product, its version and commit, the one place they are defined
// (`koppelpoort version` prints them, /metrics exports them, the server writes them where FHIR wants the
// software named).
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Product is the product name, as the server writes it in MessageHeader.source and Conformance.software.
const Product = "Koppelpoort"

// version and commit are set by the release build (deploy/build.sh):
//
//	go build -ldflags "-X github.com/koppelpoort/koppelpoort/internal/buildinfo.version=v0.4.0
//	  -X github.com/koppelpoort/koppelpoort/internal/buildinfo.commit=<git sha>" ./cmd/koppelpoort
//
// Without them the Go toolchain's build information is used: the module version (go install …@v0.4.0) and
// the VCS revision `go build -buildvcs=true` stamps into a binary built in a git checkout.
var (
	version = ""
	commit  = ""
)

// Build describes this binary.
type Build struct {
	Version, Commit, Time string
	// Modified is set when the checkout had uncommitted changes (toolchain stamp only).
	Modified bool
}

// Version is the version of this binary ("dev" when nothing says otherwise).
func Version() string { return Current().Version }

// Current returns what is known about this binary.
func Current() Build {
	b := Build{Version: version, Commit: commit}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if b.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			b.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if b.Commit == "" {
					b.Commit = s.Value
				}
			case "vcs.time":
				b.Time = s.Value
			case "vcs.modified":
				b.Modified = s.Value == "true" && commit == ""
			}
		}
	}
	if b.Version == "" {
		b.Version = "dev"
	}
	return b
}

// String is the line `koppelpoort version` prints:
// "koppelpoort v0.4.0 (commit 3f2c…, go1.26.8, linux/amd64)".
func (b Build) String() string {
	var parts []string
	if b.Commit != "" {
		c := "commit " + b.Commit
		if b.Modified {
			c += "+modified"
		}
		parts = append(parts, c)
	}
	if b.Time != "" {
		parts = append(parts, b.Time)
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("koppelpoort %s (%s)", b.Version, strings.Join(parts, ", "))
}

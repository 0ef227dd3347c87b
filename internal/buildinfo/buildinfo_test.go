package buildinfo

import (
	"runtime"
	"testing"
)

// The version line names version, commit (marked when the checkout was modified), commit time, Go and
// platform.
func TestBuildString(t *testing.T) {
	b := Build{Version: "v0.0.0-20261202-abcdef", Commit: "abcdef", Time: "2026-12-02T16:00:00Z", Modified: true}
	want := "koppelpoort v0.0.0-20261202-abcdef (commit abcdef+modified, 2026-12-02T16:00:00Z, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")"
	if b.String() != want {
		t.Errorf("%q, want %q", b.String(), want)
	}
	if v := Version(); v != "dev" {
		t.Errorf("a test binary has no version set: %q, want dev", v)
	}
}

package console_test

import (
	"os"
	"strings"
	"testing"

	"github.com/koppelpoort/koppelpoort/admin/console"
)

// TestEmbeddedBuildIsCurrent fails when web/ changed after the committed
// dist/ was built: run `npm ci && npm run build` in admin/console/web and commit dist/.
func TestEmbeddedBuildIsCurrent(t *testing.T) {
	want, err := console.SourcesHash("web")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("dist/SOURCES.sha256")
	if err != nil {
		t.Fatalf("no dist/SOURCES.sha256: build the console (cd admin/console/web && npm ci && npm run build): %v", err)
	}
	if strings.TrimSpace(string(got)) != want {
		t.Fatalf("dist/ was built from other sources (recorded %s, web/ is %s): cd admin/console/web && npm ci && npm run build, then commit dist/",
			strings.TrimSpace(string(got)), want)
	}
}

package console_test

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestEmbeddedBuildIsCurrent fails when web/ changed after the committed
// dist/ was built: run `npm ci && npm run build` in admin/console/web and commit dist/.
func TestEmbeddedBuildIsCurrent(t *testing.T) {
	want, err := sourcesHash("web")
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

// sourcesHash is the hash web/build.mjs records in dist/SOURCES.sha256: the
// sorted paths under web/ (package.json, package-lock.json, build.mjs, src/...),
// each "path\x00sha256hex\n". A test compares it with the committed build.
func sourcesHash(webDir string) (string, error) {
	files := []string{"package.json", "package-lock.json", "build.mjs"}
	err := filepath.WalkDir(filepath.Join(webDir, "src"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(webDir, p)
		files = append(files, filepath.ToSlash(rel))
		return err
	})
	if err != nil {
		return "", err
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(webDir, filepath.FromSlash(f)))
		if err != nil {
			return "", err
		}
		fh := sha256.Sum256(b)
		h.Write([]byte(f + "\x00" + hex.EncodeToString(fh[:]) + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

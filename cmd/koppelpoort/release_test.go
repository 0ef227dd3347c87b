package main

import (
	"bytes"
	"crypto/sha256"
	"debug/buildinfo"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

// deploy/build.sh gives the same bytes for the same commit and flags (reproducible), and the binary says
// which version and commit it is (issue 14, defect 27: `version` printed "dev").
func TestReleaseBuildIsReproducibleAndVersioned(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary twice")
	}
	dir := t.TempDir()
	env := append(os.Environ(), "VERSION=v9.8.7-test", "COMMIT=0123456789abcdef0123456789abcdef01234567")
	var sums [2][32]byte
	for i, name := range []string{"a", "b"} {
		out := filepath.Join(dir, name, "koppelpoort")
		cmd := exec.Command("bash", "../../deploy/build.sh", out)
		cmd.Env = env
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("deploy/build.sh: %v\n%s", err, b)
		}
		bin, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sums[i] = sha256.Sum256(bin)
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds of the same commit differ: %x vs %x", sums[0], sums[1])
	}
	got, err := exec.Command(filepath.Join(dir, "a", "koppelpoort"), "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "koppelpoort v9.8.7-test (commit 0123456789abcdef0123456789abcdef01234567, " + runtime.Version() + ", " + runtime.GOOS + "/" + runtime.GOARCH + ")\n"
	if string(got) != want {
		t.Errorf("version = %q, want %q", got, want)
	}
	if bytes.Contains(must(os.ReadFile(filepath.Join(dir, "a", "koppelpoort"))), []byte(mustAbs(t, "../.."))) {
		t.Error("the release binary contains the checkout's path (-trimpath missing)")
	}
}

// The binary deploy/build.sh builds from a checkout (TestMain, with GOFLAGS=-buildvcs=false as on the
// development machines) names the checkout's version (git describe) and commit (issue 14, defect 27:
// version printed dev).
func TestVersionNamesCommit(t *testing.T) {
	out, err := exec.Command(binPath, "version").Output()
	if err != nil || !strings.HasPrefix(string(out), "koppelpoort ") {
		t.Fatalf("version: %q %v", out, err)
	}
	head, err := exec.Command("git", "rev-parse", "HEAD").Output()
	if err != nil {
		t.Skip("not a git checkout: no commit to name")
	}
	describe, err := exec.Command("git", "describe", "--tags", "--always", "--dirty").Output()
	if err != nil {
		t.Fatal(err)
	}
	want := "koppelpoort " + strings.TrimSpace(string(describe)) + " (commit " + strings.TrimSpace(string(head)) + ", "
	if !strings.HasPrefix(string(out), want) {
		t.Errorf("version %q, want it to start %q", out, want)
	}
}

// A binary built without deploy/build.sh (go build, go run; here the test binary) says it has no version
// and how to get one, on stderr (stdout stays the one version line).
func TestVersionWithoutStampSaysHow(t *testing.T) {
	var stdout, stderr bytes.Buffer
	c := newVersionCmd()
	c.SetOut(&stdout)
	c.SetErr(&stderr)
	c.SetArgs(nil)
	if err := c.Execute(); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(stdout.String(), "koppelpoort dev (") || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("stdout %q, want the one version line", stdout.String())
	}
	if !strings.Contains(stderr.String(), "deploy/build.sh OUTPUT builds it with both") {
		t.Errorf("stderr %q does not say how to build a versioned binary", stderr.String())
	}
}

// The systemd unit passes systemd-analyze verify (no unknown keys, every path checked) and its hardening
// keeps the exposure score low.
func TestSystemdUnitVerifies(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (Debian package systemd); .ci/run installs it")
	}
	unit, err := os.ReadFile("../../deploy/koppelpoort.service")
	if err != nil {
		t.Fatal(err)
	}
	// verify checks that ExecStart's binary exists: point it at the binary this test built.
	p := filepath.Join(t.TempDir(), "koppelpoort.service")
	os.WriteFile(p, bytes.ReplaceAll(unit, []byte("/usr/local/bin/koppelpoort"), []byte(binPath)), 0o644)
	out, err := exec.Command("systemd-analyze", "verify", p).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// Exposure 0 (locked down) .. 10 (unprotected); the threshold is in tenths.
	out, err = exec.Command("systemd-analyze", "security", "--offline=yes", "--threshold=20", p).CombinedOutput()
	if err != nil {
		t.Errorf("exposure above 2.0: %v\n%s", err, lastLines(string(out), 3))
	}
	t.Log(lastLines(string(out), 1))
}

// The Dockerfile cannot be built here (no container engine on this machine), so it is checked as text:
// distroless or scratch, a non-root user, the binary from deploy/build.sh (the release flags), no
// downloads by ADD, pinned base images.
func TestDockerfileStatic(t *testing.T) {
	src, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	var froms, users, runs, copies, entry []string
	for _, line := range strings.Split(strings.ReplaceAll(string(src), "\\\n", " "), "\n") { // continued lines joined
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch strings.ToUpper(f[0]) {
		case "FROM":
			froms = append(froms, f[1])
		case "USER":
			users = append(users, f[1])
		case "RUN":
			runs = append(runs, line)
		case "COPY":
			copies = append(copies, line)
		case "ENTRYPOINT":
			entry = append(entry, line)
		case "ADD":
			t.Errorf("ADD (%s): use COPY; downloads make builds unreproducible", line)
		}
	}
	if len(froms) < 2 {
		t.Fatalf("want a build stage and a runtime stage, got FROM %v", froms)
	}
	final := froms[len(froms)-1]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") && final != "scratch" {
		t.Errorf("runtime image %s is neither distroless/static nor scratch", final)
	}
	for _, f := range froms {
		if !strings.Contains(f, ":") || strings.HasSuffix(f, ":latest") {
			t.Errorf("base image %s is not pinned to a tag", f)
		}
	}
	if len(users) == 0 || users[len(users)-1] == "root" || strings.HasPrefix(users[len(users)-1], "0") {
		t.Errorf("the image must run as a non-root user, USER %v", users)
	}
	if !strings.Contains(strings.Join(runs, "\n"), "deploy/build.sh /out/koppelpoort") {
		t.Error("the binary is not built by deploy/build.sh (the release flags)")
	}
	if !strings.Contains(strings.Join(copies, "\n"), "/out/LICENSE /out/THIRD_PARTY_LICENSES /usr/share/doc/koppelpoort/") ||
		!strings.Contains(strings.Join(runs, "\n"), "deploy/notices.sh > /out/THIRD_PARTY_LICENSES") {
		t.Error("the image must carry LICENSE and THIRD_PARTY_LICENSES (deploy/notices.sh)")
	}
	if !strings.Contains(strings.Join(copies, "\n"), "--from=build /out/koppelpoort /usr/local/bin/koppelpoort") ||
		len(entry) != 1 || !strings.Contains(entry[0], "/usr/local/bin/koppelpoort") {
		t.Errorf("the runtime stage must copy and run the built binary: COPY %v ENTRYPOINT %v", copies, entry)
	}
	t.Log("docker build not run: this machine has no container engine")

	// The build context leaves out local state (a developer's database) and keeps every tracked file.
	var patterns []string
	for _, line := range strings.Split(string(must(os.ReadFile("../../.dockerignore"))), "\n") {
		if p := strings.TrimSpace(line); p != "" && !strings.HasPrefix(p, "#") {
			patterns = append(patterns, p)
		}
	}
	excluded := func(path string) string {
		for _, p := range patterns {
			if base, ok := strings.CutPrefix(p, "**/"); ok {
				if m, _ := filepath.Match(base, filepath.Base(path)); m {
					return p
				}
				continue
			}
			for dir := path; dir != "."; dir = filepath.Dir(dir) { // a pattern excludes a folder and all in it
				if m, _ := filepath.Match(p, dir); m {
					return p
				}
			}
		}
		return ""
	}
	for _, local := range []string{".git/config", "koppelpoort-data/koppelpoort.db", "examples/epd-to-koppeltaal/inbox/x.csv", "dist/SHA256SUMS"} {
		if excluded(local) == "" {
			t.Errorf(".dockerignore lets %s into the build context", local)
		}
	}
	files, err := exec.Command("git", "-C", "../..", "ls-files").Output()
	if err != nil {
		t.Skip("not a git checkout: tracked files unknown")
	}
	for _, f := range strings.Fields(string(files)) {
		if p := excluded(f); p != "" {
			t.Errorf(".dockerignore %q leaves the tracked file %s out of the build", p, f)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func mustAbs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// The systemd install in deploy/README.md works for the unit's dynamic user: its install lines run into a
// temporary root (from a staged release archive), the .env file gets the example's secrets, and the unit's
// ExecStart runs as an unprivileged uid in the state directory with that environment, as systemd would run
// it, until /readyz answers. The README once installed the configuration 0640 root:root, which the
// dynamic user cannot read. Needs root (to install as root and run as another user).
func TestSystemdInstallAsDocumented(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: installs files as root and runs the service as another user")
	}
	readme := string(must(os.ReadFile("../../deploy/README.md")))
	section := readme[strings.Index(readme, "## systemd"):]
	block := section[strings.Index(section, "```sh\n")+6:]
	block = block[:strings.Index(block, "```")]

	// The release archive (deploy/release.sh) and an empty root, traversable by the service's user.
	stage, root := t.TempDir(), t.TempDir()
	for _, d := range []string{filepath.Dir(root), root, filepath.Dir(stage), stage} {
		os.Chmod(d, 0o755)
	}
	for src, dst := range map[string]string{binPath: "koppelpoort", "../../docs/koppelpoort.example.yaml": "koppelpoort.example.yaml",
		"../../deploy/koppelpoort.service": "koppelpoort.service"} {
		os.WriteFile(filepath.Join(stage, dst), must(os.ReadFile(src)), 0o644)
	}
	for _, d := range []string{"etc/systemd/system", "usr/local/bin", "var/lib"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	rooted := strings.NewReplacer(" /etc/", " "+root+"/etc/", "=/etc/", "="+root+"/etc/", "/usr/local/bin/", root+"/usr/local/bin/")
	env := []string{"PATH=" + root + "/usr/local/bin:" + os.Getenv("PATH"), "HOME=" + root}
	sh := func(line string) {
		cmd := exec.Command("bash", "-euc", line)
		cmd.Dir, cmd.Env = stage, env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	var ran int
	for _, line := range strings.Split(block, "\n") {
		line = strings.TrimSpace(line)
		if c := strings.Index(line, "   #"); c >= 0 {
			line = strings.TrimSpace(line[:c])
		}
		if line == "" || strings.HasPrefix(line, "systemctl") || strings.HasPrefix(line, "journalctl") {
			continue
		}
		if strings.Contains(line, "koppelpoort lint") {
			// The operator has filled in the secrets by now.
			os.WriteFile(filepath.Join(root, "etc/koppelpoort/koppelpoort.env"), []byte("MD_PASSWORD=md-secret-0123456789\nGAME_PASSWORD=game-secret-0123456789\n"), 0o600)
		}
		sh(rooted.Replace(line))
		ran++
	}
	if ran < 5 {
		t.Fatalf("ran %d install lines of deploy/README.md's systemd section", ran)
	}

	// What systemd does at start: the unit's EnvironmentFile (read as root), StateDirectory owned by the
	// dynamic user, WorkingDirectory, then ExecStart as that user.
	unit := string(must(os.ReadFile(filepath.Join(root, "etc/systemd/system/koppelpoort.service"))))
	key := func(k string) string {
		for _, l := range strings.Split(unit, "\n") {
			if strings.HasPrefix(l, k+"=") {
				return rooted.Replace("=" + strings.TrimPrefix(strings.TrimPrefix(l, k+"="), "-"))[1:]
			}
		}
		t.Fatalf("the unit has no %s=", k)
		return ""
	}
	const uid = 61234
	state := filepath.Join(root, "var/lib", key("StateDirectory"))
	os.Mkdir(state, 0o750)
	os.Chown(state, uid, uid)
	if key("WorkingDirectory") != "/var/lib/"+key("StateDirectory") {
		t.Fatalf("WorkingDirectory %s is not the state directory", key("WorkingDirectory"))
	}
	svcEnv := []string{"KOPPELPOORT_ADDR=" + testkit.FreeAddr(t)}
	for _, l := range strings.Split(string(must(os.ReadFile(key("EnvironmentFile")))), "\n") {
		if strings.Contains(l, "=") {
			svcEnv = append(svcEnv, l)
		}
	}
	args := strings.Fields(key("ExecStart"))
	svc := exec.Command(args[0], args[1:]...)
	svc.Dir, svc.Env = state, svcEnv
	svc.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
	out := &testkit.Buffer{}
	svc.Stdout, svc.Stderr = out, out
	if err := svc.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = svc.Wait(); close(exited) }()
	t.Cleanup(func() { _ = svc.Process.Kill(); <-exited })
	base := "http://" + strings.TrimPrefix(svcEnv[0], "KOPPELPOORT_ADDR=")
	for deadline := time.Now().Add(20 * time.Second); ; {
		if resp, err := http.Get(base + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("%s as uid %d stopped: %s\n%s", key("ExecStart"), uid, svc.ProcessState, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s as uid %d: not ready within 20 s\n%s", key("ExecStart"), uid, out)
		}
	}
	if _, err := os.Stat(filepath.Join(state, "koppelpoort-data", "koppelpoort.db")); err != nil {
		t.Errorf("the SQLite database is not in the state directory: %v", err)
	}
}

// deploy/notices.sh (THIRD_PARTY_LICENSES in the archives and the image) has the licence text of every
// module the release binary says it contains (its embedded build information), and the Go standard
// library's; it gives the same bytes twice.
func TestThirdPartyNoticesCoverTheBinary(t *testing.T) {
	bi, err := buildinfo.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	run := func() string {
		out, err := exec.Command("bash", "../../deploy/notices.sh").Output()
		if err != nil {
			t.Fatalf("deploy/notices.sh: %v", err)
		}
		return string(out)
	}
	notices := run()
	if len(bi.Deps) < 10 {
		t.Fatalf("the binary names %d modules", len(bi.Deps))
	}
	for _, d := range bi.Deps {
		if d.Replace != nil {
			d = d.Replace
		}
		if !strings.Contains(notices, "\n==== "+d.Path+"@"+d.Version+": ") {
			t.Errorf("THIRD_PARTY_LICENSES has no licence of %s@%s", d.Path, d.Version)
		}
	}
	if !strings.Contains(notices, "==== the Go standard library and runtime ("+bi.GoVersion+"): LICENSE") {
		t.Error("THIRD_PARTY_LICENSES has no licence of the Go standard library")
	}
	if run() != notices {
		t.Error("two runs of deploy/notices.sh differ")
	}
}

// deploy/release.sh twice gives the same SHA256SUMS, and each archive holds what deploy/README.md says (the
// binary, both licence files, README, unit, example configuration); the amd64 binary names its version.
// Two cross-builds take a minute or more, so only with KOPPELPOORT_TEST_RELEASE=1.
func TestReleaseArchivesAreReproducible(t *testing.T) {
	if os.Getenv("KOPPELPOORT_TEST_RELEASE") == "" {
		t.Skip("set KOPPELPOORT_TEST_RELEASE=1 to build the release archives twice")
	}
	var sums [2]string
	var dist string
	for i := range sums {
		dist = filepath.Join(t.TempDir(), "dist")
		cmd := exec.Command("bash", "../../deploy/release.sh")
		cmd.Env = append(os.Environ(), "DIST="+dist, "VERSION=v9.8.7-test", "ALLOW_DIRTY=1")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("deploy/release.sh: %v\n%s", err, out)
		}
		sums[i] = string(must(os.ReadFile(filepath.Join(dist, "SHA256SUMS"))))
	}
	if sums[0] != sums[1] {
		t.Fatalf("two release builds differ:\n%s\n%s", sums[0], sums[1])
	}
	for _, arch := range []string{"amd64", "arm64"} {
		name := "koppelpoort_v9.8.7-test_linux_" + arch
		if !strings.Contains(sums[0], name+".tar.gz") {
			t.Errorf("SHA256SUMS names no %s.tar.gz:\n%s", name, sums[0])
		}
		out, err := exec.Command("tar", "-tzf", filepath.Join(dist, name+".tar.gz")).Output()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"koppelpoort", "LICENSE", "THIRD_PARTY_LICENSES", "README.md", "koppelpoort.service", "koppelpoort.example.yaml"} {
			if !strings.Contains(string(out), name+"/"+f+"\n") {
				t.Errorf("%s.tar.gz lacks %s:\n%s", name, f, out)
			}
		}
	}
	x := t.TempDir()
	if out, err := exec.Command("tar", "-xzf", filepath.Join(dist, "koppelpoort_v9.8.7-test_linux_amd64.tar.gz"), "-C", x).CombinedOutput(); err != nil {
		t.Fatalf("unpack: %v\n%s", err, out)
	}
	v, err := exec.Command(filepath.Join(x, "koppelpoort_v9.8.7-test_linux_amd64", "koppelpoort"), "version").Output()
	if err != nil || !strings.HasPrefix(string(v), "koppelpoort v9.8.7-test (commit ") {
		t.Errorf("the released binary's version: %q %v", v, err)
	}
}

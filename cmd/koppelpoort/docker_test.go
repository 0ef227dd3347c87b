package main

import (
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

// Every `docker run` in deploy/README.md and the Dockerfile starts a server that gets ready. No container
// engine runs on this machine, so the image's command runs as a plain process with the image's ENV and
// WORKDIR and the command's -e (the volume /data a temporary folder, port 8080 a free one). The image once
// documented `docker run -p 8080:8080 -v kp-data:/data koppelpoort`, which stopped at once: on 0.0.0.0 the
// server needs KOPPELPOORT_PUBLIC_URL.
func TestDockerRunAsDocumented(t *testing.T) {
	dockerfile := string(must(os.ReadFile("../../deploy/Dockerfile")))
	readme := string(must(os.ReadFile("../../deploy/README.md")))
	imageEnv, workdir, cmd := dockerfileRuntime(t, dockerfile)
	runs := dockerRuns(dockerfile + "\n" + readme)
	if len(runs) < 2 {
		t.Fatalf("found %d docker run commands in deploy/README.md and the Dockerfile", len(runs))
	}
	for _, run := range runs {
		env, args := dockerRunArgs(run)
		if len(args) > 0 {
			// A configuration file of the reader's own, which cannot be run here: its environment must still
			// name the public URL (the file may too, but the example does not say so).
			if !strings.Contains(strings.Join(env, " "), "KOPPELPOORT_PUBLIC_URL=") {
				t.Errorf("%s\n  sets no KOPPELPOORT_PUBLIC_URL: the server on 0.0.0.0 refuses to start without it", run)
			}
			continue
		}
		t.Run(strings.Join(env, " "), func(t *testing.T) {
			data := t.TempDir()
			_, port, _ := net.SplitHostPort(testkit.FreeAddr(t))
			var all []string
			for _, kv := range append(append([]string{}, imageEnv...), env...) {
				all = append(all, strings.ReplaceAll(strings.ReplaceAll(kv, "8080", port), "/data", data))
			}
			p := exec.Command(binPath, cmd...)
			p.Dir = strings.Replace(workdir, "/data", data, 1)
			p.Env = append(os.Environ(), all...)
			out := &testkit.Buffer{}
			p.Stdout, p.Stderr = out, out
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = p.Wait(); close(exited) }()
			t.Cleanup(func() { _ = p.Process.Kill(); <-exited })
			deadline := time.Now().Add(20 * time.Second)
			for {
				resp, err := http.Get("http://127.0.0.1:" + port + "/readyz")
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == 200 {
						break
					}
				}
				select {
				case <-exited:
					t.Fatalf("%s\n  with %v: the server stopped: %s\n%s", run, all, p.ProcessState, out)
				case <-time.After(50 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatalf("%s\n  with %v: not ready within 20 s\n%s", run, all, out)
				}
			}
			if _, err := os.Stat(filepath.Join(data, "koppelpoort.db")); err != nil {
				t.Errorf("the SQLite database is not in the volume /data: %v", err)
			}
		})
	}
}

// dockerfileRuntime reads the final stage's ENV (continued lines too), WORKDIR and ENTRYPOINT+CMD arguments.
func dockerfileRuntime(t *testing.T, src string) (env []string, workdir string, cmd []string) {
	stages := strings.Split(strings.ReplaceAll(src, "\\\n", " "), "\nFROM ")
	quoted := regexp.MustCompile(`"([^"]*)"`)
	for _, line := range strings.Split(stages[len(stages)-1], "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch f[0] {
		case "ENV":
			env = append(env, f[1:]...)
		case "WORKDIR":
			workdir = f[1]
		case "CMD":
			for _, m := range quoted.FindAllStringSubmatch(line, -1) {
				cmd = append(cmd, m[1])
			}
		}
	}
	if len(env) == 0 || workdir == "" || len(cmd) == 0 {
		t.Fatalf("the Dockerfile's last stage: ENV %v WORKDIR %q CMD %v", env, workdir, cmd)
	}
	return env, workdir, cmd
}

// dockerRuns finds the `docker run` commands in src (shell lines or Dockerfile comments, continued with \).
func dockerRuns(src string) []string {
	var runs []string
	lines := strings.Split(src, "\n")
	for i := 0; i < len(lines); i++ {
		line := strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(lines[i]), "#"))
		if !strings.HasPrefix(line, "docker run ") {
			continue
		}
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(strings.TrimLeft(strings.TrimSpace(lines[i]), "#"))
		}
		if c := strings.Index(line, " # "); c >= 0 {
			line = line[:c]
		}
		runs = append(runs, line)
	}
	return runs
}

// dockerRunArgs returns a docker run command's -e settings and the arguments after the image name.
func dockerRunArgs(run string) (env, args []string) {
	f := strings.Fields(strings.TrimPrefix(run, "docker run "))
	for i := 0; i < len(f); i++ {
		switch {
		case f[i] == "-e" || f[i] == "--env":
			i++
			env = append(env, f[i])
		case strings.HasPrefix(f[i], "-"):
			i++ // -p, -v and the like take a value
		default:
			return env, f[i+1:] // the image, then its arguments
		}
	}
	return env, nil
}

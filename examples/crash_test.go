package examples_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
)

// crashChildEnv holds "<route dir>|<store DSN>" in the child process of the crash test.
const crashChildEnv = "KOPPELPOORT_EXAMPLES_CRASH_CHILD"

func TestMain(m *testing.M) {
	if arg := os.Getenv(crashChildEnv); arg != "" {
		runGatewayChild(arg)
		return
	}
	os.Exit(m.Run())
}

// runGatewayChild is one Koppelpoort as serve runs it (the examples' Koppeltaal server and the EPD
// patients route on one SQLite store), until it is killed.
func runGatewayChild(arg string) {
	dir, dsn, _ := strings.Cut(arg, "|")
	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	cfg, err := loadExamplesConfig()
	if err != nil {
		fail(err)
	}
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		fail(err)
	}
	kcfg := *cfg.Koppeltaal
	kcfg.PublicURL = "http://127.0.0.1:8080" // links only: the child serves no HTTP
	srv, err := api.New(ctx, api.Options{Store: st, Config: kcfg})
	if err != nil {
		fail(err)
	}
	rs, err := routes.LoadFiles(filepath.Join(dir, "*.yaml"))
	if err != nil {
		fail(err)
	}
	rt, err := runtime.New(ctx, runtime.Config{Store: st, Koppeltaal: srv.Service(), Routes: rs, PollInterval: 20 * time.Millisecond,
		Logger: testLogger()})
	if err != nil {
		fail(err)
	}
	fmt.Println("ready")
	fail(rt.Run(ctx))
}

// TestGatewayCrashLosesAndDuplicatesNothing kills the process (SIGKILL) while it is turning an export of
// 400 patients into mailbox messages, starts it again, and checks that every row reached the mailbox
// exactly once: no message lost, none twice, no dead letter, the file archived.
func TestGatewayCrashLosesAndDuplicatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("starts child processes")
	}
	const rows = 400
	dir := copyExample(t, "epd-to-koppeltaal")
	for _, f := range []string{"careplans.yaml", "practitioners.yaml"} {
		os.Remove(filepath.Join(dir, f))
	}
	dsn := filepath.Join(t.TempDir(), "kp.db")
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir+"|"+dsn)
		cmd.Stderr = os.Stderr
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, _ := bufio.NewReader(out).ReadString('\n')
		if strings.TrimSpace(line) != "ready" {
			cmd.Process.Kill()
			t.Fatalf("child did not start: %q", line)
		}
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	// Read-only reads from the parent: the child is the one writer.
	ro, err := sql.Open("sqlite", "file:"+dsn+"?mode=ro&_pragma=busy_timeout(5000)")
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	count := func(q string) int {
		var n int
		if err := ro.QueryRow(q, koppeltaal.DemoGameUser).Scan(&n); err != nil {
			return -1
		}
		return n
	}
	const inMailbox = `SELECT COUNT(*) FROM queue q JOIN app_instances i ON i.id = q.instance_id WHERE i.username = ?`
	const distinctPatients = `SELECT COUNT(DISTINCT q.focal_ref) FROM queue q JOIN app_instances i ON i.id = q.instance_id WHERE i.username = ?`

	child := start()
	drop(t, dir, "patienten_crash.csv", patientExport(50000, rows))
	deadline := time.Now().Add(60 * time.Second)
	for n := count(inMailbox); n < 40; n = count(inMailbox) {
		if time.Now().After(deadline) {
			kill(child)
			t.Fatalf("only %d rows reached the mailbox before the crash", n)
		}
		time.Sleep(2 * time.Millisecond)
	}
	kill(child)
	before := count(inMailbox)
	if before >= rows {
		t.Logf("the crash came after the last row (%d in the mailbox); the test still checks the restart", before)
	}

	child = start()
	defer kill(child)
	deadline = time.Now().Add(60 * time.Second)
	for count(inMailbox) < rows && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	// Anything re-read after the restart has had time to arrive twice, were it to.
	time.Sleep(500 * time.Millisecond)
	if n, d := count(inMailbox), count(distinctPatients); n != rows || d != rows {
		t.Fatalf("after the crash (%d in the mailbox then): %d messages for %d patients in the mailbox, want %d and %d", before, n, d, rows, rows)
	}
	var dead int
	ro.QueryRow(`SELECT COUNT(*) FROM route_dead_letters`).Scan(&dead)
	if dead != 0 {
		t.Fatalf("%d dead letters", dead)
	}
	waitFile(t, filepath.Join(dir, "inbox", "done", "patienten_crash.csv"))
	t.Logf("killed with %d of %d rows in the mailbox; all %d there once after the restart", before, rows, rows)
}

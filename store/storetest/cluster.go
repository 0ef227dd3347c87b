package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Cluster is a private PostgreSQL cluster (initdb, pg_ctl) on 127.0.0.1 that a
// test may stop, kill, restart, reconfigure and replicate — what the shared
// server of KOPPELPOORT_TEST_POSTGRES_DSN must never be put through. It needs
// PostgreSQL's server binaries and, when the test runs as root, the postgres
// user to run them as; without them the test is skipped, saying why.
type Cluster struct {
	t    testing.TB
	Bin  string // directory of initdb, pg_ctl, postgres
	Dir  string // data directory
	Port int
	log  string
}

// EnvClusterPorts names the environment variable with the port range private
// clusters may use, "first-last". Default 5500-5599.
const EnvClusterPorts = "KOPPELPOORT_TEST_CLUSTER_PORTS"

// pgBin finds PostgreSQL's server binaries (the newest under /usr/lib/postgresql).
func pgBin() string {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Strings(dirs)
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i]
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// freePort returns a port of the cluster range that nothing listens on.
func freePort(t testing.TB) int {
	first, last := 5500, 5599
	if r := os.Getenv(EnvClusterPorts); r != "" {
		a, b, ok := strings.Cut(r, "-")
		f, err1 := strconv.Atoi(a)
		l, err2 := strconv.Atoi(b)
		if !ok || err1 != nil || err2 != nil || f > l {
			t.Fatalf("%s=%q: want first-last", EnvClusterPorts, r)
		}
		first, last = f, l
	}
	start := first + int(time.Now().UnixNano()%int64(last-first+1))
	for i := 0; i <= last-first; i++ {
		p := first + (start-first+i)%(last-first+1)
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err == nil {
			ln.Close()
			return p
		}
	}
	t.Fatalf("no free port in %d-%d for a private PostgreSQL cluster", first, last)
	return 0
}

// NewCluster initialises a cluster with the given extra postgresql.conf lines
// and starts it; it is stopped and removed at cleanup.
func NewCluster(t testing.TB, conf ...string) *Cluster {
	t.Helper()
	c := newClusterDir(t)
	c.run("initdb", "-D", c.Dir, "-A", "trust", "-U", "postgres", "--no-sync")
	c.configure(conf...)
	c.Start()
	return c
}

func newClusterDir(t testing.TB) *Cluster {
	t.Helper()
	bin := pgBin()
	if bin == "" {
		t.Skip("private PostgreSQL cluster skipped: no initdb (install the postgresql package)")
	}
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("su"); err != nil {
			t.Skip("private PostgreSQL cluster skipped: running as root without su")
		}
		if err := exec.Command("id", "postgres").Run(); err != nil {
			t.Skip("private PostgreSQL cluster skipped: running as root and there is no postgres user to run it as")
		}
	}
	root, err := os.MkdirTemp("", "kp-pgcluster-")
	if err != nil {
		t.Fatal(err)
	}
	c := &Cluster{t: t, Bin: bin, Dir: filepath.Join(root, "data"), Port: freePort(t), log: filepath.Join(root, "server.log")}
	if os.Geteuid() == 0 {
		_ = exec.Command("chown", "postgres", root).Run()
	}
	t.Cleanup(func() {
		c.pgctl("stop", "-m", "immediate")
		os.RemoveAll(root)
	})
	return c
}

// configure appends lines to postgresql.conf: port, loopback only, and conf.
func (c *Cluster) configure(conf ...string) {
	c.t.Helper()
	lines := append([]string{fmt.Sprintf("port = %d", c.Port), "listen_addresses = '127.0.0.1'",
		"unix_socket_directories = '" + filepath.Dir(c.Dir) + "'", "max_connections = 100", "fsync = on"}, conf...)
	f, err := os.OpenFile(filepath.Join(c.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		c.t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString("\n# storetest.Cluster\n" + strings.Join(lines, "\n") + "\n"); err != nil {
		c.t.Fatal(err)
	}
}

// run runs one of the cluster's binaries as the postgres user (when root).
func (c *Cluster) run(name string, args ...string) string {
	c.t.Helper()
	out, err := c.cmd(name, args...).CombinedOutput()
	if err != nil {
		c.t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (c *Cluster) cmd(name string, args ...string) *exec.Cmd {
	bin := filepath.Join(c.Bin, name)
	if os.Geteuid() != 0 {
		return exec.Command(bin, args...)
	}
	quoted := make([]string, 0, len(args)+1)
	for _, a := range append([]string{bin}, args...) {
		quoted = append(quoted, "'"+strings.ReplaceAll(a, "'", `'\''`)+"'")
	}
	return exec.Command("su", "postgres", "-s", "/bin/sh", "-c", strings.Join(quoted, " "))
}

func (c *Cluster) pgctl(args ...string) error {
	return c.cmd("pg_ctl", append([]string{"-D", c.Dir, "-w", "-t", "60"}, args...)...).Run()
}

// DSN is the URL of database db (default postgres) on this cluster.
func (c *Cluster) DSN(db string) string {
	if db == "" {
		db = "postgres"
	}
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.Port, db)
}

// Start starts the cluster and waits until it accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	if out, err := c.cmd("pg_ctl", "-D", c.Dir, "-w", "-t", "60", "-l", c.log, "start").CombinedOutput(); err != nil {
		logTail, _ := os.ReadFile(c.log)
		c.t.Fatalf("start PostgreSQL on port %d: %v\n%s\n%s", c.Port, err, out, logTail)
	}
}

// Stop stops the cluster: mode "immediate" is a crash as the clients see it
// (no checkpoint, connections dropped), "fast" a clean shutdown.
func (c *Cluster) Stop(mode string) {
	c.t.Helper()
	if err := c.pgctl("stop", "-m", mode); err != nil {
		c.t.Fatalf("stop PostgreSQL (%s): %v", mode, err)
	}
}

// Kill sends SIGKILL to the postmaster (the server process), as a power cut
// or an OOM kill would end it; its backends end with it.
func (c *Cluster) Kill() {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.Dir, "postmaster.pid"))
	if err != nil {
		c.t.Fatalf("kill PostgreSQL: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		c.t.Fatalf("kill PostgreSQL: postmaster.pid: %v", err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		c.t.Fatalf("kill PostgreSQL %d: %v", pid, err)
	}
	// The backends notice the postmaster's death; wait until the port is free.
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", c.Port), 100*time.Millisecond); err != nil {
			break
		} else {
			conn.Close()
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A killed postmaster may stay a zombie (nobody reaps it in a container), and
	// PostgreSQL would take its lock files for a live server's.
	_ = os.Remove(filepath.Join(c.Dir, "postmaster.pid"))
	sock := filepath.Join(filepath.Dir(c.Dir), fmt.Sprintf(".s.PGSQL.%d", c.Port))
	_ = os.Remove(sock)
	_ = os.Remove(sock + ".lock")
}

// Exec runs statements on database postgres as the superuser.
func (c *Cluster) Exec(stmts ...string) {
	c.t.Helper()
	db, err := sql.Open("pgx", c.DSN(""))
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			c.t.Fatalf("%s: %v", s, err)
		}
	}
}

// NewStandby makes a streaming standby of primary (pg_basebackup -R) named
// appName (its application_name, what synchronous_standby_names lists) and
// starts it.
func NewStandby(t testing.TB, primary *Cluster, appName string) *Cluster {
	t.Helper()
	s := newClusterDir(t)
	s.basebackup(primary, appName)
	s.Start()
	return s
}

// Rebuild turns c (stopped or killed) into a standby of primary: its data is
// replaced by a fresh base backup, then it starts.
func (c *Cluster) Rebuild(primary *Cluster, appName string) {
	c.t.Helper()
	if err := os.RemoveAll(c.Dir); err != nil {
		c.t.Fatal(err)
	}
	c.basebackup(primary, appName)
	c.Start()
}

func (c *Cluster) basebackup(primary *Cluster, appName string) {
	c.t.Helper()
	conn := fmt.Sprintf("host=127.0.0.1 port=%d user=postgres application_name=%s", primary.Port, appName)
	c.run("pg_basebackup", "-d", conn, "-D", c.Dir, "-R", "-X", "stream", "--no-sync", "-c", "fast")
	c.configure() // its own port (the primary's postgresql.conf came along)
}

// Promote ends recovery on a standby: it becomes a primary.
func (c *Cluster) Promote() {
	c.t.Helper()
	c.run("pg_ctl", "-D", c.Dir, "-w", "-t", "60", "promote")
}

package storetest

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// .ci/run's PostgreSQL (.ci/pg.sh) starts on another port when the one it was given is taken, and on a
// random one in 20000-29999 (issue 14, defect 28: the fixed 55439 was taken by a client socket and the CI
// run failed). Runs pg_start for real, as .ci/run does (as root, the cluster as the postgres user).
func TestCIPostgresPicksAnotherPort(t *testing.T) {
	bin := pgBin()
	if bin == "" {
		t.Skip("no initdb (install the postgresql package)")
	}
	if os.Geteuid() != 0 || exec.Command("id", "postgres").Run() != nil {
		t.Skip(".ci/run runs as root with a postgres user; this is neither")
	}
	var taken net.Listener
	for taken == nil {
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(10000)))
		if err == nil {
			taken = ln
		}
	}
	defer taken.Close()
	takenPort := taken.Addr().(*net.TCPAddr).Port
	script := `set -euo pipefail
PGDIR=$(mktemp -d /tmp/koppelpoort-ci-pgtest.XXXXXX)
chown postgres "$PGDIR"
. .ci/pg.sh
trap pg_stop EXIT
pg_start
echo "PGPORT=$PGPORT"
"$PGBIN/psql" "postgres://postgres@127.0.0.1:$PGPORT/postgres?sslmode=disable" -Atc 'select 40 + 2'`
	cmd := exec.Command("bash", "-c", script)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "PGBIN="+bin, "KOPPELPOORT_CI_PGPORT="+strconv.Itoa(takenPort))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf(".ci/pg.sh: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), fmt.Sprintf("port %d is in use; trying another", takenPort)) {
		t.Errorf("it did not notice port %d is taken:\n%s", takenPort, out)
	}
	m := regexp.MustCompile(`PGPORT=(\d+)`).FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("no PGPORT in:\n%s", out)
	}
	if p, _ := strconv.Atoi(m[1]); p == takenPort || p < 20000 || p > 29999 {
		t.Errorf("PostgreSQL on port %d; want another than %d, in 20000-29999", p, takenPort)
	}
	if !strings.Contains(string(out), "\n42\n") {
		t.Errorf("the cluster did not answer:\n%s", out)
	}
}

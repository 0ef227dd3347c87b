package runtime_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

func loadRoute(t *testing.T, dir, name, listen string) *routes.Route {
	t.Helper()
	p := filepath.Join(dir, name+".yaml")
	src := "name: " + name + "\ninput:\n  http: {path: /h, listen: " + listen + ", auth: none}\noutputs:\n  - name: o\n    file: {dir: ./out-" + name + ", format: ndjson}\n"
	os.WriteFile(p, []byte(src), 0o644)
	r, err := routes.LoadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func accepts(addr string) bool {
	resp, err := http.Post("http://"+addr+"/h", "application/json", strings.NewReader(`{"a": 1}`))
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusAccepted
}

// Apply swaps only what changed, and a revision that cannot start (its port is taken) leaves the old one
// running.
func TestSetApply(t *testing.T) {
	dir := t.TempDir()
	st := storetest.Backend{Name: "sqlite", DSN: filepath.Join(dir, "kp.db")}.Open(t)
	a1, b1 := testkit.FreeAddr(t), testkit.FreeAddr(t)
	set, err := runtime.NewSet(context.Background(), runtime.Config{Store: st, PollInterval: 20 * time.Millisecond},
		[]*routes.Route{loadRoute(t, dir, "a", a1), loadRoute(t, dir, "b", b1)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- set.Run(ctx) }()
	defer func() { cancel(); <-done; set.Close() }()
	waitFor(t, "both routes accept", func() bool { return accepts(a1) && accepts(b1) })

	// a moves to a port someone else holds: refused, a keeps running on its old port; b is untouched.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	revB := set.Revisions()["b"]
	ch, err := set.Apply(context.Background(), []*routes.Route{loadRoute(t, dir, "a", taken.Addr().String()), loadRoute(t, dir, "b", b1)})
	if err == nil || !strings.Contains(err.Error(), "route a keeps running revision") {
		t.Fatalf("apply with a taken port: %v (%s)", err, ch)
	}
	waitFor(t, "a back on its old port", func() bool { return accepts(a1) })
	if set.Revisions()["b"] != revB || strings.Join(ch.Unchanged, ",") != "b" {
		t.Errorf("b was touched: %s", ch)
	}

	// a moves to a free port, b is removed, c is new.
	a2, c1 := testkit.FreeAddr(t), testkit.FreeAddr(t)
	ch, err = set.Apply(context.Background(), []*routes.Route{loadRoute(t, dir, "a", a2), loadRoute(t, dir, "c", c1)})
	if err != nil || ch.String() != "started c; replaced a; stopped b" {
		t.Fatalf("apply: %v, %s", err, ch)
	}
	waitFor(t, "a on its new port and c running", func() bool { return accepts(a2) && accepts(c1) })
	if accepts(a1) || accepts(b1) {
		t.Error("the old revision of a or the removed b still accepts")
	}
}

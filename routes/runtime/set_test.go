package runtime_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
	"github.com/koppelpoort/koppelpoort/routes"
	"github.com/koppelpoort/koppelpoort/routes/runtime"
	"github.com/koppelpoort/koppelpoort/store"
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

// A reload drains the route it replaces (issue 14, hot reload): a delivery in flight to a slow target when
// the route is swapped is finished and recorded by the old revision — Apply waits for it — and is not made
// again by the new one; a record accepted after the swap is delivered by the new revision, once.
func TestSetApplyDrainsDeliveriesInFlight(t *testing.T) {
	dir := t.TempDir()
	st := storetest.Backend{Name: "sqlite", DSN: filepath.Join(dir, "kp.db")}.Open(t)
	var mu sync.Mutex
	calls := map[string][]string{} // path → the X-Revision of each call
	inFlight, finish := make(chan string, 4), make(chan struct{})
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path] = append(calls[r.URL.Path], r.Header.Get("X-Revision"))
		mu.Unlock()
		if r.URL.Path == "/d/slow" {
			inFlight <- r.URL.Path
			select {
			case <-finish:
			case <-r.Context().Done():
				return // the caller gave up on the call
			}
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer target.Close()
	answer := sync.OnceFunc(func() { close(finish) })
	defer answer() // before target.Close, also when the test fails early
	listen := testkit.FreeAddr(t)
	revision := func(n string) *routes.Route {
		p := filepath.Join(dir, "slow.yaml")
		src := "name: slow\nkey: record.id\ninput:\n  http: {path: /h, listen: " + listen + ", auth: none}\n" +
			"outputs:\n  - name: target\n    http: {url: \"" + target.URL + "/d/{id}\", method: PUT, headers: {X-Revision: \"" + n + "\"}}\n"
		os.WriteFile(p, []byte(src), 0o644)
		r, err := routes.LoadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// A short lease: a call cut off by the swap would be retried (a second call) within the test.
	set, err := runtime.NewSet(context.Background(), runtime.Config{Store: st, PollInterval: 20 * time.Millisecond, Lease: time.Second},
		[]*routes.Route{revision("1")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- set.Run(ctx) }()
	defer func() { cancel(); <-done; set.Close() }()
	postRecord := func(id string) {
		t.Helper()
		waitFor(t, "the route accepts "+id, func() bool {
			resp, err := http.Post("http://"+listen+"/h", "application/json", strings.NewReader(`{"id": "`+id+`"}`))
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusAccepted
		})
	}

	postRecord("slow")
	select {
	case <-inFlight:
	case <-time.After(15 * time.Second):
		t.Fatal("the delivery never reached the target")
	}
	applied := make(chan error, 1)
	go func() {
		_, err := set.Apply(context.Background(), []*routes.Route{revision("2")})
		applied <- err
	}()
	select {
	case err := <-applied:
		t.Fatalf("the reload did not wait for the delivery in flight (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	answer() // the target answers the call the old revision made
	if err := <-applied; err != nil {
		t.Fatal(err)
	}
	postRecord("after")
	waitFor(t, "the new revision delivers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(calls["/d/after"]) == 1
	})
	time.Sleep(1500 * time.Millisecond) // past the lease: a delivery left in flight would be called again
	mu.Lock()
	defer mu.Unlock()
	if got := calls["/d/slow"]; len(got) != 1 || got[0] != "1" {
		t.Errorf("the delivery in flight at the swap was called by revisions %v, want once by 1", got)
	}
	if got := calls["/d/after"]; len(got) != 1 || got[0] != "2" {
		t.Errorf("the record after the swap was called by revisions %v, want once by 2", got)
	}
	var backlog []store.OutputBacklog
	st.View(context.Background(), func(tx *store.Tx) error {
		var err error
		backlog, err = tx.OutputBacklogs(context.Background())
		return err
	})
	if len(backlog) != 0 {
		t.Errorf("deliveries still waiting: %+v", backlog)
	}
}

package api_test

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const crashChildEnv = "KOPPELPOORT_KT_CRASH_CHILD_DSN"

func TestMain(m *testing.M) {
	if dsn := os.Getenv(crashChildEnv); dsn != "" {
		runServerChild(dsn)
		return
	}
	if dsn := os.Getenv(retentionChildEnv); dsn != "" {
		runRetentionChild(dsn)
		return
	}
	os.Exit(m.Run())
}

// crashConfig: portal@a posts; game@a and epd@a both subscribe. Short claim timeout so lost claims come back fast.
func crashConfig() koppeltaal.Config {
	evs := []string{"CreateOrUpdatePatient"}
	return koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: "A"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}, {ID: "Game"}, {ID: "EPD"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: "A", Username: "portal@a", Password: "pa"},
			{Application: "Game", Domain: "A", Username: "game@a", Password: "ga", Subscriptions: evs},
			{Application: "EPD", Domain: "A", Username: "epd@a", Password: "ea", Subscriptions: evs},
		},
		ClaimTimeout:  3 * time.Second,
		SweepInterval: 100 * time.Millisecond,
	}
}

// runServerChild is the server process of the crash test: a real store and
// HTTP listener; it prints its address and serves until killed.
func runServerChild(dsn string) {
	st, err := store.Open(ctx, store.Config{DSN: dsn}, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	cfg := fastHashes(crashConfig())
	cfg.PublicURL = "http://" + ln.Addr().String()
	srv, err := api.New(ctx, api.Options{Store: st, Config: cfg})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(2)
	}
	go func() { _ = srv.Run(ctx) }()
	fmt.Printf("listening http://%s\n", ln.Addr())
	r := chi.NewRouter()
	srv.Mount(r)
	_ = http.Serve(ln, r)
}

type child struct {
	cmd  *exec.Cmd
	base string
}

func startChild(t *testing.T, dsn string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+dsn)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		_ = cmd.Process.Kill()
		t.Fatalf("child did not start: %v", err)
	}
	c := &child{cmd: cmd, base: strings.TrimSpace(strings.TrimPrefix(line, "listening "))}
	t.Cleanup(func() { c.kill() })
	return c
}

func (c *child) kill() {
	if c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
	}
}

var crashClient = &http.Client{Timeout: 10 * time.Second}

func call(base, method, path, user, pass string, body []byte) (int, []byte, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	r.SetBasicAuth(user, pass)
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Content-Type", "application/json")
	resp, err := crashClient.Do(r)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestCrashSafety SIGKILLs the server process while clients post and claim.
// After a restart every message that got a 200 is in every subscriber's queue
// exactly once, and every claim that was never acknowledged comes back.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test runs child processes")
	}
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		c := startChild(t, b.DSN)
		var (
			mu       sync.Mutex
			accepted []string // patient URLs of messages that got a 200
			stop     atomic.Bool
			wg       sync.WaitGroup
			n        atomic.Int64
		)
		for w := 0; w < 4; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					p := fmt.Sprintf("https://a.example/Patient/w%d-%d", w, i)
					status, _, err := call(c.base, "POST", "/FHIR/Koppeltaal/Mailbox", "portal@a", "pa",
						koppeltaal.EncodeBundle(patientMessage("A", p), dstu1.FormatJSON))
					if err != nil {
						return // the server is gone
					}
					if status == 200 {
						mu.Lock()
						accepted = append(accepted, p)
						mu.Unlock()
						n.Add(1)
					}
				}
			}(w)
		}
		for _, u := range [][2]string{{"game@a", "ga"}, {"epd@a", "ea"}} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; !stop.Load(); i++ {
					_, body, err := call(c.base, "GET", "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", u[0], u[1], nil)
					if err != nil {
						return
					}
					msg, err := dstu1.ParseBundle(body, dstu1.FormatJSON)
					if err != nil || len(msg.Entries) == 0 || i%3 == 0 {
						continue // every third claim is "forgotten": the client crashed before acknowledging
					}
					mh := msg.MessageHeader()
					mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: "Success"})
					if _, _, err := call(c.base, "PUT", strings.TrimPrefix(msg.Entries[0].SelfLink(), c.base), u[0], u[1],
						koppeltaal.EncodeResource(mh.Resource, dstu1.FormatJSON)); err != nil {
						return
					}
				}
			}()
		}
		deadline := time.Now().Add(20 * time.Second)
		for n.Load() < 150 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		c.kill() // SIGKILL mid-traffic
		stop.Store(true)
		wg.Wait()
		if len(accepted) < 50 {
			t.Fatalf("only %d messages accepted before the kill", len(accepted))
		}

		c2 := startChild(t, b.DSN)
		time.Sleep(3500 * time.Millisecond) // > claim timeout: the sweeper returns forgotten claims
		for _, u := range [][2]string{{"game@a", "ga"}, {"epd@a", "ea"}} {
			// Drain: everything not yet acknowledged must be claimable again.
			for i := 0; ; i++ {
				if i > 10*len(accepted)+100 {
					t.Fatalf("%s: draining the queue does not end", u[0])
				}
				_, body, err := call(c2.base, "GET", "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", u[0], u[1], nil)
				if err != nil {
					t.Fatal(err)
				}
				msg, err := dstu1.ParseBundle(body, dstu1.FormatJSON)
				if err != nil {
					t.Fatal(err)
				}
				if len(msg.Entries) == 0 {
					break
				}
				mh := msg.MessageHeader()
				mh.SetProcessingStatus(dstu1.ProcessingStatus{Status: "Success"})
				st, b, err := call(c2.base, "PUT", strings.TrimPrefix(msg.Entries[0].SelfLink(), c2.base), u[0], u[1],
					koppeltaal.EncodeResource(mh.Resource, dstu1.FormatJSON))
				if err != nil || (st != 200 && st != 409) {
					t.Fatalf("ack after restart: %d %s %v", st, b, err)
				}
				// 409: this slow client's claim timed out and went back to New; it is claimed again.
			}
			for _, status := range []string{"New", "Claimed"} {
				_, body, _ := call(c2.base, "GET", "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&ProcessingStatus="+status, u[0], u[1], nil)
				if b, err := dstu1.ParseBundle(body, dstu1.FormatJSON); err != nil || b.TotalResults != "0" {
					t.Fatalf("%s: %s entries left after draining: %s", u[0], status, body)
				}
			}
			for _, p := range accepted {
				// include-expired: a message every subscriber acknowledged has lost its body (SPEC.md §10.2).
				_, body, err := call(c2.base, "GET", "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&include-expired=yes&Patient="+url.QueryEscape(p), u[0], u[1], nil)
				if err != nil {
					t.Fatal(err)
				}
				b, err := dstu1.ParseBundle(body, dstu1.FormatJSON)
				if err != nil || b.TotalResults != "1" {
					t.Fatalf("%s: accepted message for %s is in the queue %s times (want exactly 1)", u[0], p, b.TotalResults)
				}
				if ps, _ := b.MessageHeader().ProcessingStatus(); ps.Status != "Success" {
					t.Fatalf("%s: %s ended %s", u[0], p, ps.Status)
				}
			}
		}
		t.Logf("%s: %d messages acknowledged before SIGKILL, all present exactly once per subscriber after restart", b.Name, len(accepted))
	})
}

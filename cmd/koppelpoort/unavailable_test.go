package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// While the database cannot commit — the PostgreSQL primary stopped, PostgreSQL
// read-only, a full disk under SQLite — every Koppeltaal endpoint of a running
// `koppelpoort serve` answers 503 with Retry-After and an OperationOutcome in
// the request's format (the OAuth endpoints: their JSON error), never 500;
// /readyz is not ready; what can be read is still served; and everything
// works again once the database is back, without a restart (issue 15).

// access is what an endpoint needs of the database.
type access int

const (
	needsNothing access = iota // served from memory (metadata)
	needsRead                  // served while the database can be read
	needsCommit                // must commit
)

// call is one request to the running server.
type call struct {
	name         string
	method, path string
	user         string // Basic "name:password"
	bearer       string
	body         []byte // JSON (FHIR) or a form (OAuth)
	form         bool   // body is application/x-www-form-urlencoded
	oauth        bool   // an OAuth endpoint: answers RFC 6749 JSON, not an OperationOutcome
	access       access
	ok           int // status when the database is fine
}

// kpClient talks to one running server; redirects are answers, not followed.
type kpClient struct {
	t    *testing.T
	base string
	http *http.Client
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, a.body) }

func newKPClient(t *testing.T, base string) *kpClient {
	return &kpClient{t: t, base: base, http: &http.Client{Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// do sends c, asking for format f (FHIR endpoints).
func (k *kpClient) do(c call, f dstu1.Format) answer {
	k.t.Helper()
	req, err := http.NewRequest(c.method, k.base+c.path, bytes.NewReader(c.body))
	if err != nil {
		k.t.Fatal(err)
	}
	if c.user != "" {
		name, pass, _ := strings.Cut(c.user, ":")
		req.SetBasicAuth(name, pass)
	}
	if c.bearer != "" {
		req.Header.Set("Authorization", "Bearer "+c.bearer)
	}
	switch {
	case c.body != nil && c.form:
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	case c.body != nil:
		req.Header.Set("Content-Type", "application/json+fhir")
	}
	req.Header.Set("Accept", map[dstu1.Format]string{dstu1.FormatJSON: "application/json+fhir", dstu1.FormatXML: "application/xml+fhir"}[f])
	resp, err := k.http.Do(req)
	if err != nil {
		k.t.Fatalf("%s: %v", c.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, resp.Header, b}
}

func (k *kpClient) readyz() answer {
	k.t.Helper()
	return k.do(call{name: "/readyz", method: "GET", path: "/readyz"}, dstu1.FormatJSON)
}

// eventually retries do until it returns true or d passes.
func eventuallyTrue(t *testing.T, what string, d time.Duration, do func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !do() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const (
	demoEPD    = koppeltaal.DemoEPDUser + ":" + koppeltaal.DemoEPDPassword
	demoPortal = koppeltaal.DemoPortalUser + ":" + koppeltaal.DemoPortalPassword
	demoGame   = koppeltaal.DemoGameUser + ":" + koppeltaal.DemoGamePassword
	demoModule = koppeltaal.DemoModuleClient + ":" + koppeltaal.DemoModuleSecret
)

// newPatientMessage is docs/curl/patient-message.json about a patient of its own, with an identifier of its own.
func newPatientMessage(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "docs", "curl", "patient-message.json"))
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.NewString()
	s := strings.ReplaceAll(string(b), "0b7c5d7e-3f7e-4a8e-b2a8-6c8d1e5f0a11", id)
	s = strings.ReplaceAll(s, "4f1c2a9e-8d2b-4c57-9a31-2b0f6f7b9e01", uuid.NewString())
	return []byte(strings.ReplaceAll(s, "Patient/1001", "Patient/"+id))
}

var iidRE = regexp.MustCompile(`IID=([0-9]+)`)

// fixture is what the outage calls need, made while the database is fine:
// a claimed message to acknowledge, an authorization code to redeem, a Bearer token.
type fixture struct {
	iid, code, token string
}

// module's OAuth URLs (the demo module's registration; nothing listens there, redirects are not followed).
const moduleCallback = koppeltaal.DemoModuleRoot + "/callback"

func (k *kpClient) launchCode() string {
	k.t.Helper()
	q := url.Values{"client_id": {koppeltaal.DemoModuleClient}, "patient": {"https://epd.example.org/fhir/Koppeltaal/Patient/1001"}}
	r := k.do(call{name: "launch", method: "GET", path: "/OAuth2/Koppeltaal/Launch?" + q.Encode(), user: demoPortal}, dstu1.FormatJSON)
	loc, _ := url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || loc == nil || loc.Query().Get("launch") == "" {
		k.t.Fatalf("launch: %s (Location %s)", r, r.header.Get("Location"))
	}
	q = url.Values{"response_type": {"code"}, "client_id": {koppeltaal.DemoModuleClient}, "redirect_uri": {moduleCallback},
		"scope": {"patient/*.read launch:" + loc.Query().Get("launch")}, "state": {"s"}}
	r = k.do(call{name: "authorize", method: "GET", path: "/OAuth2/Koppeltaal/Authorize?" + q.Encode()}, dstu1.FormatJSON)
	loc, _ = url.Parse(r.header.Get("Location"))
	if r.status != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
		k.t.Fatalf("authorize: %s (Location %s)", r, r.header.Get("Location"))
	}
	return loc.Query().Get("code")
}

func tokenForm(code string) []byte {
	return []byte(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {moduleCallback}}.Encode())
}

// prepare makes a fixture: posts a message, claims it, gets a code and a token.
func (k *kpClient) prepare() fixture {
	k.t.Helper()
	if r := k.do(call{name: "post", method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: demoEPD, body: newPatientMessage(k.t)}, dstu1.FormatJSON); r.status != 200 {
		k.t.Fatalf("post: %s", r)
	}
	// The portal's oldest waiting message (maybe one posted before): any claimed one will do.
	r := k.do(call{name: "claim", method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", user: demoPortal}, dstu1.FormatJSON)
	iid := iidRE.FindStringSubmatch(string(r.body))
	if r.status != 200 || iid == nil {
		k.t.Fatalf("claim: %s", r)
	}
	r = k.do(call{name: "token", method: "POST", path: "/OAuth2/Koppeltaal/Token", user: demoModule, body: tokenForm(k.launchCode()), form: true}, dstu1.FormatJSON)
	var tok struct {
		Access string `json:"access_token"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &tok) != nil || tok.Access == "" {
		k.t.Fatalf("token: %s", r)
	}
	return fixture{iid: iid[1], code: k.launchCode(), token: tok.Access}
}

// calls are the Koppeltaal endpoints exercised during an outage.
func (fx fixture) calls(t *testing.T) []call {
	ack, err := os.ReadFile(filepath.Join("..", "..", "docs", "curl", "ack-success.json"))
	if err != nil {
		t.Fatal(err)
	}
	item, err := os.ReadFile(filepath.Join("..", "..", "docs", "curl", "storage-item.json"))
	if err != nil {
		t.Fatal(err)
	}
	item = bytes.Replace(item, []byte(`"progress"`), []byte(`"`+uuid.NewString()+`"`), 1) // an item of its own
	patient := url.QueryEscape("https://epd.example.org/fhir/Koppeltaal/Patient/1001")
	launch := url.Values{"client_id": {koppeltaal.DemoModuleClient}, "patient": {"https://epd.example.org/fhir/Koppeltaal/Patient/1001"}}
	return []call{
		{name: "metadata", method: "GET", path: "/FHIR/Koppeltaal/metadata", access: needsNothing, ok: 200},
		{name: "Mailbox POST", method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: demoEPD, body: newPatientMessage(t), access: needsCommit, ok: 200},
		{name: "claim", method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", user: demoGame, access: needsCommit, ok: 200},
		{name: "ack PUT", method: "PUT", path: "/FHIR/Koppeltaal/MessageHeader/" + fx.iid, user: demoPortal, body: ack, access: needsCommit, ok: 200},
		{name: "search", method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true&_count=5", user: demoPortal, access: needsRead, ok: 200},
		{name: "search with a Bearer token", method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/_search?_summary=true", bearer: fx.token, access: needsRead, ok: 200},
		{name: "MessageHeader read", method: "GET", path: "/FHIR/Koppeltaal/MessageHeader/" + fx.iid, user: demoPortal, access: needsRead, ok: 200},
		{name: "ActivityDefinition search", method: "GET", path: "/FHIR/Koppeltaal/Other/_search?code=ActivityDefinition", user: demoGame, access: needsRead, ok: 200},
		{name: "Storage search", method: "GET", path: "/FHIR/Koppeltaal/Other/_search?code=StorageItem&patient=" + patient, user: demoGame, access: needsRead, ok: 200},
		{name: "Storage POST", method: "POST", path: "/FHIR/Koppeltaal/Other?code=StorageItem", user: demoGame, body: item, access: needsCommit, ok: 201},
		{name: "OAuth Launch", method: "GET", path: "/OAuth2/Koppeltaal/Launch?" + launch.Encode(), user: demoPortal, oauth: true, access: needsCommit, ok: 302},
		{name: "OAuth Token", method: "POST", path: "/OAuth2/Koppeltaal/Token", user: demoModule, body: tokenForm(fx.code), form: true, oauth: true, access: needsCommit, ok: 200},
	}
}

// checkOutage runs every call in both formats while the database is out
// (readable: reads still work) and checks the answers.
func (k *kpClient) checkOutage(fx fixture, readable bool) {
	t := k.t
	t.Helper()
	for _, c := range fx.calls(t) {
		for _, f := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
			r := k.do(c, f)
			served := c.access == needsNothing || (c.access == needsRead && readable)
			if served {
				if r.status != c.ok {
					t.Errorf("%s (%v) during the outage: %s, want %d (it needs no commit)", c.name, f, r, c.ok)
				}
				continue
			}
			if r.status != http.StatusServiceUnavailable {
				t.Errorf("%s (%v) during the outage: %s, want 503", c.name, f, r)
				continue
			}
			if got := r.header.Get("Retry-After"); got != "5" {
				t.Errorf("%s (%v): Retry-After %q, want 5", c.name, f, got)
			}
			if c.oauth {
				var e struct{ Error, Description string }
				if json.Unmarshal(r.body, &e) != nil || e.Error != "temporarily_unavailable" {
					t.Errorf("%s: %s, want the OAuth error temporarily_unavailable", c.name, r.body)
				}
				break // OAuth answers JSON whatever the Accept
			}
			if ct := r.header.Get("Content-Type"); !strings.Contains(ct, map[dstu1.Format]string{dstu1.FormatJSON: "json", dstu1.FormatXML: "xml"}[f]) {
				t.Errorf("%s (%v): Content-Type %q", c.name, f, ct)
			}
			res, err := dstu1.ParseResource(r.body, f)
			if err != nil || res.Type() != "OperationOutcome" || !strings.Contains(string(r.body), "database is unavailable") {
				t.Errorf("%s (%v): %s (%v), want an OperationOutcome saying the database is unavailable", c.name, f, r.body, err)
			}
		}
	}
	if r := k.readyz(); r.status != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the outage: %s", r)
	}
}

// checkRecovered waits until every call works again (the first requests may
// meet connections the outage broke), without a restart of the server.
func (k *kpClient) checkRecovered(fx fixture) {
	t := k.t
	t.Helper()
	eventuallyTrue(t, "/readyz after the database is back", 30*time.Second, func() bool { return k.readyz().status == 200 })
	for _, c := range fx.calls(t) {
		var r answer
		eventuallyTrue(t, c.name+" after the database is back", 20*time.Second, func() bool {
			r = k.do(c, dstu1.FormatJSON)
			return r.status != http.StatusServiceUnavailable
		})
		if r.status != c.ok {
			t.Errorf("%s after the database is back: %s, want %d", c.name, r, c.ok)
		}
	}
}

func TestServeSurvivesPostgresOutages(t *testing.T) {
	c := storetest.NewCluster(t)
	c.Exec("CREATE DATABASE kp")
	base, _, _, stderr := startBinary(t, t.TempDir(), []string{"KOPPELPOORT_DSN=" + c.DSN("kp") + "&connect_timeout=2"})
	k := newKPClient(t, base)
	eventuallyTrue(t, "/readyz at start", 20*time.Second, func() bool { return k.readyz().status == 200 })

	// A crash of the primary (as pg_ctl -m immediate): connections drop, nothing answers.
	fx := k.prepare()
	c.Stop("immediate")
	k.checkOutage(fx, false)
	c.Start()
	k.checkRecovered(fx)

	// Read-only (a standby, or default_transaction_read_only): reads are served.
	fx = k.prepare()
	c.Exec("ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
	eventuallyTrue(t, "a POST refused by the read-only database", 10*time.Second, func() bool {
		return k.do(call{name: "post", method: "POST", path: "/FHIR/Koppeltaal/Mailbox", user: demoEPD, body: newPatientMessage(t)}, dstu1.FormatJSON).status == 503
	})
	k.checkOutage(fx, true)
	if r := k.readyz(); !strings.Contains(string(r.body), "read-only") {
		t.Errorf("/readyz of a read-only database does not say so: %s", r)
	}
	c.Exec("ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
	k.checkRecovered(fx)
	if strings.Contains(stderr.String(), `"status":500`) {
		t.Errorf("the server answered 500 during the outages:\n%s", linesWith(stderr.String(), `"status":500`))
	}
}

func TestServeSurvivesAFullSQLiteDisk(t *testing.T) {
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("needs a small file system of its own: mount tmpfs: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	base, _, _, stderr := startBinary(t, dir, nil)
	k := newKPClient(t, base)
	eventuallyTrue(t, "/readyz at start", 20*time.Second, func() bool { return k.readyz().status == 200 })
	fx := k.prepare()

	filler := filepath.Join(dir, "filler")
	fill(t, filler)
	time.Sleep(300 * time.Millisecond) // the write path trusts its last look at the free space for 100 ms
	k.checkOutage(fx, true)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	k.checkRecovered(fx)
	if strings.Contains(stderr.String(), `"status":500`) {
		t.Errorf("the server answered 500 on the full disk:\n%s", linesWith(stderr.String(), `"status":500`))
	}
}

// fill writes path until the file system is full, to the last block.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, size := range []int{1 << 20, 4 << 10, 512} {
		chunk := make([]byte, size)
		for {
			if _, err := f.Write(chunk); err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatal(err)
				}
				break
			}
		}
	}
}

// linesWith returns the lines of s that contain sub.
func linesWith(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

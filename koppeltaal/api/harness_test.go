package api_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var ctx = context.Background()

// harness is a Koppeltaal server on a real store behind a real HTTP listener.
type harness struct {
	t   testing.TB
	st  *store.Store
	srv *api.Server
	ts  *httptest.Server
}

func newHarness(t testing.TB, b storetest.Backend, cfg koppeltaal.Config) *harness {
	t.Helper()
	return newHarnessOn(t, b.Open(t), cfg)
}

func newHarnessOn(t testing.TB, st *store.Store, cfg koppeltaal.Config) *harness {
	t.Helper()
	return newHarnessRegistering(t, st, cfg, nil)
}

// newHarnessRegistering is newHarnessOn with the koppeltaal_* metrics registered with reg.
func newHarnessRegistering(t testing.TB, st *store.Store, cfg koppeltaal.Config, reg prometheus.Registerer) *harness {
	t.Helper()
	var srv *api.Server
	ts := apitest.NewServer(t, func(public string) http.Handler {
		cfg.PublicURL = public
		var err error
		if srv, err = api.New(ctx, api.Options{Store: st, Config: fastHashes(cfg), Registerer: reg}); err != nil {
			t.Fatalf("api.New: %v", err)
		}
		r := chi.NewRouter()
		srv.Mount(r)
		return r
	})
	return &harness{t: t, st: st, srv: srv, ts: ts}
}

// reply is an HTTP response with its body read.
type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r reply) String() string { return string(r.Body) }

type req struct {
	method, path string
	user, pass   string
	accept       string // default application/xml+fhir
	ctype        string
	body         []byte
}

func (h *harness) do(q req) reply {
	h.t.Helper()
	var body io.Reader
	if q.body != nil {
		body = bytes.NewReader(q.body)
	}
	hr, err := http.NewRequest(q.method, h.ts.URL+q.path, body)
	if err != nil {
		h.t.Fatal(err)
	}
	if q.user != "" {
		hr.SetBasicAuth(q.user, q.pass)
	}
	if q.accept != "" {
		hr.Header.Set("Accept", q.accept)
	}
	if q.ctype != "" {
		hr.Header.Set("Content-Type", q.ctype)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		h.t.Fatalf("%s %s: %v", q.method, q.path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: b}
}

// fmtOf is the format of a reply by its Content-Type.
func fmtOf(t testing.TB, r reply) dstu1.Format {
	t.Helper()
	ct := r.Header.Get("Content-Type")
	switch {
	case strings.HasPrefix(ct, "application/json"):
		return dstu1.FormatJSON
	case strings.HasPrefix(ct, "application/xml+fhir"):
		return dstu1.FormatXML
	}
	t.Fatalf("unexpected Content-Type %q (status %d): %s", ct, r.Status, r.Body)
	return 0
}

func bundleOf(t testing.TB, r reply) *dstu1.Bundle {
	t.Helper()
	b, err := dstu1.ParseBundle(r.Body, fmtOf(t, r))
	if err != nil {
		t.Fatalf("reply is not a bundle (%v): %s", err, r.Body)
	}
	return b
}

func resourceOf(t testing.TB, r reply) *dstu1.Resource {
	t.Helper()
	res, err := dstu1.ParseResource(r.Body, fmtOf(t, r))
	if err != nil {
		t.Fatalf("reply is not a resource (%v): %s", err, r.Body)
	}
	return res
}

// outcome returns the issue details of an OperationOutcome reply.
func outcome(t testing.TB, r reply) []string {
	t.Helper()
	res := resourceOf(t, r)
	if res.Type() != "OperationOutcome" {
		t.Fatalf("reply is a %s, not an OperationOutcome: %s", res.Type(), r.Body)
	}
	var out []string
	res.Each("issue", func(n *dstu1.Node) bool {
		d := n.Str("details")
		if ref := n.Extension(dstu1.ExtIssueResource).ExtensionValue().Str("reference"); ref != "" {
			d += " @" + ref
		}
		out = append(out, d)
		return true
	})
	return out
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// convert re-encodes a bundle in format f (to drive the same scenario in JSON).
func convert(t testing.TB, body []byte, f dstu1.Format) []byte {
	t.Helper()
	b, err := dstu1.ParseBundle(body, dstu1.Sniff(body))
	if err != nil {
		t.Fatal(err)
	}
	return koppeltaal.EncodeBundle(b, f)
}

func ctypeOf(f dstu1.Format) string {
	if f == dstu1.FormatJSON {
		return "application/json+fhir"
	}
	return "application/xml+fhir"
}

// messageCount counts stored messages (all domains).
func (h *harness) messageCount() int64 {
	h.t.Helper()
	var n int64
	if err := h.st.View(ctx, func(tx *store.Tx) (err error) { n, err = tx.CountMessages(ctx); return }); err != nil {
		h.t.Fatal(err)
	}
	return n
}

func header(t testing.TB, b *dstu1.Bundle) *dstu1.MessageHeader {
	t.Helper()
	mh := b.MessageHeader()
	if mh == nil {
		t.Fatalf("bundle has no MessageHeader first: %d entries", len(b.Entries))
	}
	return mh
}

// selfLinks maps each resource entry's unversioned URL to its version.
func selfLinks(b *dstu1.Bundle) map[string]string {
	out := map[string]string{}
	for _, e := range b.Entries[1:] {
		u, v := dstu1.SplitHistory(e.SelfLink())
		out[u] = v
	}
	return out
}

func getenv(k string) string { return os.Getenv(k) }

type atomicCounter struct{ n atomic.Int64 }

func (c *atomicCounter) next() int64 { return c.n.Add(1) }

var (
	hashMu    sync.Mutex
	hashCache = map[string]string{}
)

// fastHashes replaces plain-text passwords by bcrypt hashes of the lowest cost,
// so tests (and especially -race runs) do not spend their time in bcrypt.
// Hashing plain-text passwords itself is tested in package koppeltaal.
func fastHashes(cfg koppeltaal.Config) koppeltaal.Config {
	hashMu.Lock()
	defer hashMu.Unlock()
	cfg.Instances = append([]koppeltaal.InstanceConfig(nil), cfg.Instances...)
	for i, in := range cfg.Instances {
		if in.Password == "" {
			continue
		}
		h, ok := hashCache[in.Password]
		if !ok {
			b, err := bcrypt.GenerateFromPassword([]byte(in.Password), bcrypt.MinCost)
			if err != nil {
				panic(err)
			}
			h = string(b)
			hashCache[in.Password] = h
		}
		cfg.Instances[i].Password, cfg.Instances[i].PasswordHash = "", h
	}
	return cfg
}

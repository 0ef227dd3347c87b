package activity_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/activity"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api/apitest"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var ctx = context.Background()

var (
	d1Portal = [2]string{"portal@d1", "p1"}
	d2Portal = [2]string{"portal@d2", "p2"}
	d1Game   = [2]string{"game@d1", "g1"}
)

func config() koppeltaal.Config {
	ad := []string{"CreateOrUpdateActivityDefinition"}
	return koppeltaal.Config{
		Domains:      []koppeltaal.DomainConfig{{Name: "D1"}, {Name: "D2"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Portal"}, {ID: "Game"}},
		Instances: []koppeltaal.InstanceConfig{
			{Application: "Portal", Domain: "D1", Username: d1Portal[0], Password: d1Portal[1], Subscriptions: ad},
			{Application: "Game", Domain: "D1", Username: d1Game[0], Password: d1Game[1]},
			{Application: "Portal", Domain: "D2", Username: d2Portal[0], Password: d2Portal[1], Subscriptions: ad},
			{Application: "Game", Domain: "D2", Username: "game@d2", Password: "g2"},
		},
		ActivityDefinitions: []koppeltaal.ActivityDefinitionConfig{
			{Identifier: "seeded", Domain: "D1", Application: "Game", Name: "Seeded game", Kind: "Game",
				SubActivities: []koppeltaal.SubActivityConfig{{Identifier: "lvl1", Name: "Level 1"}}},
		},
	}
}

type env struct {
	t   testing.TB
	st  *store.Store
	reg *activity.Registry
	ts  *httptest.Server
	cfg koppeltaal.Config
}

func newEnv(t testing.TB, b storetest.Backend) *env { return newEnvWith(t, b, config()) }

// newEnvWith serves cfg with the registry and seeds its definitions.
func newEnvWith(t testing.TB, b storetest.Backend, cfg koppeltaal.Config) *env {
	t.Helper()
	st := b.Open(t)
	reg, err := activity.New(activity.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	ts := apitest.Serve(t, api.Options{Store: st, Config: cfg, Extensions: []func(*api.Server, chi.Router){reg.Extension}})
	if res, err := reg.Seed(ctx, cfg, ts.URL+api.Prefix); err != nil || res.Created != len(cfg.ActivityDefinitions) {
		t.Fatalf("seed: %+v %v", res, err)
	}
	return &env{t: t, st: st, reg: reg, ts: ts, cfg: cfg}
}

type reply struct {
	Status int
	Header http.Header
	Body   []byte
}

func (e *env) do(method, path string, cred [2]string, f dstu1.Format, body []byte) reply {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		rd = strings.NewReader(string(body))
	}
	hr, _ := http.NewRequest(method, e.ts.URL+path, rd)
	hr.SetBasicAuth(cred[0], cred[1])
	mt := map[dstu1.Format]string{dstu1.FormatXML: "application/xml+fhir", dstu1.FormatJSON: "application/json"}[f]
	hr.Header.Set("Accept", mt)
	if body != nil {
		hr.Header.Set("Content-Type", mt)
	}
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, b}
}

func (e *env) list(cred [2]string, f dstu1.Format, query string) *dstu1.Bundle {
	e.t.Helper()
	r := e.do("GET", "/FHIR/Koppeltaal/Other/_search?code=ActivityDefinition"+query, cred, f, nil)
	if r.Status != 200 {
		e.t.Fatalf("list: %d %s", r.Status, r.Body)
	}
	if f == dstu1.FormatXML && !strings.HasPrefix(string(r.Body), "<feed") {
		e.t.Fatalf("XML list must start with <feed: %.60s", r.Body)
	}
	b, err := dstu1.ParseBundle(r.Body, f)
	if err != nil {
		e.t.Fatalf("list: %v", err)
	}
	return b
}

func identifiers(b *dstu1.Bundle) []string {
	var out []string
	for _, en := range b.Entries {
		out = append(out, en.Resource.Extension(activity.ExtIdentifier).ExtensionValue().Value)
	}
	return out
}

func (e *env) messages() int64 {
	var n int64
	_ = e.st.View(ctx, func(tx *store.Tx) (err error) { n, err = tx.CountMessages(ctx); return })
	return n
}

func fixture(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var versioned = regexp.MustCompile(`/FHIR/Koppeltaal/Other/ActivityDefinition:(\d+)/_history/(\S+)$`)

func TestCreateUpdateArchive(t *testing.T) {
	for _, f := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
		t.Run(map[dstu1.Format]string{dstu1.FormatXML: "xml", dstu1.FormatJSON: "json"}[f], func(t *testing.T) {
			storetest.Run(t, func(t *testing.T, b storetest.Backend) {
				e := newEnv(t, b)
				if got := identifiers(e.list(d1Portal, f, "")); len(got) != 1 || got[0] != "seeded" {
					t.Fatalf("seeded list: %v", got)
				}
				// The Python connector's create, re-encoded in the format under test.
				res, err := dstu1.ParseResource(fixture(t, "python-connector-create-activitydefinition.json"), dstu1.FormatJSON)
				if err != nil {
					t.Fatal(err)
				}
				before := e.messages()
				r := e.do("POST", "/FHIR/Koppeltaal/Other", d1Portal, f, koppeltaal.EncodeResource(res, f))
				loc := r.Header.Get("Content-Location")
				m := versioned.FindStringSubmatch(loc)
				if r.Status != http.StatusCreated || m == nil {
					t.Fatalf("create: %d Content-Location=%q %s", r.Status, loc, r.Body)
				}
				// The application is unknown to the server: accepted, visible in its own domain only.
				if got := identifiers(e.list(d1Portal, f, "")); len(got) != 2 {
					t.Fatalf("list after create: %v", got)
				}
				if got := identifiers(e.list(d2Portal, f, "")); len(got) != 1 || got[0] != "seeded" {
					t.Fatalf("D2 sees %v", got)
				}
				if e.messages() != before+1 {
					t.Fatalf("create published %d messages, want 1", e.messages()-before)
				}
				// Update on the versioned URL: archive it.
				upd := strings.Replace(string(koppeltaal.EncodeResource(res, f)), "IsArchived", "IsArchived", 1)
				res2, _ := dstu1.ParseResource([]byte(upd), f)
				res2.Extension(activity.ExtIsArchived).ExtensionValue().Value = "true"
				path := strings.TrimPrefix(loc, e.ts.URL)
				r2 := e.do("PUT", path, d1Portal, f, koppeltaal.EncodeResource(res2, f))
				m2 := versioned.FindStringSubmatch(r2.Header.Get("Content-Location"))
				if r2.Status != 200 || m2 == nil || m2[1] != m[1] || !(m2[2] > m[2]) {
					t.Fatalf("update: %d %q (was %q) %s", r2.Status, r2.Header.Get("Content-Location"), loc, r2.Body)
				}
				if got := identifiers(e.list(d1Portal, f, "")); len(got) != 1 {
					t.Fatalf("archived definition still listed: %v", got)
				}
				if got := identifiers(e.list(d1Portal, f, "&includearchived=yes")); len(got) != 2 {
					t.Fatalf("includearchived: %v", got)
				}
				// The JS Test Game's list form.
				if r := e.do("GET", "/FHIR/Koppeltaal/Other?code=ActivityDefinition", d1Game, f, nil); r.Status != 200 {
					t.Fatalf("Other?code= form: %d", r.Status)
				}
				// Stale version: 409, nothing changes.
				before = e.messages()
				r3 := e.do("PUT", path, d1Portal, f, koppeltaal.EncodeResource(res, f))
				// Clients compare issue[0].details exactly: no final period (CLIENTS.md).
				if oo, err := dstu1.ParseResource(r3.Body, f); r3.Status != http.StatusConflict || err != nil ||
					oo.Str("issue", "details") != "The specified resource version is not correct" {
					t.Fatalf("stale update: %d %s", r3.Status, r3.Body)
				}
				if got := identifiers(e.list(d1Portal, f, "")); len(got) != 1 || e.messages() != before {
					t.Fatal("a refused update changed something")
				}
				// Old version is still readable; the current one too.
				if r := e.do("GET", path, d1Portal, f, nil); r.Status != 200 {
					t.Fatalf("vread: %d", r.Status)
				}
				// The same identifier again in D1 is refused, in D2 accepted.
				if r := e.do("POST", "/FHIR/Koppeltaal/Other", d1Portal, f, koppeltaal.EncodeResource(res, f)); r.Status != http.StatusConflict {
					t.Fatalf("duplicate identifier in domain: %d %s", r.Status, r.Body)
				}
				if r := e.do("POST", "/FHIR/Koppeltaal/Other", d2Portal, f, koppeltaal.EncodeResource(res, f)); r.Status != http.StatusCreated {
					t.Fatalf("same identifier in another domain: %d %s", r.Status, r.Body)
				}
			})
		})
	}
}

func TestPublishedMessageAndDomainScope(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		f := dstu1.FormatXML
		// The seeded definition of Game (instances in D1 and D2, not domain specific) is visible in D2
		// and was announced in both domains.
		list := e.list(d2Portal, f, "")
		if got := identifiers(list); len(got) != 1 || got[0] != "seeded" {
			t.Fatalf("D2 list: %v", got)
		}
		if missing := list.MissingRequired(); missing != nil {
			t.Fatalf("list misses %q", missing)
		}
		for i, cred := range [][2]string{d1Portal, d2Portal} {
			f := []dstu1.Format{dstu1.FormatXML, dstu1.FormatJSON}[i]
			r := e.do("GET", "/FHIR/Koppeltaal/MessageHeader/_search?_query=MessageHeader.GetNextNewAndClaim", cred, f, nil)
			bun, err := dstu1.ParseBundle(r.Body, f)
			if err != nil || bun.MessageHeader() == nil {
				t.Fatalf("%s: no CreateOrUpdateActivityDefinition: %d %s", cred[0], r.Status, r.Body)
			}
			// The server writes both entries: every element DSTU1 marks 1..1 must be there (CLIENTS.md).
			if missing := bun.MissingRequired(); missing != nil {
				t.Fatalf("%s: the server's message misses %q", f, missing)
			}
			mh := bun.MessageHeader()
			src := mh.Source()
			if mh.EventCode() != "CreateOrUpdateActivityDefinition" || src != koppeltaal.InformationSource || mh.Patient() != "" {
				t.Fatalf("message header: %s %+v", mh.EventCode(), src)
			}
			if d := mh.Data(); len(d) != 1 || !versioned.MatchString(d[0]) || bun.Entries[1].SelfLink() != d[0] {
				t.Fatalf("data %v / self %s", d, bun.Entries[1].SelfLink())
			}
			if dom, _ := bun.Domain(); dom != cred[0][len("portal@"):] && !strings.EqualFold(dom, cred[0][len("portal@"):]) {
				t.Fatalf("message domain %s for %s", dom, cred[0])
			}
		}
		// A domain-specific definition stays in its domain.
		c := e.cfg.ActivityDefinitions[0]
		c.Identifier, c.DomainSpecific = "only-d1", true
		body := koppeltaal.EncodeResource(activity.FromConfig(c), f)
		if r := e.do("POST", "/FHIR/Koppeltaal/Other", d1Game, f, body); r.Status != http.StatusCreated {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		if got := identifiers(e.list(d2Portal, f, "")); len(got) != 1 {
			t.Fatalf("domain-specific definition leaked to D2: %v", got)
		}
		if got := identifiers(e.list(d1Portal, f, "")); len(got) != 2 {
			t.Fatalf("D1: %v", got)
		}
		// Seeding again changes nothing.
		n := e.messages()
		if res, err := e.reg.Seed(ctx, e.cfg, e.ts.URL+api.Prefix); err != nil || res.Created+res.Updated != 0 || e.messages() != n {
			t.Fatalf("second seed: %+v %v", res, err)
		}
		// A changed seed updates and publishes.
		e.cfg.ActivityDefinitions[0].Name = "Renamed"
		if res, err := e.reg.Seed(ctx, e.cfg, e.ts.URL+api.Prefix); err != nil || res.Updated != 1 || e.messages() <= n {
			t.Fatalf("changed seed: %+v %v", res, err)
		}
	})
}

func TestBadInput(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		f := dstu1.FormatJSON
		good := string(fixture(t, "python-connector-create-activitydefinition.json"))
		cases := []struct {
			name, body string
			status     int
		}{
			{"not an Other", `{"resourceType":"Patient"}`, 400},
			{"storage item", strings.Replace(good, `"code": "ActivityDefinition"`, `"code": "StorageItem"`, 1), 400},
			{"no name", strings.Replace(good, "ActivityDefinition#ActivityName", "ActivityDefinition#Nope", 1), 400},
			{"no application", strings.Replace(good, "ActivityDefinition#Application", "ActivityDefinition#Nope", 1), 400},
			{"bad boolean", strings.Replace(good, `"valueBoolean": true`, `"valueBoolean": "maybe"`, 1), 400},
			{"garbage", `{"resourceType":`, 400},
		}
		n := e.messages()
		for _, c := range cases {
			r := e.do("POST", "/FHIR/Koppeltaal/Other", d1Portal, f, []byte(c.body))
			if r.Status != c.status || !strings.HasPrefix(r.Header.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
			}
		}
		if got := identifiers(e.list(d1Portal, f, "&includearchived=yes")); len(got) != 1 || e.messages() != n {
			t.Fatalf("bad input changed something: %v", got)
		}
		if r := e.do("GET", "/FHIR/Koppeltaal/Other/_search?code=StorageItem", d1Portal, f, nil); r.Status != 400 {
			t.Fatalf("StorageItem search: %d", r.Status)
		}
		if r := e.do("PUT", "/FHIR/Koppeltaal/Other/ActivityDefinition:999", d1Portal, f, []byte(good)); r.Status != 404 {
			t.Fatalf("update of a missing definition: %d", r.Status)
		}
		if r := e.do("GET", "/FHIR/Koppeltaal/Other/_search?code=ActivityDefinition", [2]string{"portal@d1", "wrong"}, f, nil); r.Status != 401 {
			t.Fatalf("wrong password: %d", r.Status)
		}
	})
}

// TestEdgeExampleAccepted creates the ActivityDefinition of the edge server's
// published message (the fullest example) and reads it back unchanged.
func TestEdgeExampleAccepted(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b)
		bun, err := dstu1.ParseBundle(fixture(t, "createorupdateactivitydefinition-message-edge.xml"), dstu1.FormatXML)
		if err != nil {
			t.Fatal(err)
		}
		res := bun.Entries[1].Resource
		r := e.do("POST", "/FHIR/Koppeltaal/Other", d1Portal, dstu1.FormatXML, koppeltaal.EncodeResource(res, dstu1.FormatXML))
		if r.Status != 201 {
			t.Fatalf("create: %d %s", r.Status, r.Body)
		}
		back := e.do("GET", strings.TrimPrefix(r.Header.Get("Content-Location"), e.ts.URL), d1Portal, dstu1.FormatXML, nil)
		got, err := dstu1.ParseResource(back.Body, dstu1.FormatXML)
		if err != nil {
			t.Fatal(err)
		}
		if ok, diff := dstu1.EqualResource(got, res); !ok {
			t.Fatalf("read back differs: %s", diff)
		}
	})
}

package storage_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/api"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/koppeltaal/oauth"
	"github.com/koppelpoort/koppelpoort/koppeltaal/storage"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

var ctx = context.Background()

const (
	patientA = "https://portal.example/fhir/Koppeltaal/Patient/A"
	patientB = "https://portal.example/fhir/Koppeltaal/Patient/B"
	// otherGame is the demo game's instance in a second domain.
	otherGame, otherGamePass = "game@other", "other-game"
)

// env is the Koppeltaal API with the Storage Service and OAuth on a real store behind a real listener.
type env struct {
	t   *testing.T
	st  *store.Store
	url string
	rec *audit.Recorder
}

func newEnv(t *testing.T, b storetest.Backend, limits koppeltaal.StorageConfig) *env {
	st := b.Open(t)
	cfg := koppeltaal.DemoConfig()
	cfg.Domains = append(cfg.Domains, koppeltaal.DomainConfig{Name: "Other"})
	cfg.Instances = append(cfg.Instances, koppeltaal.InstanceConfig{Application: "DemoGame", Domain: "Other",
		Username: otherGame, Password: otherGamePass, Subscriptions: []string{"CreateOrUpdateCarePlan"}})
	cfg.BcryptCost = 4
	cfg.Storage = limits
	r := chi.NewRouter()
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	cfg.WithDemoRoot(ts.URL)
	cfg.PublicURL = ts.URL
	if _, err := koppeltaal.Apply(ctx, cfg, st, nil); err != nil {
		t.Fatal(err)
	}
	sso, err := oauth.New(oauth.Options{Store: st, Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := audit.New(audit.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rec.Close() })
	svc, err := storage.New(storage.Options{Store: st, Config: cfg.Storage, Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := api.New(ctx, api.Options{Store: st, Config: cfg, SkipApply: true, Bearer: sso, Audit: rec,
		Extensions: []func(*api.Server, chi.Router){sso.Extension, svc.Extension}})
	if err != nil {
		t.Fatal(err)
	}
	srv.Mount(r)
	sso.Mount(r)
	return &env{t: t, st: st, url: ts.URL, rec: rec}
}

func (e *env) client(user, pass string, f dstu1.Format) *client.Client {
	return &client.Client{BaseURL: e.url, Username: user, Password: pass, Format: f}
}

func (e *env) game(f dstu1.Format) *client.Client {
	return e.client(koppeltaal.DemoGameUser, koppeltaal.DemoGamePassword, f)
}

// token runs the web launch for patient (portal → Launch → Authorize → Token) and returns the game's access token.
func (e *env) token(patient string) string {
	e.t.Helper()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {"DemoGame"}, "patient": {patient}, "user": {patient}, "resource": {koppeltaal.DemoActivity}}
	req, _ := http.NewRequest("GET", e.url+"/OAuth2/Koppeltaal/Launch?"+q.Encode(), nil)
	req.SetBasicAuth(koppeltaal.DemoPortalUser, koppeltaal.DemoPortalPassword)
	launch := e.redirectParam(noRedirect, req, "launch")
	game := e.url + koppeltaal.DemoGamePath
	q = url.Values{"response_type": {"code"}, "client_id": {"DemoGame"}, "redirect_uri": {game},
		"scope": {"patient/*.read launch:" + launch}, "state": {"s"}}
	req, _ = http.NewRequest("GET", e.url+"/OAuth2/Koppeltaal/Authorize?"+q.Encode(), nil)
	code := e.redirectParam(noRedirect, req, "code")
	q = url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {game}}
	resp, err := http.Get(e.url + "/OAuth2/Koppeltaal/Token?" + q.Encode())
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.AccessToken == "" {
		e.t.Fatalf("token reply %d: %v", resp.StatusCode, err)
	}
	return tok.AccessToken
}

func (e *env) redirectParam(c *http.Client, req *http.Request, name string) string {
	e.t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get(name) == "" {
		e.t.Fatalf("%s %s: %d, Location %q has no %s", req.Method, req.URL.Path, resp.StatusCode, resp.Header.Get("Location"), name)
	}
	return loc.Query().Get(name)
}

// do sends a raw request and returns status and body.
func (e *env) do(method, path, auth, ctype string, body []byte) (int, http.Header, []byte) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.url+api.Prefix+path, bytes.NewReader(body))
	if strings.HasPrefix(auth, "Bearer ") {
		req.Header.Set("Authorization", auth)
	} else if u, p, ok := strings.Cut(auth, ":"); ok {
		req.SetBasicAuth(u, p)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (e *env) countItems() int {
	e.t.Helper()
	var n int
	if err := e.st.View(ctx, func(tx *store.Tx) error { return tx.Get(ctx, &n, "SELECT COUNT(*) FROM storage_items") }); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func status(err error) int {
	var ce *client.Error
	if errors.As(err, &ce) {
		return ce.Status
	}
	return 0
}

func item(patient, key, content string) dstu1.StorageItem {
	return dstu1.StorageItem{Patient: patient, ObjectType: "GameState", ObjectKey: key, ContentType: "application/json", Content: []byte(content)}
}

// The Go client creates, reads, updates, searches and deletes items in both
// formats; the server sets ApplicationIdentifier and DomainName whatever the
// client sends, and a stale version is refused.
func TestStorageItemLifecycle(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, koppeltaal.StorageConfig{})
		for _, f := range []dstu1.Format{dstu1.FormatJSON, dstu1.FormatXML} {
			c := e.game(f)
			in := item(patientA, "level-"+f.String(), `{"score":1}`)
			in.ApplicationIdentifier, in.DomainName = "Forged", "Elsewhere"
			created, err := c.CreateItem(ctx, in)
			if err != nil {
				t.Fatalf("%s create: %v", f, err)
			}
			if created.ApplicationIdentifier != "DemoGame" || created.DomainName != koppeltaal.DemoDomain || string(created.Content) != `{"score":1}` ||
				created.Patient != patientA || !strings.Contains(created.URL, "/Other/StorageItem:") || created.LastModified == "" {
				t.Fatalf("%s created: %+v", f, created)
			}
			got, err := c.Item(ctx, created.URL)
			if err != nil || string(got.Content) != `{"score":1}` || got.URL != created.URL {
				t.Fatalf("%s read: %+v %v", f, got, err)
			}
			upd := item(patientA, "level-"+f.String(), `{"score":2}`)
			updated, err := c.UpdateItem(ctx, created.URL, upd)
			if err != nil || string(updated.Content) != `{"score":2}` || updated.URL == created.URL {
				t.Fatalf("%s update: %+v %v", f, updated, err)
			}
			// Clients compare issue[0].details exactly (CLIENTS.md): the client joins the issues with "; ".
			var ce *client.Error
			if _, err := c.UpdateItem(ctx, created.URL, upd); !errors.As(err, &ce) || ce.Status != http.StatusConflict ||
				!strings.HasPrefix(ce.Outcome, "The specified resource version is not correct; ") {
				t.Fatalf("%s update with a stale version: %v, want 409 with exactly the stale-version text first", f, err)
			}
			if _, err := c.CreateItem(ctx, upd); status(err) != http.StatusConflict {
				t.Fatalf("%s second item with the same type and key: %v, want 409", f, err)
			}
			list, err := c.SearchItems(ctx, patientA, url.Values{"objectKey": {"level-" + f.String()}})
			if err != nil || len(list) != 1 || string(list[0].Content) != `{"score":2}` || list[0].URL != updated.URL {
				t.Fatalf("%s search: %+v %v", f, list, err)
			}
			if err := c.DeleteItem(ctx, updated.URL); err != nil {
				t.Fatalf("%s delete: %v", f, err)
			}
			if _, err := c.Item(ctx, created.URL); status(err) != http.StatusNotFound {
				t.Fatalf("%s read after delete: %v, want 404", f, err)
			}
		}
		if n := e.countItems(); n != 0 {
			t.Fatalf("%d items left", n)
		}
	})
}

// Items are the owning instance's: another application in the domain and the
// same application in another domain get 404 on read, update and delete and
// see nothing in a search; a Bearer token reaches only its launch patient.
func TestStorageIsolation(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, koppeltaal.StorageConfig{})
		game := e.game(dstu1.FormatJSON)
		a, err := game.CreateItem(ctx, item(patientA, "a", "A"))
		if err != nil {
			t.Fatal(err)
		}
		bItem, err := game.CreateItem(ctx, item(patientB, "b", "B"))
		if err != nil {
			t.Fatal(err)
		}
		for name, c := range map[string]*client.Client{
			"portal, same domain": e.client(koppeltaal.DemoPortalUser, koppeltaal.DemoPortalPassword, dstu1.FormatJSON),
			"game, other domain":  e.client(otherGame, otherGamePass, dstu1.FormatJSON),
		} {
			if _, err := c.Item(ctx, a.URL); status(err) != http.StatusNotFound {
				t.Errorf("%s read: %v, want 404", name, err)
			}
			if _, err := c.UpdateItem(ctx, a.URL, item(patientA, "a", "X")); status(err) != http.StatusNotFound {
				t.Errorf("%s update: %v, want 404", name, err)
			}
			if err := c.DeleteItem(ctx, a.URL); status(err) != http.StatusNotFound {
				t.Errorf("%s delete: %v, want 404", name, err)
			}
			if list, err := c.SearchItems(ctx, patientA, nil); err != nil || len(list) != 0 {
				t.Errorf("%s search: %d items, %v", name, len(list), err)
			}
		}
		bearer := "Bearer " + e.token(patientA)
		if st, _, body := e.do("GET", "/Other/StorageItem:"+idOf(a.URL)+"?code=StorageItem", bearer, "", nil); st != 200 || !bytes.Contains(body, []byte("StorageItem")) {
			t.Fatalf("token of A reads A's item: %d %s", st, body)
		}
		if st, _, _ := e.do("GET", "/Other/StorageItem:"+idOf(bItem.URL)+"?code=StorageItem", bearer, "", nil); st != 404 {
			t.Fatalf("token of A reads B's item: %d, want 404", st)
		}
		if st, _, _ := e.do("DELETE", "/Other/StorageItem:"+idOf(bItem.URL), bearer, "", nil); st != 404 {
			t.Fatalf("token of A deletes B's item: %d, want 404", st)
		}
		if st, _, _ := e.do("GET", "/Other/_search?code=StorageItem&patient="+url.QueryEscape(patientB), bearer, "", nil); st != 403 {
			t.Fatalf("token of A searches B: %d, want 403", st)
		}
		if st, _, body := e.do("GET", "/Other/_search?code=StorageItem", bearer, "", nil); st != 200 || !bytes.Contains(body, []byte(`"totalResults": "1"`)) && !bytes.Contains(body, []byte(`"totalResults":"1"`)) {
			t.Fatalf("token of A searches its own patient: %d %s", st, body)
		}
		posted := item(patientB, "c", "C").Resource().JSON()
		if st, _, _ := e.do("POST", "/Other?code=StorageItem", bearer, "application/json", posted); st != 403 {
			t.Fatalf("token of A creates an item for B: %d, want 403", st)
		}
		if n := e.countItems(); n != 2 {
			t.Fatalf("%d items, want 2 (refused writes changed something)", n)
		}
	})
}

func idOf(u string) string {
	base, _ := dstu1.SplitHistory(u)
	return base[strings.LastIndex(base, ":")+1:]
}

// Limits and bad input: each refusal is an OperationOutcome with the right
// status, and nothing is written.
func TestStorageLimitsAndBadInput(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, koppeltaal.StorageConfig{MaxItemBytes: 100, MaxPatientBytes: 250, MaxPatientItems: 3})
		game := koppeltaal.DemoGameUser + ":" + koppeltaal.DemoGamePassword
		post := func(it dstu1.StorageItem) (int, []byte) {
			st, _, body := e.do("POST", "/Other?code=StorageItem", game, "application/json", it.Resource().JSON())
			return st, body
		}
		if st, body := post(item(patientA, "big", strings.Repeat("x", 101))); st != 413 || !bytes.Contains(body, []byte("limit is 100 bytes")) {
			t.Fatalf("item over max_item_bytes: %d %s", st, body)
		}
		for i, k := range []string{"k1", "k2"} {
			if st, body := post(item(patientA, k, strings.Repeat("x", 100))); st != 201 {
				t.Fatalf("item %d: %d %s", i, st, body)
			}
		}
		if st, body := post(item(patientA, "k3", strings.Repeat("x", 51))); st != 403 || !bytes.Contains(body, []byte("quota")) {
			t.Fatalf("item over max_patient_bytes: %d %s", st, body)
		}
		if st, body := post(item(patientA, "k3", "x")); st != 201 {
			t.Fatalf("third item: %d %s", st, body)
		}
		if st, body := post(item(patientA, "k4", "x")); st != 403 || !bytes.Contains(body, []byte("quota of 3 storage items")) {
			t.Fatalf("item over max_patient_items: %d %s", st, body)
		}
		if st, _ := post(item(patientB, "k1", "x")); st != 201 {
			t.Fatalf("another patient has its own quota: %d", st)
		}
		bad := map[string][]byte{
			"no patient":        item("", "k", "x").Resource().JSON(),
			"no contentType":    dstu1.StorageItem{Patient: patientA, Content: []byte("x")}.Resource().JSON(),
			"bad contentType":   dstu1.StorageItem{Patient: patientA, ContentType: "not a type", Content: []byte("x")}.Resource().JSON(),
			"not base64":        bytes.Replace(item(patientA, "k", "x").Resource().JSON(), []byte(`"eA=="`), []byte(`"%%%"`), 1),
			"not a StorageItem": []byte(`{"resourceType":"Patient"}`),
			"not FHIR":          []byte(`{"x":`),
		}
		for name, body := range bad {
			st, h, reply := e.do("POST", "/Other?code=StorageItem", game, "application/json", body)
			if st != 400 || !strings.Contains(h.Get("Content-Type"), "json") || !bytes.Contains(reply, []byte("OperationOutcome")) {
				t.Errorf("%s: %d %s %s", name, st, h.Get("Content-Type"), reply)
			}
		}
		if n := e.countItems(); n != 4 {
			t.Fatalf("%d items, want 4", n)
		}
	})
}

// The search arguments of SPEC.md §9 with the parameter names we chose.
func TestStorageSearchArguments(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, koppeltaal.StorageConfig{})
		c := e.game(dstu1.FormatJSON)
		var urls []string
		for _, k := range []string{"level-1", "level-2", "badge-level", "other"} {
			it := item(patientA, k, k)
			if k == "other" {
				it.ObjectType = "Settings"
			}
			got, err := c.CreateItem(ctx, it)
			if err != nil {
				t.Fatal(err)
			}
			urls = append(urls, got.URL)
		}
		first, err := c.Item(ctx, urls[0])
		if err != nil {
			t.Fatal(err)
		}
		keys := func(params url.Values) string {
			t.Helper()
			list, err := c.SearchItems(ctx, patientA, params)
			if err != nil {
				t.Fatalf("%v: %v", params, err)
			}
			var ks []string
			for _, it := range list {
				ks = append(ks, it.ObjectKey)
			}
			return strings.Join(ks, ",")
		}
		for _, tc := range []struct {
			params url.Values
			want   string
		}{
			{nil, "level-1,level-2,badge-level,other"},
			{url.Values{"objectType": {"Settings"}}, "other"},
			{url.Values{"objectKey": {"level-2"}}, "level-2"},
			{url.Values{"objectKey:startswith": {"level"}}, "level-1,level-2"},
			{url.Values{"objectKey:contains": {"level"}}, "level-1,level-2,badge-level"},
			{url.Values{"objectKey:contains": {"%"}}, ""},
			{url.Values{"_id": {idOf(urls[1])}}, "level-2"},
			{url.Values{"_sort:desc": {"lastModified"}}, "other,badge-level,level-2,level-1"},
			{url.Values{"lastModified": {"gt" + first.LastModified}}, "level-2,badge-level,other"},
			{url.Values{"lastModified": {"le" + first.LastModified}}, "level-1"},
			{url.Values{"lastModified": {first.LastModified}}, "level-1"},
			{url.Values{"_count": {"2"}, "page": {"2"}}, "badge-level,other"},
		} {
			if got := keys(tc.params); got != tc.want {
				t.Errorf("%v: %q, want %q", tc.params, got, tc.want)
			}
		}
		for _, bad := range []string{"lastModified=gtyesterday", "_sort=objectKey", "_id=x"} {
			if st, _, _ := e.do("GET", "/Other/_search?code=StorageItem&patient="+url.QueryEscape(patientA)+"&"+bad,
				koppeltaal.DemoGameUser+":"+koppeltaal.DemoGamePassword, "", nil); st != 400 {
				t.Errorf("%s: %d, want 400", bad, st)
			}
		}
	})
}

// The Binary variant: raw content in, the same bytes out; a FHIR Binary body;
// the item is the same one the Other API shows.
func TestStorageBinary(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, koppeltaal.StorageConfig{})
		game := koppeltaal.DemoGameUser + ":" + koppeltaal.DemoGamePassword
		raw := []byte{0, 1, 2, 0xff, 'p', 'n', 'g'}
		q := "?patient=" + url.QueryEscape(patientA) + "&objectType=Avatar&objectKey=me"
		st, h, _ := e.do("POST", "/Binary"+q, game, "image/png", raw)
		if st != 201 || !strings.Contains(h.Get("Location"), "/Binary/") {
			t.Fatalf("post binary: %d %v", st, h)
		}
		loc := h.Get("Location")
		path := strings.TrimPrefix(loc, e.url+api.Prefix)
		st, h, body := e.do("GET", path, game, "", nil)
		if st != 200 || !bytes.Equal(body, raw) || h.Get("Content-Type") != "image/png" {
			t.Fatalf("get binary: %d %q %q", st, h.Get("Content-Type"), body)
		}
		id := idOf(strings.Replace(strings.Split(path, "/_history/")[0], "/Binary/", ":", 1))
		st, _, body = e.do("GET", "/Other/StorageItem:"+id+"?code=StorageItem", game, "", nil)
		if st != 200 || !bytes.Contains(body, []byte(`"Avatar"`)) {
			t.Fatalf("the Binary as a StorageItem: %d %s", st, body)
		}
		fhirBody := []byte(`{"resourceType":"Binary","contentType":"text/plain","content":"aGVsbG8="}`)
		if st, _, body := e.do("PUT", "/Binary/"+id, game, "application/json+fhir", fhirBody); st != 200 {
			t.Fatalf("put FHIR binary: %d %s", st, body)
		}
		req := "/Binary/" + id + "?_format=json"
		st, _, body = e.do("GET", req, game, "", nil)
		if st != 200 || !bytes.Contains(body, []byte(`"content":"aGVsbG8="`)) || !bytes.Contains(body, []byte(`"contentType":"text/plain"`)) {
			t.Fatalf("get as FHIR Binary: %d %s", st, body)
		}
		if st, _, _ := e.do("DELETE", "/Binary/"+id+"?patient="+url.QueryEscape(patientB), game, "", nil); st != 404 {
			t.Fatalf("delete naming another patient: %d, want 404", st)
		}
		if st, _, _ := e.do("DELETE", "/Binary/"+id+"?patient="+url.QueryEscape(patientA), game, "", nil); st != 204 {
			t.Fatalf("delete: %d", st)
		}
		if st, _, _ := e.do("POST", "/Binary", game, "text/plain", []byte("no patient")); st != 400 {
			t.Fatalf("binary without patient: %d, want 400", st)
		}
		if n := e.countItems(); n != 0 {
			t.Fatalf("%d items left", n)
		}
	})
}

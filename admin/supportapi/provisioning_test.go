package supportapi_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/koppelpoort/koppelpoort/admin/supportapi"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// TestProvisionWithoutRestart: an application and an instance created through
// the Support API can post at once with the returned credentials; a
// subscription added through it routes the next message; deactivating the
// instance locks it out at once — no restart, no config file.
func TestProvisionWithoutRestart(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		app := e.do("sys", "POST", "/Application", doc("Application", "", map[string]any{
			"Identifier": "Module", "Name": "A module", "ApplicationRoles": []string{"Game"}}, "")).mustStatus(t, 201, "create application")
		if app.header.Get("Location") == "" || attr(app.data(), "ManagedBy") != "api" {
			t.Fatalf("created application: %s", app.raw)
		}
		inst := e.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{
			"Username": "module@a", "Application": "Module", "Domain": "A", "Subscriptions": []string{}}, "")).mustStatus(t, 201, "create instance")
		meta := inst.data()["meta"].(map[string]any)
		password, _ := meta["password"].(string)
		if len(password) < 10 {
			t.Fatalf("no generated password in meta: %s", inst.raw)
		}
		module := e.kt("module@a", password)
		if err := e.post(module, "A", patientMsg("m-1")); err != nil {
			t.Fatalf("post with the new credentials: %v", err)
		}
		portal := e.kt("portal@a", "pa")
		if got := e.claimEvent(portal); got != "CreateOrUpdatePatient" {
			t.Fatalf("portal (subscribed in the file) did not get the module's message: %q", got)
		}

		id := inst.data()["id"].(string)
		e.do("sys", "POST", "/SubscriptionsPerApplication", doc("SubscriptionsPerApplication", "", map[string]any{
			"MessageType": "CreateOrUpdatePatient", "ApplicationInstance": id}, "")).mustStatus(t, 201, "subscribe")
		if err := e.post(e.kt("epd@a", "ea"), "A", patientMsg("p-2")); err != nil {
			t.Fatal(err)
		}
		if got := e.claimEvent(module); got != "CreateOrUpdatePatient" {
			t.Fatalf("the subscription made through the API did not route the next message: %q", got)
		}
		e.do("sys", "DELETE", "/SubscriptionsPerApplication/"+id+".CreateOrUpdatePatient", nil).mustStatus(t, 204, "unsubscribe")
		if err := e.post(e.kt("epd@a", "ea"), "A", patientMsg("p-3")); err != nil {
			t.Fatal(err)
		}
		if got := e.claimEvent(module); got != "" {
			t.Fatalf("after unsubscribing the module still gets %q", got)
		}

		cur := e.do("sys", "GET", "/ApplicationInstance/"+id, nil).mustStatus(t, 200, "read instance")
		e.do("sys", "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id, map[string]any{"Active": false}, version(cur.data()))).
			mustStatus(t, 200, "deactivate")
		err := e.post(module, "A", patientMsg("m-4"))
		var ce *client.Error
		if !errors.As(err, &ce) || ce.Status != http.StatusUnauthorized {
			t.Fatalf("post of a deactivated instance: %v, want 401", err)
		}
		cur = e.do("sys", "GET", "/ApplicationInstance/"+id, nil)
		reset := e.do("sys", "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id,
			map[string]any{"Active": true, "ResetPassword": true}, version(cur.data()))).mustStatus(t, 200, "reactivate with a new password")
		newPw, _ := reset.data()["meta"].(map[string]any)["password"].(string)
		if newPw == "" || newPw == password {
			t.Fatalf("reset password: %q", newPw)
		}
		if err := e.post(module, "A", patientMsg("m-5")); err == nil {
			t.Fatal("the old password still works after a reset")
		}
		if err := e.post(e.kt("module@a", newPw), "A", patientMsg("m-6")); err != nil {
			t.Fatalf("post with the reset password: %v", err)
		}

		// A hash made elsewhere (the file's password_hash: moving an instance from the file keeps its password).
		hash, err := bcrypt.GenerateFromPassword([]byte("hashed elsewhere"), 4)
		if err != nil {
			t.Fatal(err)
		}
		cur = e.do("sys", "GET", "/ApplicationInstance/"+id, nil)
		for _, bad := range []map[string]any{{"PasswordHash": "md5:abc"}, {"PasswordHash": string(hash), "Password": "another long password"}} {
			e.do("sys", "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id, bad, version(cur.data()))).mustStatus(t, 400, "bad password hash")
		}
		hashed := e.do("sys", "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id, map[string]any{"PasswordHash": string(hash)}, version(cur.data()))).
			mustStatus(t, 200, "password hash")
		if _, shown := hashed.data()["meta"].(map[string]any)["password"]; shown {
			t.Fatalf("a password hash set, yet a password in meta: %s", hashed.raw)
		}
		if err := e.post(e.kt("module@a", "hashed elsewhere"), "A", patientMsg("m-7")); err != nil {
			t.Fatalf("post with the password of the hash: %v", err)
		}
		if err := e.post(e.kt("module@a", newPw), "A", patientMsg("m-8")); err == nil {
			t.Fatal("the password before the hash still works")
		}
		made := e.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{
			"Username": "hashed@a", "Application": "Module", "Domain": "B", "PasswordHash": string(hash)}, "")).mustStatus(t, 201, "create with a hash")
		if _, shown := made.data()["meta"].(map[string]any)["password"]; shown {
			t.Fatalf("created with a hash, yet a password in meta: %s", made.raw)
		}
		if err := e.post(e.kt("hashed@a", "hashed elsewhere"), "B", patientMsg("h-1")); err != nil {
			t.Fatalf("post as the instance created with a hash: %v", err)
		}

		// Webhook headers (the file's webhook.headers) go with a webhook URL and are shown by name only.
		cur = e.do("sys", "GET", "/ApplicationInstance/"+id, nil)
		headers := map[string]any{"X-Koppeltaal-Secret": "hook secret"}
		e.do("sys", "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id, map[string]any{"WebhookHeaders": headers}, version(cur.data()))).
			mustStatus(t, 400, "headers without a webhook URL")
		hooked := e.do("sys", "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id,
			map[string]any{"WebhookUrl": "https://module.example/hook", "WebhookHeaders": headers}, version(cur.data()))).mustStatus(t, 200, "headers with a URL")
		if got := attr(hooked.data(), "WebhookHeaders"); fmt.Sprint(got) != "map[X-Koppeltaal-Secret:********]" {
			t.Fatalf("WebhookHeaders shown as %v, want the name only", got)
		}
	})
}

// TestRoleIsolation: a domain administrator never sees another domain, an
// application administrator never another application's instances; missing
// or wrong credentials get 401 and no data.
func TestRoleIsolation(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		users := func(who string) []string {
			var out []string
			for _, r := range e.do(who, "GET", "/ApplicationInstance?page[size]=100", nil).mustStatus(t, 200, who+" lists instances").list() {
				out = append(out, attr(r, "Username").(string))
			}
			return out
		}
		if got := strings.Join(users("sys"), ","); got != "portal@a,game@a,epd@a,portal@b,game@b" {
			t.Fatalf("system administrator sees %s", got)
		}
		if got := strings.Join(users("dora"), ","); got != "portal@a,game@a,epd@a" {
			t.Fatalf("administrator of domain A sees %s", got)
		}
		if got := strings.Join(users("appy"), ","); got != "game@a,game@b" {
			t.Fatalf("administrator of application Game sees %s", got)
		}
		var bID, portalA string
		for _, r := range e.do("sys", "GET", "/ApplicationInstance?page[size]=100", nil).list() {
			switch attr(r, "Username") {
			case "portal@b":
				bID = r["id"].(string)
			case "portal@a":
				portalA = r["id"].(string)
			}
		}
		for who, id := range map[string]string{"dora": bID, "appy": portalA} {
			r := e.do(who, "GET", "/ApplicationInstance/"+id, nil).mustStatus(t, 404, who+" reads an instance outside the scope")
			if r.doc["data"] != nil {
				t.Fatalf("%s got data: %s", who, r.raw)
			}
			e.do(who, "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id, map[string]any{"ApiVersion": "1.3.3"}, "1")).
				mustStatus(t, 404, who+" patches an instance outside the scope")
		}
		domains := func(who string) string {
			var out []string
			for _, r := range e.do(who, "GET", "/Domain", nil).mustStatus(t, 200, who+" lists domains").list() {
				out = append(out, attr(r, "Name").(string))
			}
			return strings.Join(out, ",")
		}
		if got := domains("dora"); got != "A" {
			t.Fatalf("dora sees domains %s", got)
		}
		if got := domains("appy"); got != "A,B" { // the domains its instances are in (names only)
			t.Fatalf("appy sees domains %s", got)
		}
		e.do("dora", "POST", "/Domain", doc("Domain", "", map[string]any{"Name": "C"}, "")).mustStatus(t, 403, "domain admin creates a domain")
		e.do("appy", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{
			"Username": "g@x", "Application": "Game", "Domain": "A"}, "")).mustStatus(t, 403, "application admin creates an instance")
		e.do("dora", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{
			"Username": "g@x", "Application": "EPD", "Domain": "B"}, "")).mustStatus(t, 400, "domain admin creates an instance in another domain")

		for _, who := range []string{"", "nobody"} {
			e.tokens["nobody"] = "kpat_" + strings.Repeat("x", 43)
			for _, path := range []string{"/ApplicationInstance", "/Domain", "/ApplicationInstance/" + portalA, "/Server"} {
				r := e.do(who, "GET", path, nil).mustStatus(t, 401, "no or a wrong token on "+path)
				if r.doc["data"] != nil || r.header.Get("WWW-Authenticate") == "" {
					t.Fatalf("401 on %s: %s", path, r.raw)
				}
			}
		}
	})
}

// TestJSONAPIRules: paging links and meta, filters with operators, search,
// optimistic locking (stale → 409, none → 428), immutable and unknown
// attributes, the errors document, the operations matrix, file-managed objects.
func TestJSONAPIRules(t *testing.T) {
	e := newEnv(t, storetest.Backend{Name: "sqlite", DSN: t.TempDir() + "/kp.db"}.Open(t), ktConfig())
	r := e.do("sys", "GET", "/ApplicationInstance?page[number]=2&page[size]=2", nil).mustStatus(t, 200, "page 2")
	page := r.doc["meta"].(map[string]any)["page"].(map[string]any)
	links := r.doc["links"].(map[string]any)
	if page["total-records"] != float64(5) || page["number"] != float64(2) || len(r.list()) != 2 ||
		!strings.Contains(links["next"].(string), "page[number]=3") || !strings.Contains(links["last"].(string), "page[number]=3") ||
		!strings.Contains(links["prev"].(string), "page[number]=1") || r.doc["jsonapi"].(map[string]any)["version"] != "1.0" {
		t.Fatalf("paging: %s", r.raw)
	}
	count := func(q string) int {
		return len(e.do("sys", "GET", "/ApplicationInstance?page[size]=100&"+q, nil).mustStatus(t, 200, q).list())
	}
	for q, want := range map[string]int{
		"filter[Domain]=A":                               3,
		"filter[Domain]=A,B":                             5,
		"filter[Domain][ne]=A":                           2,
		"filter[Username][startswith]=game":              2,
		"filter[Username][contains]=@b":                  2,
		"filter[Subscriptions]=CreateOrUpdatePatient":    2,
		"filter[Application]=Game&filter[Domain]=B":      1,
		"filter[Username]=game@a&filter[Username]=epd@a": 2,
		"search=portal":                                  2,
		"filter[id][gt]=3":                               2,
	} {
		if got := count(q); got != want {
			t.Errorf("%s: %d instances, want %d", q, got, want)
		}
	}
	for _, q := range []string{"filter[Nope]=x", "filter[Domain][like]=A", "page[size]=0", "page[size]=100000", "color=red"} {
		r := e.do("sys", "GET", "/ApplicationInstance?"+q, nil).mustStatus(t, 400, q)
		if s, _ := r.firstError(); s != "400" {
			t.Fatalf("%s: %s", q, r.raw)
		}
	}

	app := e.do("sys", "POST", "/Application", doc("Application", "", map[string]any{"Identifier": "Mod", "Name": "M"}, "")).mustStatus(t, 201, "create")
	id := app.data()["id"].(string)
	v1 := version(app.data())
	e.do("sys", "PATCH", "/Application/"+id, doc("Application", id, map[string]any{"Name": "M2"}, "")).mustStatus(t, 428, "patch without version")
	e.do("sys", "PATCH", "/Application/"+id, doc("Application", id, map[string]any{"Name": "M2"}, v1)).mustStatus(t, 200, "patch")
	r = e.do("sys", "PATCH", "/Application/"+id, doc("Application", id, map[string]any{"Name": "M3"}, v1)).mustStatus(t, 409, "stale version")
	if _, title := r.firstError(); title != "Stale version" {
		t.Fatalf("stale: %s", r.raw)
	}
	if got := attr(e.do("sys", "GET", "/Application/"+id, nil).data(), "Name"); got != "M2" {
		t.Fatalf("a stale PATCH changed the application: %v", got)
	}
	cur := version(e.do("sys", "GET", "/Application/"+id, nil).data())
	e.do("sys", "PATCH", "/Application/"+id, doc("Application", id, map[string]any{"Identifier": "Other"}, cur)).mustStatus(t, 403, "immutable Identifier")
	r = e.do("sys", "PATCH", "/Application/"+id, doc("Application", id, map[string]any{"Colour": "red", "Identifier": "x"}, cur)).mustStatus(t, 400, "two errors")
	if errs := r.doc["errors"].([]any); len(errs) != 2 {
		t.Fatalf("two errors: %s", r.raw)
	}
	e.do("sys", "PATCH", "/Application/"+id, doc("Application", id, map[string]any{"ApplicationRoles": []string{"Wizard"}}, cur)).mustStatus(t, 400, "bad role")
	e.do("sys", "POST", "/Application", doc("Application", "", map[string]any{"Identifier": "Mod"}, "")).mustStatus(t, 409, "duplicate")
	e.do("sys", "POST", "/Application", doc("Domain", "", map[string]any{"Identifier": "X"}, "")).mustStatus(t, 409, "wrong type")

	// Objects the file declares are read-only here.
	var portalA map[string]any
	for _, r := range e.do("sys", "GET", "/ApplicationInstance?filter[Username]=portal@a", nil).list() {
		portalA = r
	}
	pid := portalA["id"].(string)
	r = e.do("sys", "PATCH", "/ApplicationInstance/"+pid, doc("ApplicationInstance", pid, map[string]any{"ApiVersion": "1.3.3"}, version(portalA))).
		mustStatus(t, 409, "file-managed instance")
	if _, title := r.firstError(); title != "Managed by the configuration file" {
		t.Fatalf("file-managed: %s", r.raw)
	}
	e.do("sys", "DELETE", "/SubscriptionsPerApplication/"+pid+".CreateOrUpdatePatient", nil).mustStatus(t, 409, "file-managed subscription")

	// The operations matrix.
	r = e.do("sys", "DELETE", "/Domain/1", nil).mustStatus(t, 405, "DELETE Domain")
	if r.header.Get("Allow") != "GET, POST, PATCH" {
		t.Fatalf("Allow: %q", r.header.Get("Allow"))
	}
	e.do("sys", "PATCH", "/SubscriptionsPerApplication/"+pid+".CreateOrUpdatePatient", doc("SubscriptionsPerApplication", pid+".CreateOrUpdatePatient", nil, "1")).
		mustStatus(t, 405, "PATCH subscription")
	e.do("sys", "POST", "/Server", doc("Server", "", nil, "")).mustStatus(t, 405, "POST Server")
	e.do("sys", "GET", "/Nonsense", nil).mustStatus(t, 404, "unknown type")
	e.do("sys", "GET", "/Domain/999", nil).mustStatus(t, 404, "unknown id")
	idx := e.do("sys", "GET", "/", nil).mustStatus(t, 200, "index")
	if len(idx.list()) < 5 {
		t.Fatalf("index: %s", idx.raw)
	}
}

// TestConfigFileAndAPI: applying the file again leaves objects created
// through the API alone (not disabled); an object the file starts declaring
// becomes managed by it; a username the file gives to another instance is a
// clear error that changes nothing.
func TestConfigFileAndAPI(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		st := b.Open(t)
		cfg := ktConfig()
		e := newEnv(t, st, cfg)
		e.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{
			"Username": "epd@b", "Application": "EPD", "Domain": "B", "Password": "runtime password"}, "")).mustStatus(t, 201, "create")
		if _, err := koppeltaal.Apply(context.Background(), cfg, st, nil); err != nil {
			t.Fatal(err)
		}
		if err := e.post(e.kt("epd@b", "runtime password"), "B", patientMsg("x")); err != nil {
			t.Fatalf("applying the file disabled an instance made through the API: %v", err)
		}
		bad := ktConfig()
		bad.Applications = append(bad.Applications, koppeltaal.ApplicationConfig{ID: "Other"})
		bad.Instances = append(bad.Instances, koppeltaal.InstanceConfig{Application: "Other", Domain: "A", Username: "epd@b", Password: "x"})
		_, err := koppeltaal.Apply(context.Background(), bad, st, nil)
		if err == nil || !strings.Contains(err.Error(), `username "epd@b"`) || !strings.Contains(err.Error(), "another application instance") {
			t.Fatalf("a username taken by another instance: %v", err)
		}
		if err := e.post(e.kt("epd@b", "runtime password"), "B", patientMsg("x2")); err != nil {
			t.Fatalf("a refused apply changed epd@b: %v", err)
		}
		take := ktConfig()
		take.Instances = append(take.Instances, koppeltaal.InstanceConfig{Application: "EPD", Domain: "B", Username: "epd@b", Password: "file password"})
		if _, err := koppeltaal.Apply(context.Background(), take, st, nil); err != nil {
			t.Fatal(err)
		}
		r := e.do("sys", "GET", "/ApplicationInstance?filter[Username]=epd@b", nil).list()
		if len(r) != 1 || attr(r[0], "ManagedBy") != "config" {
			t.Fatalf("epd@b after the file declared it: %v", r)
		}
		if err := e.post(e.kt("epd@b", "file password"), "B", patientMsg("y")); err != nil {
			t.Fatalf("the file's password: %v", err)
		}
	})
}

// TestTwoProcessesSharePostgres: an instance created and a subscription
// changed through one server take effect in a second server (its own store,
// the same PostgreSQL database) within the caches' bound.
func TestTwoProcessesSharePostgres(t *testing.T) {
	b := storetest.NewPostgres(t)
	one := newEnv(t, b.Open(t), ktConfig())
	two := newEnv(t, b.Open(t), ktConfig())
	// Warm the second server's caches with the old state.
	if err := two.post(two.kt("epd@a", "ea"), "A", patientMsg("warm")); err != nil {
		t.Fatal(err)
	}
	inst := one.do("sys", "POST", "/ApplicationInstance", doc("ApplicationInstance", "", map[string]any{
		"Username": "late@b", "Application": "EPD", "Domain": "B", "Password": "created on one",
		"Subscriptions": []string{"CreateOrUpdatePatient"}}, "")).mustStatus(t, 201, "create on server one")
	start := time.Now()
	within := func(what string, ok func() bool) {
		t.Helper()
		for !ok() {
			if time.Since(start) > 3*time.Second {
				t.Fatalf("%s: not seen by the second server within 3 s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
		t.Logf("%s: seen by the second server after %s", what, time.Since(start).Round(time.Millisecond))
	}
	late := two.kt("late@b", "created on one")
	within("new instance", func() bool { return two.post(late, "B", patientMsg("l1")) == nil })
	if err := two.post(two.kt("portal@b", "pb"), "B", patientMsg("p-b")); err != nil {
		t.Fatal(err)
	}
	if got := two.claimEvent(late); got != "CreateOrUpdatePatient" {
		t.Fatalf("second server did not route to the instance's subscription: %q", got)
	}
	id := inst.data()["id"].(string)
	cur := one.do("sys", "GET", "/ApplicationInstance/"+id, nil)
	one.do("sys", "PATCH", "/ApplicationInstance/"+id, doc("ApplicationInstance", id, map[string]any{"Active": false}, version(cur.data()))).
		mustStatus(t, 200, "deactivate on server one")
	start = time.Now()
	within("deactivation", func() bool { return two.post(late, "B", patientMsg("l2")) != nil })
}

var _ = store.ManagedByAPI
var _ = supportapi.Prefix

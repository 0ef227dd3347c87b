package supportapi_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/admin/supportapi"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

// login starts a console session on e's server; it returns the cookie and the CSRF token.
func (e *env) login(username, password string) (*http.Cookie, int) {
	e.t.Helper()
	b, _ := json.Marshal(map[string]string{"username": username, "password": password})
	resp, err := http.Post(e.ts.URL+admin.SessionPath, "application/json", bytes.NewReader(b))
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	for _, c := range resp.Cookies() {
		if strings.HasSuffix(c.Name, "kp_session") {
			return c, resp.StatusCode
		}
	}
	return nil, resp.StatusCode
}

// withCookie GETs path of the Support API with a session cookie; it returns the status.
func (e *env) withCookie(c *http.Cookie, path string) int {
	e.t.Helper()
	req, _ := http.NewRequest("GET", e.ts.URL+supportapi.Prefix+path, nil)
	req.AddCookie(c)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdministratorAccessEndsEverywhere: two servers share one PostgreSQL database. Disabling an
// administrator on the first, or changing its role or password there, ends its console session and
// API token on the second at once: the very next request there is 401 (nothing is cached).
func TestAdministratorAccessEndsEverywhere(t *testing.T) {
	b := storetest.NewPostgres(t)
	one := newEnv(t, b.Open(t), ktConfig())
	two := newEnv(t, b.Open(t), ktConfig())
	created := one.do("sys", "POST", "/Administrator", doc("Administrator", "", map[string]any{
		"Username": "ellen", "Name": "Ellen", "Role": "domain", "Domains": []string{"A"}, "Password": pw}, "")).
		mustStatus(t, 201, "create an administrator on server one").data()
	id := created["id"].(string)
	current := func() string {
		return version(one.do("sys", "GET", "/Administrator/"+id, nil).mustStatus(t, 200, "read").data())
	}
	// access logs in on server two and makes a token there; both work.
	access := func(password string) (*http.Cookie, string) {
		t.Helper()
		c, status := two.login("ellen", password)
		if c == nil {
			t.Fatalf("login on server two: %d", status)
		}
		tok, _, err := two.acc.CreateTokenFor(t.Context(), "ellen", "test", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		two.tokens["ellen"] = tok
		if s := two.withCookie(c, "/Domain"); s != 200 {
			t.Fatalf("session on server two: %d", s)
		}
		two.do("ellen", "GET", "/Domain", nil).mustStatus(t, 200, "token on server two")
		return c, tok
	}
	refused := func(what string, c *http.Cookie) {
		t.Helper()
		if s := two.withCookie(c, "/Domain"); s != 401 {
			t.Fatalf("%s: the session on server two gets %d, want 401", what, s)
		}
		two.do("ellen", "GET", "/Domain", nil).mustStatus(t, 401, what+": the token on server two")
	}
	patch := func(what string, attrs map[string]any) map[string]any {
		t.Helper()
		return one.do("sys", "PATCH", "/Administrator/"+id, doc("Administrator", id, attrs, current())).mustStatus(t, 200, what).data()
	}

	c, _ := access(pw)
	patch("disable on server one", map[string]any{"Disabled": true})
	refused("disabled", c)
	if c, s := two.login("ellen", pw); c != nil || s != 401 {
		t.Fatalf("login of a disabled administrator: %d", s)
	}
	patch("enable again", map[string]any{"Disabled": false})
	refused("enabled again: the old session and token stay ended", c)

	c, _ = access(pw)
	patch("role change", map[string]any{"Role": "application", "Applications": []string{"Game"}})
	refused("role changed", c)

	c, _ = access(pw)
	const newPassword = "another long password"
	patch("password change", map[string]any{"Password": newPassword})
	refused("password changed", c)
	if c, s := two.login("ellen", pw); c != nil || s != 401 {
		t.Fatalf("login with the old password: %d", s)
	}
	c, _ = access(newPassword)
	patch("name change", map[string]any{"Name": "Ellen E."})
	if s := two.withCookie(c, "/Domain"); s != 200 {
		t.Fatalf("a change of name ends nothing: %d", s)
	}
}

// TestAdministratorResource: only system administrators manage accounts; accounts of the file are
// read-only; bad values and stale versions are refused.
func TestAdministratorResource(t *testing.T) {
	backends(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b.Open(t), ktConfig())
		e.do("dora", "GET", "/Administrator", nil).mustStatus(t, 403, "domain administrator lists administrators")
		e.do("appy", "POST", "/Administrator", doc("Administrator", "", map[string]any{"Username": "x", "Role": "system"}, "")).
			mustStatus(t, 403, "application administrator creates one")
		if got := len(e.do("sys", "GET", "/Administrator", nil).mustStatus(t, 200, "list").list()); got != 3 {
			t.Fatalf("%d administrators, want the file's 3", got)
		}
		r := e.do("sys", "POST", "/Administrator", doc("Administrator", "", map[string]any{"Username": "root2", "Role": "system"}, "")).
			mustStatus(t, 201, "create without a password")
		pwd, _ := r.data()["meta"].(map[string]any)["password"].(string)
		if len(pwd) < admin.MinPasswordLength {
			t.Fatalf("generated password %q", pwd)
		}
		if c, s := e.login("root2", pwd); c == nil {
			t.Fatalf("login with the generated password: %d", s)
		}
		id := r.data()["id"].(string)
		v := version(r.data())
		for _, bad := range []map[string]any{{"Role": "domain"}, {"Domains": []string{"Nowhere"}}, {"Password": "short"},
			{"Username": "renamed"}, {"Colour": "blue"}} {
			if r := e.do("sys", "PATCH", "/Administrator/"+id, doc("Administrator", id, bad, v)); r.status != 400 && r.status != 403 {
				t.Fatalf("PATCH %v: %d %s", bad, r.status, r.raw)
			}
		}
		e.do("sys", "PATCH", "/Administrator/"+id, doc("Administrator", id, map[string]any{"Name": "Root"}, v)).mustStatus(t, 200, "rename")
		e.do("sys", "PATCH", "/Administrator/"+id, doc("Administrator", id, map[string]any{"Name": "Stale"}, v)).mustStatus(t, 409, "stale version")
		list := e.do("sys", "GET", "/Administrator?filter[Username]=dora", nil).mustStatus(t, 200, "filter").list()
		if len(list) != 1 || attr(list[0], "ManagedBy") != "config" {
			t.Fatalf("dora: %v", list)
		}
		doraID := list[0]["id"].(string)
		e.do("sys", "PATCH", "/Administrator/"+doraID, doc("Administrator", doraID, map[string]any{"Disabled": true}, version(list[0]))).
			mustStatus(t, 409, "an administrator of the file")
		// A hash made elsewhere (the file's password_hash): its password logs in, the one before does not.
		hash, err := bcrypt.GenerateFromPassword([]byte("an administrator password hashed elsewhere"), 4)
		if err != nil {
			t.Fatal(err)
		}
		cur := e.do("sys", "GET", "/Administrator/"+id, nil).data()
		for _, bad := range []map[string]any{{"PasswordHash": "md5:abc"}, {"PasswordHash": string(hash), "ResetPassword": true}} {
			e.do("sys", "PATCH", "/Administrator/"+id, doc("Administrator", id, bad, version(cur))).mustStatus(t, 400, "bad password hash")
		}
		e.do("sys", "PATCH", "/Administrator/"+id, doc("Administrator", id, map[string]any{"PasswordHash": string(hash)}, version(cur))).mustStatus(t, 200, "password hash")
		if c, s := e.login("root2", "an administrator password hashed elsewhere"); c == nil {
			t.Fatalf("login with the password of the hash: %d", s)
		}
		if c, _ := e.login("root2", pwd); c != nil {
			t.Fatal("the password before the hash still logs in")
		}
		made := e.do("sys", "POST", "/Administrator", doc("Administrator", "", map[string]any{"Username": "hashed", "Role": "system",
			"PasswordHash": string(hash)}, "")).mustStatus(t, 201, "create with a hash")
		if _, shown := made.data()["meta"].(map[string]any)["password"]; shown {
			t.Fatalf("created with a hash, yet a password in meta: %s", made.raw)
		}
		if c, s := e.login("hashed", "an administrator password hashed elsewhere"); c == nil {
			t.Fatalf("login as the administrator created with a hash: %d", s)
		}
		cur = e.do("sys", "GET", "/Administrator/"+id, nil).data()
		e.do("sys", "PATCH", "/Administrator/"+id, doc("Administrator", id, map[string]any{"Disabled": true}, version(cur))).mustStatus(t, 200, "disable root2")
		e.do("sys", "DELETE", "/Administrator/"+id, nil).mustStatus(t, 405, "DELETE")
	})
}

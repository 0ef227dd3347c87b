package admin_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/internal/loginlimit"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"github.com/koppelpoort/koppelpoort/store"
	"github.com/koppelpoort/koppelpoort/store/storetest"
)

const pw = "correct horse battery"

type env struct {
	t   *testing.T
	st  *store.Store
	acc *admin.Accounts
	ts  *httptest.Server
}

func newEnv(t *testing.T, b storetest.Backend, users ...admin.UserConfig) *env {
	t.Helper()
	st := b.Open(t)
	kcfg := koppeltaal.Config{Domains: []koppeltaal.DomainConfig{{Name: "A"}, {Name: "B"}},
		Applications: []koppeltaal.ApplicationConfig{{ID: "Game"}}, BcryptCost: 4}
	if _, err := koppeltaal.Apply(context.Background(), kcfg, st, nil); err != nil {
		t.Fatal(err)
	}
	acc, err := admin.New(admin.Options{Store: st, Config: admin.Config{Users: users, BcryptCost: 4}, Limiter: loginlimit.New(loginlimit.Config{Window: time.Minute, PerAccountAndAddress: 5})})
	if err != nil {
		t.Fatal(err)
	}
	if err := acc.ApplyConfig(context.Background()); err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	acc.Mount(r)
	ts := httptest.NewServer(r)
	t.Cleanup(ts.Close)
	return &env{t: t, st: st, acc: acc, ts: ts}
}

func (e *env) do(c *http.Client, method, path, body string, hdr ...string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

func client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar}
}

func login(user, pass string) string {
	b, _ := json.Marshal(map[string]string{"username": user, "password": pass})
	return string(b)
}

func TestSessionLoginCSRFLogout(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, admin.UserConfig{Username: "alice", Password: pw, Role: admin.RoleSystem})
		c := client()
		resp, info := e.do(c, "POST", admin.SessionPath, login("alice", pw))
		if resp.StatusCode != 200 || info["role"] != "system" || info["csrf_token"] == "" {
			t.Fatalf("login: %d %v", resp.StatusCode, info)
		}
		ck := resp.Header.Get("Set-Cookie")
		for _, want := range []string{"kp_session=", "HttpOnly", "SameSite=Strict", "Path=/"} {
			if !strings.Contains(ck, want) {
				t.Errorf("Set-Cookie %q lacks %q", ck, want)
			}
		}
		if resp, _ := e.do(c, "GET", admin.SessionPath, ""); resp.StatusCode != 200 {
			t.Fatalf("whoami with cookie: %d", resp.StatusCode)
		}
		if resp, _ := e.do(c, "DELETE", admin.SessionPath, ""); resp.StatusCode != 403 {
			t.Fatalf("logout without CSRF token: %d, want 403", resp.StatusCode)
		}
		if resp, _ := e.do(c, "DELETE", admin.SessionPath, "", admin.CSRFHeader, "wrong"); resp.StatusCode != 403 {
			t.Fatalf("logout with a wrong CSRF token: %d, want 403", resp.StatusCode)
		}
		if resp, _ := e.do(c, "DELETE", admin.SessionPath, "", admin.CSRFHeader, info["csrf_token"].(string), "Origin", "https://evil.example"); resp.StatusCode != 403 {
			t.Fatalf("logout from another origin: %d, want 403", resp.StatusCode)
		}
		if resp, _ := e.do(c, "DELETE", admin.SessionPath, "", admin.CSRFHeader, info["csrf_token"].(string)); resp.StatusCode != 204 {
			t.Fatalf("logout: %d", resp.StatusCode)
		}
		// The old cookie value no longer works even if a client kept it.
		req, _ := http.NewRequest("GET", e.ts.URL+admin.SessionPath, nil)
		req.Header.Set("Cookie", strings.Split(ck, ";")[0])
		r2, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		r2.Body.Close()
		if r2.StatusCode != 401 {
			t.Fatalf("whoami after logout: %d, want 401", r2.StatusCode)
		}
		if resp, _ := e.do(client(), "POST", admin.SessionPath, login("alice", pw), "Origin", "https://evil.example"); resp.StatusCode != 403 {
			t.Fatalf("login posted from another site: %d, want 403", resp.StatusCode)
		}
	})
}

func TestLoginRefusalsAndThrottle(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, admin.UserConfig{Username: "alice", Password: pw, Role: admin.RoleSystem})
		c := client()
		for _, body := range []string{login("alice", "wrong password"), login("nobody", pw), `{"user":"x"}`} {
			resp, out := e.do(c, "POST", admin.SessionPath, body)
			if resp.StatusCode != 401 && resp.StatusCode != 400 {
				t.Fatalf("bad login %s: %d", body, resp.StatusCode)
			}
			if _, ok := out["errors"]; !ok || out["username"] != nil {
				t.Fatalf("bad login %s answered %v, want an errors document and no data", body, out)
			}
		}
		if resp, _ := e.do(c, "GET", admin.SessionPath, ""); resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("no credentials: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
		for range 5 {
			e.do(c, "POST", admin.SessionPath, login("alice", "wrong password"))
		}
		if resp, _ := e.do(c, "POST", admin.SessionPath, login("alice", pw)); resp.StatusCode != 429 {
			t.Fatalf("login after many failures: %d, want 429", resp.StatusCode)
		}
	})
}

func TestSessionExpiresAndDisabledUser(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, admin.UserConfig{Username: "alice", Password: pw, Role: admin.RoleSystem})
		now := time.Now()
		e.acc.SetClock(func() time.Time { return now })
		c := client()
		if resp, _ := e.do(c, "POST", admin.SessionPath, login("alice", pw)); resp.StatusCode != 200 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		now = now.Add(20 * time.Minute)
		if resp, _ := e.do(c, "GET", admin.SessionPath, ""); resp.StatusCode != 200 {
			t.Fatalf("after 20 idle minutes: %d", resp.StatusCode)
		}
		now = now.Add(25 * time.Minute) // 25 minutes after the last request: still within the sliding 30
		if resp, _ := e.do(c, "GET", admin.SessionPath, ""); resp.StatusCode != 200 {
			t.Fatalf("after 25 more minutes (activity in between): %d", resp.StatusCode)
		}
		now = now.Add(31 * time.Minute)
		if resp, _ := e.do(c, "GET", admin.SessionPath, ""); resp.StatusCode != 401 {
			t.Fatalf("after 31 idle minutes: %d, want 401", resp.StatusCode)
		}
		// Removing alice from the file disables her and ends her sessions.
		now = time.Now()
		if resp, _ := e.do(c, "POST", admin.SessionPath, login("alice", pw)); resp.StatusCode != 200 {
			t.Fatalf("login: %d", resp.StatusCode)
		}
		acc2, _ := admin.New(admin.Options{Store: e.st, Config: admin.Config{BcryptCost: 4}})
		if err := acc2.ApplyConfig(context.Background()); err != nil {
			t.Fatal(err)
		}
		if resp, _ := e.do(c, "GET", admin.SessionPath, ""); resp.StatusCode != 401 {
			t.Fatalf("session of a removed administrator: %d, want 401", resp.StatusCode)
		}
		if resp, _ := e.do(client(), "POST", admin.SessionPath, login("alice", pw)); resp.StatusCode != 401 {
			t.Fatalf("login of a removed administrator: %d, want 401", resp.StatusCode)
		}
	})
}

func TestAPITokens(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		e := newEnv(t, b, admin.UserConfig{Username: "dora", Password: pw, Role: admin.RoleDomain, Domains: []string{"A"}})
		now := time.Now()
		e.acc.SetClock(func() time.Time { return now })
		secret, k, err := e.acc.CreateTokenFor(context.Background(), "dora", "script", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(secret, admin.TokenPrefix) {
			t.Fatalf("token %q lacks the prefix", secret)
		}
		resp, info := e.do(http.DefaultClient, "GET", admin.SessionPath, "", "Authorization", "Bearer "+secret)
		if resp.StatusCode != 200 || info["via"] != "token" || info["csrf_token"] != nil {
			t.Fatalf("token: %d %v", resp.StatusCode, info)
		}
		if d, _ := info["domains"].([]any); len(d) != 1 || d[0] != "A" {
			t.Fatalf("domains of dora: %v", info["domains"])
		}
		// Unsafe methods with a token need no CSRF token (no cookie is involved).
		for _, bad := range []string{"Bearer " + secret + "x", "Bearer kpat_", "Basic YTpi", secret} {
			if resp, _ := e.do(http.DefaultClient, "GET", admin.SessionPath, "", "Authorization", bad); resp.StatusCode != 401 {
				t.Fatalf("Authorization %q: %d, want 401", bad, resp.StatusCode)
			}
		}
		now = now.Add(2 * time.Hour)
		if resp, _ := e.do(http.DefaultClient, "GET", admin.SessionPath, "", "Authorization", "Bearer "+secret); resp.StatusCode != 401 {
			t.Fatalf("expired token: %d, want 401", resp.StatusCode)
		}
		now = time.Now()
		if err := e.st.Update(context.Background(), func(tx *store.Tx) error {
			return tx.RevokeAdminToken(context.Background(), k.UserID, k.ID, now.UnixMicro())
		}); err != nil {
			t.Fatal(err)
		}
		if resp, _ := e.do(http.DefaultClient, "GET", admin.SessionPath, "", "Authorization", "Bearer "+secret); resp.StatusCode != 401 {
			t.Fatalf("revoked token: %d, want 401", resp.StatusCode)
		}
	})
}

func TestApplyConfigIdempotentAndValidated(t *testing.T) {
	storetest.Run(t, func(t *testing.T, b storetest.Backend) {
		users := []admin.UserConfig{{Username: "dora", Password: pw, Role: admin.RoleDomain, Domains: []string{"A"}}}
		e := newEnv(t, b, users...)
		var before store.AdminUser
		read := func() store.AdminUser {
			var u store.AdminUser
			if err := e.st.View(context.Background(), func(tx *store.Tx) error {
				var err error
				u, err = tx.AdminUserByUsername(context.Background(), "dora")
				return err
			}); err != nil {
				t.Fatal(err)
			}
			return u
		}
		before = read()
		if before.ManagedBy != store.ManagedByConfig || len(before.DomainIDs) != 1 {
			t.Fatalf("dora after apply: %+v", before)
		}
		acc, _ := admin.New(admin.Options{Store: e.st, Config: admin.Config{Users: users, BcryptCost: 4}})
		if err := acc.ApplyConfig(context.Background()); err != nil {
			t.Fatal(err)
		}
		if after := read(); after.RowVersion != before.RowVersion || after.PasswordHash != before.PasswordHash {
			t.Fatalf("applying the same file changed dora: %+v → %+v", before, after)
		}
		for _, bad := range []admin.UserConfig{
			{Username: "x", Password: pw, Role: "root"},
			{Username: "x", Password: "short", Role: admin.RoleSystem},
			{Username: "x", Password: pw, Role: admin.RoleDomain},
			{Username: "x", Password: pw, Role: admin.RoleSystem, Domains: []string{"A"}},
			{Username: "x y", Password: pw, Role: admin.RoleSystem},
		} {
			if _, err := admin.New(admin.Options{Store: e.st, Config: admin.Config{Users: []admin.UserConfig{bad}}}); err == nil {
				t.Errorf("config %+v accepted", bad)
			}
		}
		acc, _ = admin.New(admin.Options{Store: e.st, Config: admin.Config{BcryptCost: 4,
			Users: []admin.UserConfig{{Username: "y", Password: pw, Role: admin.RoleDomain, Domains: []string{"Nope"}}}}})
		if err := acc.ApplyConfig(context.Background()); err == nil || !strings.Contains(err.Error(), `domain "Nope"`) {
			t.Fatalf("unknown domain: %v", err)
		}
		if read().Disabled {
			t.Fatal("a failed apply changed dora (the transaction must roll back)")
		}
	})
}

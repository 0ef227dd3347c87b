package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadFullFile(t *testing.T) {
	c, err := Load("testdata/full.yaml", env(map[string]string{
		"KP_TEST_DSN": "postgres://kp:secret@db:5432/kp",
		"MD_PASSWORD": "s3cr#t: with yaml syntax",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.Server.Addr != "0.0.0.0:9090" || c.Server.ReadTimeout != 10*time.Second {
		t.Errorf("server = %+v", c.Server)
	}
	if c.Server.WriteTimeout != 60*time.Second {
		t.Errorf("unset write_timeout = %v, want default 60s", c.Server.WriteTimeout)
	}
	if c.Store.DSN != "postgres://kp:secret@db:5432/kp" || c.Store.SQLiteSynchronous != "NORMAL" {
		t.Errorf("store = %+v", c.Store)
	}
	if got := c.Koppeltaal.Instances[0].Password; got != "s3cr#t: with yaml syntax" {
		t.Errorf("substituted password = %q: a secret with YAML syntax must arrive verbatim", got)
	}
	if len(c.Routes) != 1 || c.Routes[0] != "routes/*.yaml" {
		t.Errorf("routes = %v", c.Routes)
	}
}

func TestStrictDecodingNamesFileLineAndKey(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{"misspelled top-level key", "server:\n  addr: x\nstroe:\n  dsn: y\n",
			[]string{"bad.yaml:3:1: error: ", `unknown key "stroe" in the top level`, `did you mean "store"`}},
		{"misspelled nested key", "server:\n  adr: 127.0.0.1:1\n",
			[]string{"bad.yaml:2:3: ", `unknown key "adr" in server`, `did you mean "addr"`}},
		{"unknown key inside a list item", "koppeltaal:\n  instances:\n    - application: A\n      pasword: x\n",
			[]string{"bad.yaml:4:7: ", `unknown key "pasword" in koppeltaal.instances[0]`, `did you mean "password"`}},
		{"wrong type", "server:\n  read_timeout: soon\n", []string{"bad.yaml:2:17: ", "soon", "time.Duration"}},
		{"bad number", "koppeltaal:\n  max_retries: many\n", []string{"bad.yaml:2:16: ", "many"}},
		{"unset variable", "store:\n  dsn: ${KP_NOT_SET_ANYWHERE}\n", []string{"bad.yaml:2:8: ", "KP_NOT_SET_ANYWHERE is not set"}},
		{"not YAML", "server: [unclosed\n", []string{"bad.yaml"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(tc.yaml), env(nil))
			if err == nil {
				t.Fatal("no error")
			}
			// One diagnostic: the position and message, the source line, a caret (internal/strictyaml).
			if lines := strings.Split(err.Error(), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "bad.yaml:") || !strings.HasSuffix(lines[2], "^") {
				t.Errorf("error is not one diagnostic with a caret: %q", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestEnvDefaultsAndEscapes(t *testing.T) {
	c, err := Parse("x.yaml", []byte("store:\n  dsn: ${KP_DSN:-/tmp/kp.db}\nserver:\n  public_url: $${NOT_A_VAR}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Store.DSN != "/tmp/kp.db" {
		t.Errorf("dsn = %q, want the ${VAR:-default} default", c.Store.DSN)
	}
	if c.Server.PublicURL != "${NOT_A_VAR}" {
		t.Errorf("public_url = %q, want the escaped literal", c.Server.PublicURL)
	}
}

func TestEmptyFileGivesDefaultsAndEnvOverrides(t *testing.T) {
	c, err := Parse("empty.yaml", nil, env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.Addr != DefaultAddr || c.Store.DSN != DefaultDSN {
		t.Errorf("defaults = %+v %+v", c.Server, c.Store)
	}
	if c.Koppeltaal != nil {
		t.Errorf("a config file without a koppeltaal section must not get the demo domain")
	}
	c.ApplyEnv(env(map[string]string{EnvAddr: "127.0.0.1:9999", EnvDSN: "postgres://x@y/z"}))
	if c.Server.Addr != "127.0.0.1:9999" || c.Store.DSN != "postgres://x@y/z" {
		t.Errorf("env overrides not applied: %+v %+v", c.Server, c.Store)
	}
}

func TestValidateRejectsBadValues(t *testing.T) {
	c, err := Parse("v.yaml", []byte("store:\n  sqlite_synchronous: OFF\nlog:\n  level: loud\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	err = c.Validate()
	if err == nil {
		t.Fatal("no error")
	}
	for _, w := range []string{"v.yaml", "store.sqlite_synchronous", "OFF", "log.level", "loud"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestDefaultHasDemoDomain(t *testing.T) {
	c := Default()
	if c.Koppeltaal == nil || len(c.Koppeltaal.Domains) == 0 || len(c.Koppeltaal.Instances) == 0 {
		t.Fatalf("embedded default has no demo domain: %+v", c.Koppeltaal)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("embedded default does not validate: %v", err)
	}
}

// TestSyntaxErrorPosition: a YAML syntax error in a real file is reported as file:line:column of the place
// the parser stopped (line 22, where ',' or ']' was expected), with the construct it was in.
func TestSyntaxErrorPosition(t *testing.T) {
	_, err := Load("testdata/syntax-error.yaml", env(nil))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{"testdata/syntax-error.yaml:22:15: ", "did not find expected ',' or ']'", "flow sequence", "line 20, column 22"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if lines := strings.Split(err.Error(), "\n"); len(lines) != 3 || lines[2] != strings.Repeat(" ", 4+14)+"^" {
		t.Errorf("error is not one diagnostic with a caret under column 15: %q", err)
	}
}

// The public URL is configuration, never the request's Host (issue 16 item 9):
// derived from a listen address that names a host, required otherwise.
func TestPublicURL(t *testing.T) {
	cases := []struct {
		addr, public, want, err string
	}{
		{"127.0.0.1:8080", "", "http://127.0.0.1:8080", ""},
		{"localhost:9000", "", "http://localhost:9000", ""},
		{"[::1]:8080", "", "http://[::1]:8080", ""},
		{"0.0.0.0:8080", "", "", "server.public_url is required"},
		{":8080", "", "", "server.public_url is required"},
		{"[::]:8080", "", "", "server.public_url is required"},
		{"127.0.0.1:0", "", "", "known once the port is bound"},
		{"0.0.0.0:8080", "https://kt.example.org/", "https://kt.example.org", ""},
		{"0.0.0.0:8080", "https://kt.example.org:8443", "https://kt.example.org:8443", ""},
		{"0.0.0.0:8080", "https://kt.example.org/koppeltaal", "", "no path"},
		{"0.0.0.0:8080", "kt.example.org", "", "want scheme://host"},
		{"0.0.0.0:8080", "ftp://kt.example.org", "", "want scheme://host"},
	}
	for _, c := range cases {
		got, err := ServerConfig{Addr: c.addr, PublicURL: c.public}.Public()
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("addr %q public_url %q: %q, %v; want %q, %q", c.addr, c.public, got, err, c.want, c.err)
		}
	}
	if err := (ServerConfig{Addr: "127.0.0.1:0"}).checkPublic(); err != nil {
		t.Errorf("port 0 before binding: %v", err)
	}
	c, err := Parse("m.yaml", []byte("koppeltaal:\n  public_url: https://kt.example.org\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "moved to server.public_url") {
		t.Errorf("koppeltaal.public_url: %v", err)
	}
	c, _ = Parse("e.yaml", nil, env(nil))
	c.ApplyEnv(env(map[string]string{EnvPublicURL: "https://env.example"}))
	if got, _ := c.Server.Public(); got != "https://env.example" {
		t.Errorf("%s: %q", EnvPublicURL, got)
	}
}

func TestTrustedProxies(t *testing.T) {
	p, err := ServerConfig{TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7", "2001:db8::/32", "10.1.2.3/8"}}.Proxies()
	if err != nil || fmt.Sprint(p) != "[10.0.0.0/8 192.0.2.7/32 2001:db8::/32 10.0.0.0/8]" {
		t.Fatalf("proxies: %v %v", p, err)
	}
	if _, err := (ServerConfig{TrustedProxies: []string{"proxy.example"}}).Proxies(); err == nil || !strings.Contains(err.Error(), "trusted_proxies[0]") {
		t.Fatalf("a host name: %v", err)
	}
}

// server.tls: the settings go together, and the public URL a TLS server derives or is given is https.
func TestTLSSettings(t *testing.T) {
	c, err := Parse("t.yaml", []byte("server:\n  tls: {cert_file: /etc/kp/tls.crt, key_file: /etc/kp/tls.key, client_ca_file: /etc/kp/epd-ca.pem, client_auth: require}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if got, _ := c.Server.Public(); got != "https://127.0.0.1:8080" {
		t.Errorf("public URL with TLS: %q", got)
	}
	if c, _ := Parse("t.yaml", nil, env(nil)); c.Server.TLS.ClientAuth != "none" || c.Server.TLS.Enabled() {
		t.Errorf("defaults: %+v", c.Server.TLS)
	}
	bad := []struct{ yaml, want string }{
		{"server:\n  tls: {cert_file: a.crt}\n", "cert_file and key_file go together"},
		{"server:\n  tls: {cert_file: a.crt, key_file: a.key, client_auth: require}\n", "client_auth require needs client_ca_file"},
		{"server:\n  tls: {cert_file: a.crt, key_file: a.key, client_ca_file: ca.pem}\n", "client_auth is none"},
		{"server:\n  tls: {cert_file: a.crt, key_file: a.key, client_auth: maybe}\n", `client_auth: "maybe" is not one of none, optional, require`},
		{"server:\n  tls: {client_auth: optional, client_ca_file: ca.pem}\n", "client certificates need TLS"},
		{"server:\n  public_url: http://kt.example.org\n  tls: {cert_file: a.crt, key_file: a.key}\n", "is http but server.tls is set"},
	}
	for _, b := range bad {
		c, err := Parse("t.yaml", []byte(b.yaml), env(nil))
		if err == nil {
			err = c.Validate()
		}
		if err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("%q: %v; want %q", b.yaml, err, b.want)
		}
	}
	if _, err := Parse("t.yaml", []byte("server:\n  tls: {cert: a.crt}\n"), env(nil)); err == nil || !strings.Contains(err.Error(), `unknown key "cert"`) {
		t.Errorf("a misspelled key: %v", err)
	}
}

package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

// `serve` with server.tls terminates TLS itself: HTTPS links, HSTS, a client certificate required; a new
// certificate on disk is served after SIGHUP and after a file change alone; a broken pair keeps the old one
// (issue 15: TLS).
func TestServeTerminatesTLS(t *testing.T) {
	dir := t.TempDir()
	ca, clients := testkit.NewCA(t, "server CA"), testkit.NewCA(t, "EPD CA")
	ca.IssueFiles(t, dir, "server", testkit.CertOptions{CommonName: "first"})
	testkit.WriteFile(t, filepath.Join(dir, "epd-ca.pem"), clients.PEM)
	// Relative paths are relative to the configuration file, wherever serve is started.
	cfg := "server:\n  tls: {cert_file: server.crt, key_file: server.key, client_ca_file: epd-ca.pem, client_auth: require}\n" +
		"store: {dsn: ./kp.db}\nkoppeltaal:\n  domains:\n    - name: D\n"
	testkit.WriteFile(t, filepath.Join(dir, "kp.yaml"), []byte(cfg))
	withCert := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{clients.ClientCertificate(t, "epd.example")}}
	client := func(c *tls.Config) *http.Client {
		return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c, DisableKeepAlives: true}}
	}
	base, cmd, _, stderr := startBinaryWith(t, client(withCert), "https", t.TempDir(), []string{"KOPPELPOORT_PUBLIC_URL="},
		"--config", filepath.Join(dir, "kp.yaml"))

	resp, err := client(withCert).Get(base + "/FHIR/Koppeltaal/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `<valueUri value="`+base+`/OAuth2/Koppeltaal/Authorize"/>`) {
		t.Errorf("the links do not start with %s: %s", base, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security %q", got)
	}
	if resp, err := client(&tls.Config{RootCAs: ca.Pool()}).Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("a caller without a client certificate got %d", resp.StatusCode)
	}

	served := func() string {
		t.Helper()
		resp, err := client(withCert).Get(base + "/healthz")
		if err != nil {
			t.Fatalf("%v\n%s", err, stderr)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	waitFor := func(cn, logged string) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for served() != cn || !strings.Contains(stderr.String(), logged) {
			if time.Now().After(deadline) {
				t.Fatalf("%q not served, or no %s in the log:\n%s", cn, logged, stderr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	write := func(cn string) (key []byte) {
		c, k := ca.Issue(t, testkit.CertOptions{CommonName: cn})
		testkit.WriteFile(t, filepath.Join(dir, "server.key"), k)
		testkit.WriteFile(t, filepath.Join(dir, "server.crt"), c)
		return k
	}
	if cn := served(); cn != "first" {
		t.Fatalf("served %q", cn)
	}

	write("second")
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor("second", `"trigger":"SIGHUP","cert_file":"`+filepath.Join(dir, "server.crt")+`","client_auth":"require","subject":"CN=second"`)

	write("third") // no signal: the watcher finds the change
	waitFor("third", `"trigger":"file change","cert_file":"`+filepath.Join(dir, "server.crt")+`","client_auth":"require","subject":"CN=third"`)

	// A broken pair (the certificate of "fourth", the key of "third" still on disk) keeps "third".
	c, _ := ca.Issue(t, testkit.CertOptions{CommonName: "fourth"})
	testkit.WriteFile(t, filepath.Join(dir, "server.crt"), c)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(stderr.String(), `"msg":"tls certificate reload refused; the running certificate is unchanged","trigger":"SIGHUP"`) {
		if time.Now().After(deadline) {
			t.Fatalf("a broken pair is not refused in the log:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if cn := served(); cn != "third" {
		t.Errorf("after a broken pair %q is served; want %q", cn, "third")
	}
}

// A certificate serve cannot use stops it at start, naming the file, before the database is created.
func TestServeRefusesABrokenCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testkit.NewCA(t, "CA")
	_, key := ca.IssueFiles(t, dir, "a", testkit.CertOptions{})
	cert, _ := ca.IssueFiles(t, dir, "b", testkit.CertOptions{})
	cfg := filepath.Join(dir, "kp.yaml")
	testkit.WriteFile(t, cfg, []byte("server:\n  tls: {cert_file: "+cert+", key_file: "+key+"}\nstore: {dsn: "+filepath.Join(dir, "kp.db")+"}\n"))
	line := runFailing(t, nil, "serve", "--addr", testkit.FreeAddr(t), "--config", cfg)
	if !strings.Contains(line, "server.tls: tls certificate "+cert+" with key "+key+": tls: private key does not match public key") {
		t.Errorf("error: %s", line)
	}
	if _, err := os.Stat(filepath.Join(dir, "kp.db")); !os.IsNotExist(err) {
		t.Errorf("the database was created before the certificate was checked (stat: %v)", err)
	}
}

// The alternative: a reverse proxy terminates TLS (here a real HTTPS proxy on 127.0.0.1) in front of serve with
// server.public_url and server.trusted_proxies. The links are the proxy's https URL, the replies carry HSTS, the
// request log names the proxy and the client it forwarded for (docs/security.md#behind-a-reverse-proxy).
func TestServeBehindATLSProxy(t *testing.T) {
	var target *url.URL
	proxy := httptest.NewTLSServer(&httputil.ReverseProxy{Rewrite: func(r *httputil.ProxyRequest) {
		r.SetURL(target)
		r.SetXForwarded()
		// The client as a proxy on another machine would name it (here every party is on 127.0.0.1).
		r.Out.Header.Set("X-Forwarded-For", "192.0.2.10")
	}})
	defer proxy.Close()
	dir := t.TempDir()
	cfg := "server:\n  public_url: " + proxy.URL + "\n  trusted_proxies: [127.0.0.1]\n" +
		"store: {dsn: ./kp.db}\nkoppeltaal:\n  domains:\n    - name: D\n"
	testkit.WriteFile(t, filepath.Join(dir, "kp.yaml"), []byte(cfg))
	base, _, _, stderr := startBinary(t, dir, []string{"KOPPELPOORT_PUBLIC_URL="}, "--config", filepath.Join(dir, "kp.yaml"))
	target, _ = url.Parse(base)

	resp, err := proxy.Client().Get(proxy.URL + "/FHIR/Koppeltaal/metadata")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<valueUri value="`+proxy.URL+`/OAuth2/Koppeltaal/Authorize"/>`) {
		t.Errorf("through the proxy: %d %s", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
		t.Errorf("Strict-Transport-Security through the proxy: %q", got)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), `"path":"/FHIR/Koppeltaal/metadata","status":200`) || !strings.Contains(stderr.String(), `"remote":"192.0.2.10","proxy":"127.0.0.1`) {
		if time.Now().After(deadline) {
			t.Fatalf("the request log does not name the proxy:\n%s", stderr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

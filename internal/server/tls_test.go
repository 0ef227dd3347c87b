package server

import (
	"crypto/tls"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/testkit"
)

// tlsServer serves over TLS with a certificate for 127.0.0.1 issued by ca; it returns the base URL, the files
// and the log.
func tlsServer(t *testing.T, ca *testkit.CA, files TLSFiles, o testkit.CertOptions) (string, TLSFiles, *testkit.Buffer) {
	t.Helper()
	dir := t.TempDir()
	if files.CertFile == "" {
		files.CertFile, files.KeyFile = ca.IssueFiles(t, dir, "server", o)
	}
	logs := &testkit.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	certs, err := NewTLS(files, logger)
	if err != nil {
		t.Fatal(err)
	}
	base, stop := startServer(t, Options{TLS: certs, Logger: logger})
	t.Cleanup(func() { _ = stop() })
	return base, files, logs
}

// tlsGet gets base/healthz on a new connection (a new handshake) with the client configuration c, trusting ca.
func tlsGet(base string, ca *testkit.CA, c *tls.Config) (*http.Response, error) {
	return tlsGetURL(base+"/healthz", ca, c)
}

func tlsGetURL(u string, ca *testkit.CA, c *tls.Config) (*http.Response, error) {
	c = c.Clone()
	c.RootCAs = ca.Pool()
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: c, DisableKeepAlives: true}}
	resp, err := client.Get(u)
	if err == nil {
		resp.Body.Close()
	}
	return resp, err
}

// The listener follows the NCSC TLS guidelines: TLS 1.3 and 1.2 with the "Goed" suites and curves are served,
// TLS 1.1, CBC suites, RSA key exchange and other curves are refused; every reply carries HSTS.
func TestTLSFollowsTheNCSCGuidelines(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	ecdsaBase, _, _ := tlsServer(t, ca, TLSFiles{}, testkit.CertOptions{CommonName: "ecdsa"})
	rsaBase, _, _ := tlsServer(t, ca, TLSFiles{}, testkit.CertOptions{CommonName: "rsa", RSABits: 2048})
	tls12 := func(suites ...uint16) *tls.Config {
		return &tls.Config{MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12, CipherSuites: suites}
	}
	cases := []struct {
		name   string
		base   string
		client *tls.Config
		ok     bool
	}{
		{"TLS 1.3", ecdsaBase, &tls.Config{MinVersion: tls.VersionTLS13}, true},
		{"TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256", ecdsaBase, tls12(tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256), true},
		{"TLS 1.2 ECDHE-ECDSA-AES256-GCM-SHA384", ecdsaBase, tls12(tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384), true},
		{"TLS 1.2 ECDHE-ECDSA-CHACHA20-POLY1305", ecdsaBase, tls12(tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256), true},
		{"TLS 1.2 ECDHE-RSA-AES256-GCM-SHA384", rsaBase, tls12(tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384), true},
		{"TLS 1.2 ECDHE-RSA-CHACHA20-POLY1305", rsaBase, tls12(tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256), true},
		{"TLS 1.2 with P-384 only", rsaBase, &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP384}}, true},
		{"TLS 1.1", ecdsaBase, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, false},
		{"TLS 1.0", ecdsaBase, &tls.Config{MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS10}, false},
		{"TLS 1.2 ECDHE-ECDSA-AES128-CBC-SHA", ecdsaBase, tls12(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA), false},
		{"TLS 1.2 ECDHE-ECDSA-AES128-CBC-SHA256", ecdsaBase, tls12(tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256), false},
		{"TLS 1.2 ECDHE-RSA-AES256-CBC-SHA", rsaBase, tls12(tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA), false},
		{"TLS 1.2 RSA key exchange AES128-GCM-SHA256", rsaBase, tls12(tls.TLS_RSA_WITH_AES_128_GCM_SHA256), false},
		{"TLS 1.2 RSA key exchange AES256-CBC-SHA", rsaBase, tls12(tls.TLS_RSA_WITH_AES_256_CBC_SHA), false},
		{"TLS 1.2 with P-521 only", rsaBase, &tls.Config{MaxVersion: tls.VersionTLS12, CurvePreferences: []tls.CurveID{tls.CurveP521}}, false},
	}
	for _, c := range cases {
		resp, err := tlsGet(c.base, ca, c.client)
		if !c.ok {
			if err == nil {
				t.Errorf("%s: served (%s, %s); want a refused handshake", c.name,
					tls.VersionName(resp.TLS.Version), tls.CipherSuiteName(resp.TLS.CipherSuite))
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got := resp.Header.Get("Strict-Transport-Security"); got != "max-age=31536000" {
			t.Errorf("%s: Strict-Transport-Security %q", c.name, got)
		}
	}
	// HSTS on an error reply too.
	resp, err := tlsGetURL(ecdsaBase+"/nothing-here", ca, &tls.Config{})
	if err != nil || resp.StatusCode != http.StatusNotFound || resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("404 over TLS: %v %v", resp, err)
	}
	// Plain HTTP on the TLS port gets no answer a client could take for a page.
	if resp, err := http.Get(strings.Replace(ecdsaBase, "https://", "http://", 1) + "/healthz"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP on the TLS port answered 200")
		}
	}
}

// Client certificates: with require, a caller without one or with one another CA signed is refused; with
// optional, one without may connect but a wrongly signed one is still refused. The log names a verified caller.
func TestTLSClientCertificates(t *testing.T) {
	ca, other := testkit.NewCA(t, "server CA"), testkit.NewCA(t, "another CA")
	clients := testkit.NewCA(t, "client CA")
	dir := t.TempDir()
	caFile := filepath.Join(dir, "clients.pem")
	testkit.WriteFile(t, caFile, clients.PEM)
	good := clients.ClientCertificate(t, "epd.example")
	forged := other.ClientCertificate(t, "epd.example")
	for _, mode := range []string{"require", "optional"} {
		t.Run(mode, func(t *testing.T) {
			base, _, logs := tlsServer(t, ca, TLSFiles{ClientCAFile: caFile, ClientAuth: mode}, testkit.CertOptions{})
			for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
				name := tls.VersionName(v)
				pin := &tls.Config{MinVersion: v, MaxVersion: v}
				_, err := tlsGet(base, ca, pin)
				if (err == nil) != (mode == "optional") {
					t.Errorf("%s, no client certificate: %v", name, err)
				}
				// Sent whatever CAs the server names (a client picking by the request's CA list would not send it).
				withForged := pin.Clone()
				withForged.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &forged, nil }
				if _, err := tlsGet(base, ca, withForged); err == nil {
					t.Errorf("%s: a certificate of another CA was accepted", name)
				}
				withGood := pin.Clone()
				withGood.Certificates = []tls.Certificate{good}
				if resp, err := tlsGetURL(base+"/logged", ca, withGood); err != nil || resp.StatusCode != http.StatusNotFound {
					t.Errorf("%s: the client CA's certificate: %v", name, err)
				}
			}
			if !strings.Contains(logs.String(), `"client_cert":"CN=epd.example"`) {
				t.Errorf("the verified caller is not in the request log:\n%s", logs)
			}
		})
	}
}

// servedCN is the common name of the certificate the server presents now.
func servedCN(t *testing.T, base string, ca *testkit.CA) string {
	t.Helper()
	resp, err := tlsGet(base, ca, &tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	return resp.TLS.PeerCertificates[0].Subject.CommonName
}

// A certificate written over the old files is served after Reload (SIGHUP) and, without a signal, once the
// watcher sees the files change; a broken pair (a key of another certificate) keeps the old one and says why.
func TestTLSReloadsTheCertificate(t *testing.T) {
	old := tlsPollInterval.Swap(int64(20 * time.Millisecond))
	defer tlsPollInterval.Store(old)
	ca := testkit.NewCA(t, "test CA")
	base, files, logs := tlsServer(t, ca, TLSFiles{}, testkit.CertOptions{CommonName: "first"})
	if cn := servedCN(t, base, ca); cn != "first" {
		t.Fatalf("served %q", cn)
	}
	write := func(cn string) {
		c, k := ca.Issue(t, testkit.CertOptions{CommonName: cn})
		testkit.WriteFile(t, files.KeyFile, k)
		testkit.WriteFile(t, files.CertFile, c)
	}
	waitFor := func(cn string) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for servedCN(t, base, ca) != cn {
			if time.Now().After(deadline) {
				t.Fatalf("%q not served after a file change:\n%s", cn, logs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	write("second")
	waitFor("second")
	if !strings.Contains(logs.String(), `"trigger":"file change"`) {
		t.Errorf("the reload is not logged as a file change:\n%s", logs)
	}

	// A broken pair: the certificate of "third" with the key of "second" still on disk.
	third, _ := ca.Issue(t, testkit.CertOptions{CommonName: "third"})
	mark := len(logs.String())
	testkit.WriteFile(t, files.CertFile, third)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String()[mark:], "tls certificate reload refused; the running certificate is unchanged") {
		if time.Now().After(deadline) {
			t.Fatalf("a broken pair is not logged:\n%s", logs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(logs.String()[mark:], "private key does not match public key") {
		t.Errorf("the refusal does not say why:\n%s", logs)
	}
	if cn := servedCN(t, base, ca); cn != "second" {
		t.Errorf("after a broken pair %q is served; want the old %q", cn, "second")
	}
	write("fourth")
	waitFor("fourth")
}

// Reload (what SIGHUP calls) serves the new pair at once, and refuses a broken one with the reason.
func TestTLSReload(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	dir := t.TempDir()
	certFile, keyFile := ca.IssueFiles(t, dir, "s", testkit.CertOptions{CommonName: "first"})
	logs := &testkit.Buffer{}
	certs, err := NewTLS(TLSFiles{CertFile: certFile, KeyFile: keyFile}, slog.New(slog.NewJSONHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	served := func() string {
		c, _ := certs.certificate(nil)
		return c.Leaf.Subject.CommonName
	}
	c, k := ca.Issue(t, testkit.CertOptions{CommonName: "second"})
	testkit.WriteFile(t, certFile, c)
	testkit.WriteFile(t, keyFile, k)
	if err := certs.Reload("SIGHUP"); err != nil || served() != "second" {
		t.Fatalf("after Reload: %q, %v", served(), err)
	}
	expired, k2 := ca.Issue(t, testkit.CertOptions{CommonName: "expired", NotAfter: time.Now().Add(-time.Minute)})
	testkit.WriteFile(t, certFile, expired)
	testkit.WriteFile(t, keyFile, k2)
	if err := certs.Reload("SIGHUP"); err == nil || !strings.Contains(err.Error(), "expired on") || served() != "second" {
		t.Errorf("an expired certificate: %v, serving %q", err, served())
	}
	if !strings.Contains(logs.String(), `"trigger":"SIGHUP"`) {
		t.Errorf("no SIGHUP in the log:\n%s", logs)
	}
}

// NewTLS refuses what cannot be served, naming the file and the reason.
func TestNewTLSRefusesBadFiles(t *testing.T) {
	ca := testkit.NewCA(t, "test CA")
	dir := t.TempDir()
	cert, key := ca.IssueFiles(t, dir, "good", testkit.CertOptions{})
	_, otherKey := ca.IssueFiles(t, dir, "other", testkit.CertOptions{})
	weak, weakKey := ca.IssueFiles(t, dir, "weak", testkit.CertOptions{RSABits: 1024})
	notPEM := filepath.Join(dir, "not.pem")
	testkit.WriteFile(t, notPEM, []byte("not a certificate\n"))
	cases := []struct {
		files TLSFiles
		want  string
	}{
		{TLSFiles{CertFile: filepath.Join(dir, "missing.crt"), KeyFile: key}, "missing.crt"},
		{TLSFiles{CertFile: cert, KeyFile: otherKey}, "private key does not match public key"},
		{TLSFiles{CertFile: cert, KeyFile: weakKey}, "private key type does not match"},
		{TLSFiles{CertFile: weak, KeyFile: weakKey}, "1024-bit RSA key"},
		{TLSFiles{CertFile: cert, KeyFile: key, ClientAuth: "require"}, "needs a client CA file"},
		{TLSFiles{CertFile: cert, KeyFile: key, ClientAuth: "require", ClientCAFile: notPEM}, "not.pem: no PEM certificate"},
		{TLSFiles{CertFile: cert, KeyFile: key, ClientAuth: "sometimes"}, `"sometimes"`},
	}
	for _, c := range cases {
		if _, err := NewTLS(c.files, quietLogger()); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: %v; want %q", c.files, err, c.want)
		}
	}
}

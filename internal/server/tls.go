package server

import (
	"context"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// TLSFiles names what serve terminates TLS with (config.TLSConfig).
type TLSFiles struct {
	CertFile, KeyFile string
	// ClientCAFile holds the CAs that sign the callers' client certificates ("" for none).
	ClientCAFile string
	// ClientAuth is "none", "optional" (verified when sent) or "require".
	ClientAuth string
}

// tlsPollInterval is how often the certificate files are looked at (nanoseconds; 2 s, tests set less); a
// change is loaded once the files have stayed the same for one more look, so a certificate and key written
// one after the other are read together. Atomic: a watcher of an earlier server may still be reading it.
var tlsPollInterval = func() *atomic.Int64 { var v atomic.Int64; v.Store(int64(2 * time.Second)); return &v }()

// hstsValue is the Strict-Transport-Security header of every reply over TLS: one year, as the NCSC advises.
// No includeSubDomains: other hosts of the domain are not ours to decide for.
const hstsValue = "max-age=31536000"

// TLS is the server's certificate, read from disk at start and again on Reload (SIGHUP) and when the files
// change (Watch). A pair that cannot be used — unreadable, key and certificate not matching, expired, an RSA key
// under 2048 bits — never replaces the one being served; the refusal is logged with its reason.
type TLS struct {
	files      TLSFiles
	clientAuth tls.ClientAuthType
	log        *slog.Logger
	mu         sync.Mutex                // one reload at a time (SIGHUP and the watcher)
	loaded     string                    // stamp of the files last loaded or refused
	current    atomic.Pointer[tlsLoaded] // what handshakes use
}

// tlsLoaded is one loaded set of files.
type tlsLoaded struct {
	cert   *tls.Certificate
	config *tls.Config // the connection's configuration when client certificates are asked for
}

// NewTLS loads the files; an error names the file that is wrong and why.
func NewTLS(files TLSFiles, logger *slog.Logger) (*TLS, error) {
	if logger == nil {
		logger = slog.Default()
	}
	t := &TLS{files: files, log: logger}
	switch files.ClientAuth {
	case "", "none":
		t.clientAuth = tls.NoClientCert
	case "optional":
		t.clientAuth = tls.VerifyClientCertIfGiven
	case "require":
		t.clientAuth = tls.RequireAndVerifyClientCert
	default:
		return nil, fmt.Errorf("tls client_auth %q: want none, optional or require", files.ClientAuth)
	}
	if t.clientAuth != tls.NoClientCert && files.ClientCAFile == "" {
		return nil, fmt.Errorf("tls client_auth %s needs a client CA file", files.ClientAuth)
	}
	t.loaded = t.stamp()
	l, err := t.load()
	if err != nil {
		return nil, err
	}
	t.current.Store(l)
	t.logLoaded("start", l)
	return t, nil
}

// Config is the listener's configuration, after the NCSC's "ICT-beveiligingsrichtlijnen voor Transport Layer
// Security" (2021): TLS 1.3 and 1.2 only; for 1.2 only their "Goed" suites — ECDHE key exchange with AES-GCM
// or ChaCha20-Poly1305, ECDSA or RSA certificates (no CBC, no RSA key exchange, no SHA-1 MACs); curves X25519,
// P-256 and P-384. TLS 1.3's three suites (AES-GCM, ChaCha20) are all "Goed" and are not configurable in Go.
func (t *TLS) Config() *tls.Config {
	c := ncscConfig()
	c.GetCertificate = t.certificate
	if t.clientAuth != tls.NoClientCert {
		// The client CAs are reloaded with the certificate: each handshake takes the configuration loaded last.
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return t.current.Load().config, nil }
	}
	return c
}

func ncscConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{ // TLS 1.2 only; in the NCSC's order (Go orders them itself)
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		},
		CurvePreferences: []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384},
		NextProtos:       []string{"h2", "http/1.1"},
	}
}

// certificate is the GetCertificate of every handshake: the pair loaded last.
func (t *TLS) certificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return t.current.Load().cert, nil
}

// Reload reads the files again; trigger ("SIGHUP", "file change") goes into the log line. On an error the
// certificate being served is unchanged.
func (t *TLS) Reload(trigger string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.loaded = t.stamp()
	l, err := t.load()
	if err != nil {
		t.log.Error("tls certificate reload refused; the running certificate is unchanged", "trigger", trigger, "error", err.Error())
		return err
	}
	t.current.Store(l)
	t.logLoaded(trigger, l)
	return nil
}

// Watch reloads when a file changes (its modification time or size), until ctx ends.
func (t *TLS) Watch(ctx context.Context) error {
	tick := time.NewTicker(time.Duration(tlsPollInterval.Load()))
	defer tick.Stop()
	pending := ""
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
		st := t.stamp()
		t.mu.Lock()
		loaded := t.loaded
		t.mu.Unlock()
		switch {
		case st == loaded:
			pending = ""
		case st != pending: // changed since the last look: wait until it holds still
			pending = st
		default:
			pending = ""
			_ = t.Reload("file change") // logged either way
		}
	}
}

// stamp sums up the files' modification times and sizes (os.Stat follows the symbolic links that certificate
// tools and Kubernetes secrets swap).
func (t *TLS) stamp() string {
	var b strings.Builder
	for _, f := range []string{t.files.CertFile, t.files.KeyFile, t.files.ClientCAFile} {
		if f == "" {
			continue
		}
		if fi, err := os.Stat(f); err == nil {
			fmt.Fprintf(&b, "%s %d %d;", f, fi.ModTime().UnixNano(), fi.Size())
		} else {
			fmt.Fprintf(&b, "%s missing;", f)
		}
	}
	return b.String()
}

// load reads and checks the files.
func (t *TLS) load() (*tlsLoaded, error) {
	cert, err := tls.LoadX509KeyPair(t.files.CertFile, t.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certificate %s with key %s: %w", t.files.CertFile, t.files.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("tls certificate %s: %w", t.files.CertFile, err)
		}
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("tls certificate %s expired on %s", t.files.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	} else if now.Before(leaf.NotBefore) {
		return nil, fmt.Errorf("tls certificate %s is not valid before %s", t.files.CertFile, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	if k, ok := leaf.PublicKey.(*rsa.PublicKey); ok && k.N.BitLen() < 2048 {
		return nil, fmt.Errorf("tls certificate %s has a %d-bit RSA key; the NCSC guidelines ask for at least 2048 (better 3072) bits or ECDSA",
			t.files.CertFile, k.N.BitLen())
	}
	l := &tlsLoaded{cert: &cert}
	if t.clientAuth == tls.NoClientCert {
		return l, nil
	}
	pem, err := os.ReadFile(t.files.ClientCAFile)
	if err != nil {
		return nil, fmt.Errorf("tls client CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("tls client CA file %s: no PEM certificate in it", t.files.ClientCAFile)
	}
	l.config = ncscConfig()
	l.config.GetCertificate = t.certificate
	l.config.ClientAuth = t.clientAuth
	l.config.ClientCAs = pool
	return l, nil
}

func (t *TLS) logLoaded(trigger string, l *tlsLoaded) {
	leaf := l.cert.Leaf
	if leaf == nil {
		leaf, _ = x509.ParseCertificate(l.cert.Certificate[0])
	}
	attrs := []any{"trigger", trigger, "cert_file", t.files.CertFile, "client_auth", t.files.ClientAuth}
	if leaf != nil {
		attrs = append(attrs, "subject", leaf.Subject.String(), "dns_names", leaf.DNSNames,
			"not_after", leaf.NotAfter.UTC().Format(time.RFC3339), "serial", leaf.SerialNumber.String())
	}
	t.log.Info("tls certificate loaded", attrs...)
}

// hsts tells browsers to use only HTTPS for this host from now on (on every reply, errors included).
func hsts(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Strict-Transport-Security", hstsValue)
		next.ServeHTTP(w, r)
	})
}

// Package config loads the Koppelpoort configuration file: one YAML document,
// decoded strictly (an unknown or misspelled key is an error naming the file,
// line and key), with ${VAR} substitution from the environment for secrets and
// documented defaults for every setting.
package config

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/admin"
	"github.com/koppelpoort/koppelpoort/audit"
	"github.com/koppelpoort/koppelpoort/httplog"
	"github.com/koppelpoort/koppelpoort/internal/loginlimit"
	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/internal/suggest"
	"github.com/koppelpoort/koppelpoort/internal/tracing"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
	"go.yaml.in/yaml/v4"
)

// Environment variables that override the file (and are overridden by flags).
const (
	EnvAddr      = "KOPPELPOORT_ADDR"       // listen address, e.g. 0.0.0.0:8080
	EnvDSN       = "KOPPELPOORT_DSN"        // store: a SQLite path or a postgres:// URL
	EnvPublicURL = "KOPPELPOORT_PUBLIC_URL" // the URL clients reach the server at
)

// Defaults of the embedded default setup (`koppelpoort serve` without a file).
const (
	DefaultAddr = "127.0.0.1:8080"
	DefaultDSN  = "./koppelpoort-data/koppelpoort.db"
)

// Config is the whole configuration file.
type Config struct {
	// Server is the HTTP listener.
	Server ServerConfig `yaml:"server" doc:"the HTTP listener"`
	// Store is the database: SQLite (default) or PostgreSQL.
	Store StoreConfig `yaml:"store" doc:"the database: SQLite (default) or PostgreSQL"`
	// Log controls the structured logs written to standard error.
	Log LogConfig `yaml:"log" doc:"structured logs on standard error"`
	// Koppeltaal holds the domains, applications and instances this server serves.
	// Absent: no Koppeltaal domains (the built-in demo domain is used only when
	// Koppelpoort runs without a configuration file).
	Koppeltaal *koppeltaal.Config `yaml:"koppeltaal" doc:"the domains, applications and instances this Koppeltaal server serves"`
	// Admin holds the administrator accounts and session settings of the console and the Support API.
	Admin admin.Config `yaml:"admin" doc:"administrator accounts and sessions of the console and the Support API"`
	// Audit is the audit trail of access to patient data (NEN 7513).
	Audit audit.Config `yaml:"audit" doc:"the audit trail of access to patient data (NEN 7513)"`
	// HTTPLog is the HTTP request log in the database (SPEC.md §10.1/§11).
	HTTPLog httplog.Config `yaml:"http_log" doc:"the HTTP request log in the database (IntegrationMessageLogs): caller, status, duration of every call"`
	// Tracing exports OpenTelemetry traces to an OTLP/HTTP collector (off by default).
	Tracing tracing.Config `yaml:"tracing" doc:"OpenTelemetry traces to an OTLP/HTTP collector (off by default)"`
	// Routes lists gateway route files or glob patterns, relative to the config file.
	Routes []string `yaml:"routes" doc:"gateway route files or glob patterns, relative to this file"`

	// Path is the file this configuration was read from ("" for the embedded default).
	Path string `yaml:"-"`
}

// ServerConfig is the `server:` section.
type ServerConfig struct {
	// Addr is the listen address. Default 127.0.0.1:8080; env KOPPELPOORT_ADDR overrides.
	Addr string `yaml:"addr"`
	// ReadTimeout bounds reading a whole request. Default 30s.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout bounds writing a response. Default 60s.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// ShutdownTimeout is how long in-flight requests get on SIGINT/SIGTERM. Default 15s.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// PublicURL is the URL clients reach this server at (scheme://host[:port],
	// no path). Every absolute URL the server writes — Conformance OAuth URIs,
	// the Launch iss, links in bundles — starts with it; the request's Host and
	// X-Forwarded-* headers never make it into one. Default http://<addr> (with
	// the port bound when addr asks for port 0) when addr names a host; required
	// when addr listens on all interfaces. Env KOPPELPOORT_PUBLIC_URL and flag
	// --public-url override.
	PublicURL string `yaml:"public_url"`
	// TrustedProxies are the reverse proxies in front of this server (IP
	// addresses or CIDR prefixes such as 10.0.0.0/8). Only when the TCP peer is
	// one of them are X-Forwarded-For / Forwarded (the client's address, for
	// failed-login limits and logs) and X-Forwarded-Proto believed. Default
	// none: the TCP peer is the client.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// FailedLogins limits password guessing against instances, OAuth clients and
	// administrators (docs/security.md): window 15m, per_account_and_address 10,
	// per_account 20, per_address 100, remember_good 720h.
	FailedLogins loginlimit.Config `yaml:"failed_logins"`
	// Metrics protects /metrics: on a listen address of its own, and/or behind a bearer token.
	Metrics MetricsConfig `yaml:"metrics"`
	// TLS makes serve terminate TLS itself (NCSC guidelines, HSTS, optional client certificates) instead of
	// leaving it to a reverse proxy. Default off.
	TLS TLSConfig `yaml:"tls"`
}

// TLSConfig is `server.tls`. With cert_file and key_file set, serve speaks only HTTPS on server.addr; the
// files (relative paths are relative to the configuration file) are read again on SIGHUP and when they change
// (docs/security.md#tls).
type TLSConfig struct {
	// CertFile is the PEM certificate chain (the server's certificate first).
	CertFile string `yaml:"cert_file"`
	// KeyFile is the PEM private key of that certificate.
	KeyFile string `yaml:"key_file"`
	// ClientCAFile holds the PEM CA certificates that client certificates must be signed by.
	ClientCAFile string `yaml:"client_ca_file"`
	// ClientAuth is none (default), optional (a client certificate is verified when sent) or require
	// (no connection without one); optional and require need client_ca_file.
	ClientAuth string `yaml:"client_auth" schema:"enum=none|optional|require"`
}

// Enabled reports whether serve terminates TLS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// validate checks that the settings go together; the files themselves are read by serve at start.
func (t TLSConfig) validate() error {
	var errs []error
	if t.Enabled() && (t.CertFile == "" || t.KeyFile == "") {
		errs = append(errs, fmt.Errorf("server.tls: cert_file and key_file go together (one of them is empty)"))
	}
	switch t.ClientAuth {
	case "", "none":
		if t.ClientCAFile != "" {
			errs = append(errs, fmt.Errorf("server.tls.client_ca_file is set but client_auth is none: set client_auth to optional or require"))
		}
	case "optional", "require":
		if t.ClientCAFile == "" {
			errs = append(errs, fmt.Errorf("server.tls.client_auth %s needs client_ca_file (the CA that signs the callers' certificates)", t.ClientAuth))
		}
	default:
		errs = append(errs, fmt.Errorf("server.tls.client_auth: %q is not one of none, optional, require", t.ClientAuth))
	}
	if !t.Enabled() && (t.ClientCAFile != "" || t.ClientAuth == "optional" || t.ClientAuth == "require") {
		errs = append(errs, fmt.Errorf("server.tls: client certificates need TLS: set cert_file and key_file"))
	}
	return errors.Join(errs...)
}

// MetricsConfig is `server.metrics`. Both empty (the default): /metrics is
// open on the main address, like /healthz — fine on 127.0.0.1, not on an
// address others reach.
type MetricsConfig struct {
	// Addr serves /metrics on this listen address only (e.g. 127.0.0.1:9090), not on the main one.
	Addr string `yaml:"addr"`
	// Token makes /metrics require "Authorization: Bearer <token>" (use ${VAR}).
	Token string `yaml:"token"`
}

// Public returns the public URL: PublicURL, or http://<addr> (https:// when serve terminates TLS) when addr
// names a host and a port a client can reach.
func (s ServerConfig) Public() (string, error) {
	if s.PublicURL != "" {
		u, err := url.Parse(s.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" ||
			strings.Trim(u.Path, "/") != "" || u.User != nil {
			return "", fmt.Errorf("server.public_url %q: want scheme://host[:port] (http or https, no path), such as https://kt.example.org", s.PublicURL)
		}
		if u.Scheme == "http" && s.TLS.Enabled() {
			return "", fmt.Errorf("server.public_url %q is http but server.tls is set: this server only speaks HTTPS, so every link it writes would be wrong (use https://%s)", s.PublicURL, u.Host)
		}
		return u.Scheme + "://" + u.Host, nil
	}
	host, port, err := net.SplitHostPort(s.Addr)
	if err != nil {
		return "", fmt.Errorf("server.addr %q: %v", s.Addr, err)
	}
	if ip, perr := netip.ParseAddr(host); host == "" || (perr == nil && ip.IsUnspecified()) {
		return "", fmt.Errorf("server.public_url is required when server.addr (%s) listens on all interfaces: "+
			"set it (or env KOPPELPOORT_PUBLIC_URL, flag --public-url) to the URL clients reach this server at, "+
			"such as https://kt.example.org", s.Addr)
	}
	if port == "0" {
		return "", fmt.Errorf("server.addr %s: the public URL is known once the port is bound", s.Addr)
	}
	scheme := "http"
	if s.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + net.JoinHostPort(host, port), nil
}

// checkPublic is Public before the listen address is bound (port 0 allowed).
func (s ServerConfig) checkPublic() error {
	if host, port, err := net.SplitHostPort(s.Addr); err == nil && port == "0" && s.PublicURL == "" {
		s.Addr = net.JoinHostPort(host, "1")
	}
	_, err := s.Public()
	return err
}

// Proxies parses TrustedProxies.
func (s ServerConfig) Proxies() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for i, v := range s.TrustedProxies {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			a, aerr := netip.ParseAddr(v)
			if aerr != nil {
				return nil, fmt.Errorf("server.trusted_proxies[%d]: %q is not an IP address or CIDR prefix (such as 10.0.0.0/8)", i, v)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}

// StoreConfig is the `store:` section.
type StoreConfig struct {
	// DSN is a SQLite file path or a postgres:// URL. Default ./koppelpoort-data/koppelpoort.db;
	// env KOPPELPOORT_DSN overrides.
	DSN string `yaml:"dsn"`
	// SQLiteSynchronous is SQLite's synchronous pragma: FULL (default: every commit fsynced) or NORMAL.
	SQLiteSynchronous string `yaml:"sqlite_synchronous" schema:"enum=FULL|NORMAL|full|normal"`
	// BusyTimeout is how long SQLite waits for a lock held by another process. Default 10s.
	BusyTimeout time.Duration `yaml:"busy_timeout"`
	// MaxOpenConns caps the connection pool (PostgreSQL) or the read pool (SQLite). Default 10.
	MaxOpenConns int `yaml:"max_open_conns"`
}

// LogConfig is the `log:` section.
type LogConfig struct {
	// Level is debug, info (default), warn or error.
	Level string `yaml:"level" schema:"enum=debug|info|warn|error"`
	// Format is json (default) or text.
	Format string `yaml:"format" schema:"enum=json|text"`
}

// Default returns the embedded default configuration: SQLite under
// ./koppelpoort-data, HTTP on 127.0.0.1:8080, the demo Koppeltaal domain.
func Default() *Config {
	c := &Config{}
	demo := koppeltaal.DemoConfig()
	c.Koppeltaal = &demo
	c.Admin = admin.DemoConfig()
	c.setDefaults()
	return c
}

func (c *Config) setDefaults() {
	if c.Server.Addr == "" {
		c.Server.Addr = DefaultAddr
	}
	if c.Server.ReadTimeout == 0 {
		c.Server.ReadTimeout = 30 * time.Second
	}
	if c.Server.WriteTimeout == 0 {
		c.Server.WriteTimeout = 60 * time.Second
	}
	if c.Server.ShutdownTimeout == 0 {
		c.Server.ShutdownTimeout = 15 * time.Second
	}
	if c.Server.TLS.ClientAuth == "" {
		c.Server.TLS.ClientAuth = "none"
	}
	if c.Koppeltaal != nil {
		c.Koppeltaal.SetDefaults()
	}
	c.Admin.SetDefaults()
	if c.Store.DSN == "" {
		c.Store.DSN = DefaultDSN
	}
	if c.Store.SQLiteSynchronous == "" {
		c.Store.SQLiteSynchronous = "FULL"
	}
	if c.Log.Level == "" {
		c.Log.Level = "info"
	}
	if c.Log.Format == "" {
		c.Log.Format = "json"
	}
	c.Tracing.SetDefaults()
}

// Validate checks values that decoding alone cannot.
func (c *Config) Validate() error {
	var errs []error
	switch strings.ToUpper(c.Store.SQLiteSynchronous) {
	case "FULL", "NORMAL":
	default:
		errs = append(errs, fmt.Errorf("store.sqlite_synchronous: %q is not FULL or NORMAL", c.Store.SQLiteSynchronous))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		errs = append(errs, fmt.Errorf("log.level: %q is not one of debug, info, warn, error", c.Log.Level))
	}
	switch c.Log.Format {
	case "json", "text":
	default:
		errs = append(errs, fmt.Errorf("log.format: %q is not one of json, text", c.Log.Format))
	}
	if c.Store.MaxOpenConns < 0 {
		errs = append(errs, fmt.Errorf("store.max_open_conns: must not be negative"))
	}
	if c.Store.BusyTimeout < 0 {
		errs = append(errs, fmt.Errorf("store.busy_timeout: must not be negative"))
	}
	if err := c.Server.checkPublic(); err != nil {
		errs = append(errs, err)
	}
	if _, err := c.Server.Proxies(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Server.TLS.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Koppeltaal != nil && c.Koppeltaal.PublicURL != "" {
		errs = append(errs, fmt.Errorf("koppeltaal.public_url: moved to server.public_url (one public URL for every link the server writes)"))
	}
	if c.Koppeltaal != nil {
		if err := c.Koppeltaal.Validate(); err != nil {
			errs = append(errs, err) // its messages name their key (koppeltaal.…)
		}
	}
	if err := c.Admin.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Audit.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.HTTPLog.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.Tracing.Validate(); err != nil {
		errs = append(errs, err)
	}
	if c.Path == "" || len(errs) == 0 {
		return errors.Join(errs...) // the embedded default: no file to name
	}
	// One diagnostic a problem, naming the file (no position: the values are checked after decoding), so
	// lint and serve print them like the decoder's own.
	var ds strictyaml.Diagnostics
	for _, err := range leafErrors(errs) {
		ds = append(ds, strictyaml.Diagnostic{File: c.Path, Severity: strictyaml.SevError, Message: err.Error()})
	}
	return ds
}

// leafErrors flattens errors.Join lists (a section's Validate joins its own), so each problem is one; an
// error that says more than its parts (fmt.Errorf with two %w) stays whole.
func leafErrors(errs []error) []error {
	var out []error
	for _, err := range errs {
		j, ok := err.(interface{ Unwrap() []error })
		if !ok {
			out = append(out, err)
			continue
		}
		parts := j.Unwrap()
		msgs := make([]string, len(parts))
		for i, p := range parts {
			msgs[i] = p.Error()
		}
		if err.Error() != strings.Join(msgs, "\n") {
			out = append(out, err)
			continue
		}
		out = append(out, leafErrors(parts)...)
	}
	return out
}

// ApplyEnv applies the KOPPELPOORT_ADDR, KOPPELPOORT_DSN and KOPPELPOORT_PUBLIC_URL overrides.
func (c *Config) ApplyEnv(getenv func(string) string) {
	if v := getenv(EnvAddr); v != "" {
		c.Server.Addr = v
	}
	if v := getenv(EnvDSN); v != "" {
		c.Store.DSN = v
	}
	if v := getenv(EnvPublicURL); v != "" {
		c.Server.PublicURL = v
	}
}

// Load reads and strictly decodes the file at path, substituting ${VAR}
// from the environment, and fills in defaults. Errors name the file and line.
func Load(path string, getenv func(string) string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	c, err := Parse(path, raw, getenv)
	if err != nil {
		return nil, err
	}
	return c, nil
}

// Parse decodes raw as the configuration file named path (used in errors); an empty file is all defaults.
func Parse(path string, raw []byte, getenv func(string) string) (*Config, error) {
	c := &Config{Path: path}
	if err := strictyaml.Decode(path, raw, strictyaml.Getenv(getenv), c); err != nil {
		return nil, err
	}
	c.Path = path
	c.setDefaults()
	for _, f := range []*string{&c.Server.TLS.CertFile, &c.Server.TLS.KeyFile, &c.Server.TLS.ClientCAFile} {
		*f = c.resolve(*f)
	}
	return c, nil
}

// IsConfigFile reports whether src looks like a Koppelpoort configuration file rather than a route file: a
// mapping whose top-level keys are configuration sections (server, store, log, koppeltaal, routes), at least
// one of them spelt right and the others close to one (stroe), so a misspelt section is reported as one.
// `koppelpoort lint` uses it so a config next to the routes is checked as a config, not as a broken route.
func IsConfigFile(src []byte) bool {
	var doc yaml.Node
	if err := yaml.Unmarshal(src, &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return false
	}
	top := doc.Content[0]
	fields := strictyaml.Fields(reflect.TypeOf(Config{}))
	sections := slices.Collect(maps.Keys(fields))
	exact := false
	for i := 0; i < len(top.Content); i += 2 {
		key := top.Content[i].Value
		if _, ok := fields[key]; ok {
			exact = true
		} else if suggest.Closest(key, sections) == "" {
			return false
		}
	}
	return exact
}

// RoutePatterns returns the routes: entries with relative ones resolved against the configuration file's
// directory (the working directory for the embedded default).
func (c *Config) RoutePatterns() []string {
	out := make([]string, 0, len(c.Routes))
	for _, p := range c.Routes {
		out = append(out, c.resolve(p))
	}
	return out
}

// resolve makes a path named in the file relative to the file's directory ("" stays "").
func (c *Config) resolve(p string) string {
	if p != "" && !filepath.IsAbs(p) && c.Path != "" {
		p = filepath.Join(filepath.Dir(c.Path), p)
	}
	return p
}

// JSONSchema returns the JSON Schema (draft 2020-12) of the configuration file, reflected from the types
// Parse decodes (Config and the sections it holds), so editors (and the console) can complete and
// validate it, and it cannot accept a key Parse refuses (`koppelpoort schema --config`).
func JSONSchema() map[string]any {
	s := strictyaml.Schema(reflect.TypeFor[Config]())
	s["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	s["$id"] = "https://koppelpoort.nl/schema/config.json"
	s["title"] = "Koppelpoort configuration"
	return s
}

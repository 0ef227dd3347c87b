package koppeltaal

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Config is the `koppeltaal:` section of the Koppelpoort configuration file:
// the domains, applications and application instances this server serves.
// It is applied to the store idempotently at start (see Apply).
type Config struct {
	// PublicURL is the base used in links the server writes. Empty: taken from the request.
	PublicURL    string              `yaml:"public_url"`
	Domains      []DomainConfig      `yaml:"domains"`
	Applications []ApplicationConfig `yaml:"applications"`
	Instances    []InstanceConfig    `yaml:"instances"`

	// ClaimTimeout is how long a claimed message stays Claimed before the sweeper returns it to New. Default 5m.
	ClaimTimeout time.Duration `yaml:"claim_timeout"`
	// MaxRetries is the number of claims after which a message that is never acknowledged becomes
	// MaximumRetriesExceeded. Default 5.
	MaxRetries int `yaml:"max_retries"`
	// MaxCount is the largest page a search returns; larger `_count` values are clamped. Default 1000.
	MaxCount int `yaml:"max_count"`
	// DefaultCount is the page size when a search has no `_count`. Default 50.
	DefaultCount int `yaml:"default_count"`
	// MaxBodyBytes is the largest request body accepted; larger bodies get 413. Default 10 MiB.
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// SweepInterval is how often the sweeper looks for timed-out claims. Default 10s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
}

// DomainConfig declares one Koppeltaal domain.
type DomainConfig struct {
	Name string `yaml:"name"`
}

// ApplicationConfig declares one application; its ID is also its OAuth client_id.
type ApplicationConfig struct {
	ID    string   `yaml:"id"`
	Name  string   `yaml:"name"`
	Roles []string `yaml:"roles"`
}

// InstanceConfig declares an application in a domain with its credentials and subscriptions.
type InstanceConfig struct {
	Application string `yaml:"application"`
	Domain      string `yaml:"domain"`
	Username    string `yaml:"username"`
	// Password is plain text (use ${VAR}); it is hashed with bcrypt when applied.
	Password string `yaml:"password"`
	// PasswordHash is a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash; alternative to Password.
	PasswordHash string `yaml:"password_hash"`
	// APIVersion is "1.3.5" (default) or "1.3.3" (SPEC.md §7).
	APIVersion    string   `yaml:"api_version"`
	Subscriptions []string `yaml:"subscriptions"`
}

// Defaults of the Config settings.
const (
	DefaultClaimTimeout  = 5 * time.Minute
	DefaultMaxRetries    = 5
	DefaultMaxCount      = 1000
	DefaultPageSize      = 50
	DefaultMaxBodyBytes  = 10 << 20
	DefaultSweepInterval = 10 * time.Second
	DefaultAPIVersion    = APIVersion135
)

// API versions an instance can speak.
const (
	APIVersion133 = "1.3.3"
	APIVersion135 = "1.3.5"
)

// Events are the message event codes a server routes (SPEC.md §4.4).
var Events = []string{
	"CreateOrUpdatePatient",
	"CreateOrUpdatePractitioner",
	"CreateOrUpdateRelatedPerson",
	"CreateOrUpdateActivityDefinition",
	"CreateOrUpdateCarePlan",
	"UpdateCarePlanActivityStatus",
	"CreateOrUpdateCarePlanActivityResult",
	"CreateOrUpdateUserMessage",
}

// Roles are the ApplicationRoles codes (SPEC.md §4.9).
var Roles = []string{"PractitionerPortal", "PatientPortal", "RelatedPersonPortal", "Game", "ELearning", "ROM"}

// KnownEvent reports whether code is a Koppeltaal message event.
func KnownEvent(code string) bool { return contains(Events, code) }

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// SetDefaults fills every unset setting with its documented default.
func (c *Config) SetDefaults() {
	if c.ClaimTimeout <= 0 {
		c.ClaimTimeout = DefaultClaimTimeout
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = DefaultMaxRetries
	}
	if c.MaxCount <= 0 {
		c.MaxCount = DefaultMaxCount
	}
	if c.DefaultCount <= 0 {
		c.DefaultCount = DefaultPageSize
	}
	if c.DefaultCount > c.MaxCount {
		c.DefaultCount = c.MaxCount
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	for i := range c.Instances {
		if c.Instances[i].APIVersion == "" {
			c.Instances[i].APIVersion = DefaultAPIVersion
		}
	}
}

// Validate checks the configuration; every error names the offending entry
// (e.g. `koppeltaal.instances[1] (username "md@x")`) and what would be right.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if c.PublicURL != "" {
		u, err := url.Parse(c.PublicURL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("koppeltaal.public_url %q: want an absolute http(s) URL such as https://kt.example.org", c.PublicURL)
		}
	}
	if c.ClaimTimeout < 0 || c.MaxRetries < 0 || c.MaxCount < 0 || c.DefaultCount < 0 || c.MaxBodyBytes < 0 || c.SweepInterval < 0 {
		bad("koppeltaal: claim_timeout, max_retries, max_count, default_count, max_body_bytes and sweep_interval must not be negative")
	}
	domains := map[string]bool{}
	for i, d := range c.Domains {
		switch {
		case strings.TrimSpace(d.Name) == "":
			bad("koppeltaal.domains[%d]: name is empty", i)
		case domains[d.Name]:
			bad("koppeltaal.domains[%d]: domain %q is declared twice", i, d.Name)
		}
		domains[d.Name] = true
	}
	apps := map[string]bool{}
	for i, a := range c.Applications {
		switch {
		case strings.TrimSpace(a.ID) == "":
			bad("koppeltaal.applications[%d]: id is empty", i)
		case apps[a.ID]:
			bad("koppeltaal.applications[%d]: application %q is declared twice", i, a.ID)
		}
		apps[a.ID] = true
		for _, r := range a.Roles {
			if !contains(Roles, r) {
				bad("koppeltaal.applications[%d] (id %q): unknown role %q (want one of %s)", i, a.ID, r, strings.Join(Roles, ", "))
			}
		}
	}
	users := map[string]bool{}
	pairs := map[string]bool{}
	for i, in := range c.Instances {
		where := fmt.Sprintf("koppeltaal.instances[%d] (username %q)", i, in.Username)
		if strings.TrimSpace(in.Username) == "" {
			bad("koppeltaal.instances[%d]: username is empty", i)
		} else if strings.Contains(in.Username, ":") {
			bad("%s: username must not contain ':' (HTTP Basic separates user and password with it)", where)
		} else if users[in.Username] {
			bad("%s: username is used by two instances", where)
		}
		users[in.Username] = true
		if !apps[in.Application] {
			bad("%s: application %q is not declared under koppeltaal.applications", where, in.Application)
		}
		if !domains[in.Domain] {
			bad("%s: domain %q is not declared under koppeltaal.domains", where, in.Domain)
		}
		if pair := in.Application + "\x00" + in.Domain; pairs[pair] {
			bad("%s: application %q already has an instance in domain %q", where, in.Application, in.Domain)
		} else {
			pairs[pair] = true
		}
		switch {
		case in.Password == "" && in.PasswordHash == "":
			bad("%s: set password or password_hash", where)
		case in.Password != "" && in.PasswordHash != "":
			bad("%s: set password or password_hash, not both", where)
		case in.PasswordHash != "" && !isSupportedHash(in.PasswordHash):
			bad("%s: password_hash is not a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash", where)
		}
		switch in.APIVersion {
		case "", APIVersion133, APIVersion135:
		default:
			bad("%s: api_version %q: want %q or %q", where, in.APIVersion, APIVersion133, APIVersion135)
		}
		for _, e := range in.Subscriptions {
			if !KnownEvent(e) {
				bad("%s: unknown subscription %q (want one of %s)", where, e, strings.Join(Events, ", "))
			}
		}
	}
	return errors.Join(errs...)
}

// Demo credentials of DemoConfig, printed by `koppelpoort serve` when it runs without a configuration.
const (
	DemoDomain         = "Demo"
	DemoPortalUser     = "portal@demo"
	DemoPortalPassword = "demo-portal"
	DemoGameUser       = "game@demo"
	DemoGamePassword   = "demo-game"
	DemoEPDUser        = "epd@demo"
	DemoEPDPassword    = "demo-epd"
)

// DemoConfig is the configuration `koppelpoort serve` runs without a config
// file: one domain "Demo" with a practitioner/patient portal, a game and an EPD
// bridge, with the fixed, documented (and therefore insecure) demo passwords above.
func DemoConfig() Config {
	c := Config{
		Domains: []DomainConfig{{Name: DemoDomain}},
		Applications: []ApplicationConfig{
			{ID: "DemoPortal", Name: "Demo practitioner and patient portal", Roles: []string{"PractitionerPortal", "PatientPortal"}},
			{ID: "DemoGame", Name: "Demo game", Roles: []string{"Game"}},
			{ID: "DemoEPD", Name: "Demo EPD bridge"},
		},
		Instances: []InstanceConfig{
			{Application: "DemoPortal", Domain: DemoDomain, Username: DemoPortalUser, Password: DemoPortalPassword,
				APIVersion: APIVersion135, Subscriptions: []string{"CreateOrUpdateCarePlan", "UpdateCarePlanActivityStatus",
					"CreateOrUpdatePatient", "CreateOrUpdateUserMessage"}},
			{Application: "DemoGame", Domain: DemoDomain, Username: DemoGameUser, Password: DemoGamePassword,
				APIVersion: APIVersion135, Subscriptions: []string{"CreateOrUpdateCarePlan", "CreateOrUpdatePatient",
					"CreateOrUpdatePractitioner", "CreateOrUpdateUserMessage"}},
			{Application: "DemoEPD", Domain: DemoDomain, Username: DemoEPDUser, Password: DemoEPDPassword,
				APIVersion: APIVersion135, Subscriptions: []string{"CreateOrUpdateCarePlan", "UpdateCarePlanActivityStatus"}},
		},
	}
	c.SetDefaults()
	return c
}

package koppeltaal

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// Config is the `koppeltaal:` section of the Koppelpoort configuration file:
// the domains, applications and application instances this server serves.
// It is applied to the store idempotently at start (see Apply).
type Config struct {
	// PublicURL is the base of every link the server writes (scheme://host[:port]),
	// required by api.New and oauth.New; koppelpoort serve sets it from
	// server.public_url (in the file, koppeltaal.public_url is refused as moved).
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
	// MaxBodyBytesInFlight bounds the bytes of request bodies the Koppeltaal
	// API holds at once, over all requests (issue 16 item 3); a request whose
	// body does not fit within a second gets 503 with Retry-After. Default four
	// times MaxBodyBytes (40 MiB); at least MaxBodyBytes.
	MaxBodyBytesInFlight int64 `yaml:"max_body_bytes_in_flight"`
	// MaxEntries is the most entries (MessageHeader included) a posted message may
	// have; more get 413. Default 1000 (a CarePlan message has tens).
	MaxEntries int `yaml:"max_entries"`
	// SweepInterval is how often the sweeper looks for timed-out claims. Default 10s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// BcryptCost is the bcrypt cost for plain-text passwords hashed at start (4..31). Default 10.
	BcryptCost int `yaml:"bcrypt_cost"`

	// ActivityDefinitions are seeded at start (created, or updated when changed) through the
	// same path as POST [base]/Other, so subscribers get CreateOrUpdateActivityDefinition.
	ActivityDefinitions []ActivityDefinitionConfig `yaml:"activity_definitions"`

	// Storage bounds the Storage Service (SPEC.md §9).
	Storage StorageConfig `yaml:"storage"`
	// Retention is automatic data removal (SPEC.md §10).
	Retention RetentionConfig `yaml:"retention"`
}

// ActivityDefinitionConfig is one seeded ActivityDefinition (SPEC.md §3.7, §4.10).
type ActivityDefinitionConfig struct {
	// Identifier is the ActivityDefinitionIdentifier, unique per domain.
	Identifier string `yaml:"identifier"`
	// Domain is where the definition is created (and, unless it is not domain specific, visible).
	Domain string `yaml:"domain"`
	// Application is the providing application's id (the OAuth client_id that is launched).
	Application string `yaml:"application"`
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	// Kind is an ActivityKind code: Game, ELearning, Questionnaire, Meeting, MultipleActivityTemplate.
	Kind string `yaml:"kind"`
	// DefaultPerformer is Patient (default), Practitioner or RelatedPerson.
	DefaultPerformer string `yaml:"default_performer"`
	// LaunchType is Web (default), Mobile or None.
	LaunchType string `yaml:"launch_type"`
	// DomainSpecific false (default) makes it visible in every domain the application has an instance in.
	DomainSpecific bool `yaml:"domain_specific"`
	// Inactive and Archived map to IsActive=false and IsArchived=true.
	Inactive      bool                `yaml:"inactive"`
	Archived      bool                `yaml:"archived"`
	SubActivities []SubActivityConfig `yaml:"sub_activities"`
}

// SubActivityConfig is one sub-activity of a seeded ActivityDefinition.
type SubActivityConfig struct {
	Identifier  string `yaml:"identifier"`
	Name        string `yaml:"name"`
	Description string `yaml:"description"`
	Inactive    bool   `yaml:"inactive"`
}

// ActivityKinds are the ActivityKind codes (SPEC.md §4.9).
var ActivityKinds = []string{"Game", "ELearning", "Questionnaire", "Meeting", "MultipleActivityTemplate"}

// OAuth lifetimes when an application does not set them (SPEC.md §8, §18).
const (
	DefaultTokenLifetime              = 15 * time.Minute
	DefaultCodeLifetime               = 60 * time.Second
	DefaultLaunchLifetime             = 5 * time.Minute
	DefaultActivationCodeLifetimeDays = 7
)

// DomainConfig declares one Koppeltaal domain.
type DomainConfig struct {
	Name string `yaml:"name"`
	// DTAPPhase is development, test, acceptance or production (default). The
	// console's Test Portal creates test patients only outside production.
	DTAPPhase string `yaml:"dtap_phase"`
	// MessageSettings are per-event retention exceptions (DomainMessageSettings, SPEC.md §10.1).
	MessageSettings []DomainMessageSettingConfig `yaml:"message_settings"`
}

// Validate checks one domain declaration.
func (d DomainConfig) Validate() error {
	switch {
	case strings.TrimSpace(d.Name) == "":
		return errors.New("domain name is empty")
	case len(d.Name) > 100 || strings.ContainsAny(d.Name, "/?#%\r\n\t"):
		return fmt.Errorf("domain name %q: at most 100 characters, none of / ? # %% or control characters", d.Name)
	}
	switch d.DTAPPhase {
	case "", store.DTAPDevelopment, store.DTAPTest, store.DTAPAcceptance, store.DTAPProduction:
	default:
		return fmt.Errorf("domain %q: dtap_phase %q: want %s", d.Name, d.DTAPPhase, strings.Join(store.DTAPPhases, ", "))
	}
	return nil
}

// ApplicationConfig declares one application; its ID is also its OAuth client_id.
type ApplicationConfig struct {
	ID    string   `yaml:"id"`
	Name  string   `yaml:"name"`
	Roles []string `yaml:"roles"`

	// OAuth2 / SSO settings (SPEC.md §8). An application with a launch_url or
	// redirect_uris can be launched.

	// OAuthSecret is the client secret for the Token endpoint (plain text, use ${VAR}); hashed at start.
	OAuthSecret string `yaml:"oauth_secret"`
	// OAuthSecretHash is a bcrypt or argon2id hash of the client secret; alternative to OAuthSecret.
	OAuthSecretHash string `yaml:"oauth_secret_hash"`
	// LaunchURL is where Launch redirects the browser (with iss, launch, launch_id, application_id).
	LaunchURL string `yaml:"launch_url"`
	// RedirectURIs are the exact redirect_uri values Authorize and Token accept.
	RedirectURIs []string `yaml:"redirect_uris"`
	// PublicClient allows token requests without a client secret (browser games, mobile apps).
	PublicClient bool `yaml:"public_client"`
	// RefreshTokens adds a refresh_token to token responses (rotated on every use).
	RefreshTokens bool `yaml:"refresh_tokens"`
	// TokenLifetime is the access-token lifetime. Default 15m.
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// CodeLifetime is the authorization-code lifetime. Default 60s.
	CodeLifetime time.Duration `yaml:"code_lifetime"`
	// LaunchLifetime is how long a web launch may wait for Authorize. Default 5m.
	LaunchLifetime time.Duration `yaml:"launch_lifetime"`
	// ActivationCodeLifetimeDays is how long a mobile activation code lives. Default 7.
	ActivationCodeLifetimeDays int `yaml:"activation_code_lifetime_days"`
	// AllowedOrigins are browser origins (scheme://host[:port]) allowed by CORS on metadata, Token and the FHIR API.
	AllowedOrigins []string `yaml:"allowed_origins"`

	// MessageSettings are per-event retention exceptions (ApplicationMessageSettings, SPEC.md §10.1).
	MessageSettings []ApplicationMessageSettingConfig `yaml:"message_settings"`
}

// WebhookConfig is the push notification endpoint of an application instance (SPEC.md §13.1).
type WebhookConfig struct {
	// URL receives a POST without body for every message queued for the instance.
	URL string `yaml:"url"`
	// Headers are sent with every call, e.g. X-Koppeltaal-Secret: ${SECRET}.
	Headers map[string]string `yaml:"headers"`
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
	// Webhook, when set, is called for every message queued for this instance.
	Webhook *WebhookConfig `yaml:"webhook"`
}

// Defaults of the Config settings.
const (
	DefaultClaimTimeout  = 5 * time.Minute
	DefaultMaxRetries    = 5
	DefaultMaxCount      = 1000
	DefaultPageSize      = 50
	DefaultMaxBodyBytes  = 10 << 20
	DefaultMaxEntries    = 1000
	DefaultSweepInterval = 10 * time.Second
	DefaultAPIVersion    = APIVersion135
	DefaultBcryptCost    = 10
)

// DefaultBodiesInFlight is how many bodies of the largest size fit in the
// default MaxBodyBytesInFlight.
const DefaultBodiesInFlight = 4

// API versions an instance can speak.
const (
	APIVersion133 = "1.3.3"
	APIVersion135 = "1.3.5"
)

// Roles are the ApplicationRoles codes (SPEC.md §4.9).
var Roles = []string{"PractitionerPortal", "PatientPortal", "RelatedPersonPortal", "Game", "ELearning", "ROM"}

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
	if c.MaxBodyBytesInFlight <= 0 {
		c.MaxBodyBytesInFlight = DefaultBodiesInFlight * c.MaxBodyBytes
	}
	if c.MaxEntries <= 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = DefaultSweepInterval
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = DefaultBcryptCost
	}
	c.Storage.SetDefaults()
	c.Retention.SetDefaults()
	for i := range c.Instances {
		if c.Instances[i].APIVersion == "" {
			c.Instances[i].APIVersion = DefaultAPIVersion
		}
	}
	for i := range c.Applications {
		c.Applications[i].SetDefaults()
	}
	for i := range c.ActivityDefinitions {
		d := &c.ActivityDefinitions[i]
		if d.LaunchType == "" {
			d.LaunchType = "Web"
		}
		if d.DefaultPerformer == "" {
			d.DefaultPerformer = "Patient"
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
	if maxBody := cmp.Or(c.MaxBodyBytes, DefaultMaxBodyBytes); c.MaxBodyBytesInFlight != 0 && c.MaxBodyBytesInFlight < maxBody {
		bad("koppeltaal.max_body_bytes_in_flight %d: want at least max_body_bytes (%d), or leave it out for %d × max_body_bytes: a body of the largest size must fit",
			c.MaxBodyBytesInFlight, maxBody, DefaultBodiesInFlight)
	}
	if c.BcryptCost != 0 && (c.BcryptCost < 4 || c.BcryptCost > 31) {
		bad("koppeltaal.bcrypt_cost %d: want 4..31 (default %d)", c.BcryptCost, DefaultBcryptCost)
	}
	if err := c.Storage.Validate(); err != nil {
		errs = append(errs, err)
	}
	c.validateRetention(bad)
	domains := map[string]bool{}
	for i, d := range c.Domains {
		if err := d.Validate(); err != nil {
			bad("koppeltaal.domains[%d]: %v", i, err)
		} else if domains[d.Name] {
			bad("koppeltaal.domains[%d]: domain %q is declared twice", i, d.Name)
		}
		domains[d.Name] = true
	}
	apps := map[string]bool{}
	for i, a := range c.Applications {
		if strings.TrimSpace(a.ID) == "" {
			bad("koppeltaal.applications[%d]: id is empty", i)
		} else if apps[a.ID] {
			bad("koppeltaal.applications[%d]: application %q is declared twice", i, a.ID)
		}
		apps[a.ID] = true
		if err := a.Validate(); err != nil && strings.TrimSpace(a.ID) != "" {
			bad("koppeltaal.applications[%d] (id %q): %v", i, a.ID, err)
		}
	}
	users := map[string]bool{}
	pairs := map[string]bool{}
	for i, in := range c.Instances {
		where := fmt.Sprintf("koppeltaal.instances[%d] (username %q)", i, in.Username)
		if err := in.Validate(); err != nil {
			bad("%s: %v", where, err)
		}
		if users[in.Username] {
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
		}
	}
	ads := map[string]bool{}
	for i, d := range c.ActivityDefinitions {
		where := fmt.Sprintf("koppeltaal.activity_definitions[%d] (identifier %q)", i, d.Identifier)
		switch {
		case strings.TrimSpace(d.Identifier) == "":
			bad("koppeltaal.activity_definitions[%d]: identifier is empty", i)
		case ads[d.Domain+"\x00"+d.Identifier]:
			bad("%s: identifier is used twice in domain %q (identifiers are unique per domain)", where, d.Domain)
		}
		ads[d.Domain+"\x00"+d.Identifier] = true
		if !domains[d.Domain] {
			bad("%s: domain %q is not declared under koppeltaal.domains", where, d.Domain)
		}
		if !apps[d.Application] {
			bad("%s: application %q is not declared under koppeltaal.applications", where, d.Application)
		}
		if strings.TrimSpace(d.Name) == "" {
			bad("%s: name is empty", where)
		}
		if !contains(ActivityKinds, d.Kind) {
			bad("%s: kind %q: want one of %s", where, d.Kind, strings.Join(ActivityKinds, ", "))
		}
		if !contains([]string{"", "Patient", "Practitioner", "RelatedPerson"}, d.DefaultPerformer) {
			bad("%s: default_performer %q: want Patient, Practitioner or RelatedPerson", where, d.DefaultPerformer)
		}
		if !contains([]string{"", "Web", "Mobile", "None"}, d.LaunchType) {
			bad("%s: launch_type %q: want Web, Mobile or None", where, d.LaunchType)
		}
		for j, sa := range d.SubActivities {
			if strings.TrimSpace(sa.Identifier) == "" || strings.TrimSpace(sa.Name) == "" {
				bad("%s: sub_activities[%d]: identifier and name are required", where, j)
			}
		}
	}
	return errors.Join(errs...)
}

// Validate checks what one instance declaration says about itself (username,
// password hash, api-version, subscriptions, webhook); whether its domain and
// application exist is the caller's to check.
func (in InstanceConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case strings.TrimSpace(in.Username) == "":
		bad("username is empty")
	case strings.Contains(in.Username, ":"):
		bad("username must not contain ':' (HTTP Basic separates user and password with it)")
	case len(in.Username) > 100 || strings.ContainsAny(in.Username, " \t\r\n"):
		bad("username: at most 100 characters without spaces")
	}
	if in.PasswordHash != "" && !IsSupportedHash(in.PasswordHash) {
		bad("password_hash is not a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash")
	}
	switch in.APIVersion {
	case "", APIVersion133, APIVersion135:
	default:
		bad("api_version %q: want %q or %q", in.APIVersion, APIVersion133, APIVersion135)
	}
	for _, e := range in.Subscriptions {
		if !KnownEvent(e) {
			bad("unknown subscription %q (want one of %s)", e, strings.Join(Events, ", "))
		}
	}
	if in.Webhook != nil {
		if !absHTTPURL(in.Webhook.URL) {
			bad("webhook.url %q: want an absolute http(s) URL", in.Webhook.URL)
		}
		for k, v := range in.Webhook.Headers {
			if k == "" || strings.ContainsAny(k, " :\r\n") || strings.ContainsAny(v, "\r\n") {
				bad("webhook.headers %q: not a valid HTTP header name/value", k)
			}
		}
	}
	return errors.Join(errs...)
}

func absHTTPURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != ""
}

// SetDefaults fills the unset OAuth lifetimes with their documented defaults.
func (a *ApplicationConfig) SetDefaults() {
	if a.TokenLifetime <= 0 {
		a.TokenLifetime = DefaultTokenLifetime
	}
	if a.CodeLifetime <= 0 {
		a.CodeLifetime = DefaultCodeLifetime
	}
	if a.LaunchLifetime <= 0 {
		a.LaunchLifetime = DefaultLaunchLifetime
	}
	if a.ActivationCodeLifetimeDays <= 0 {
		a.ActivationCodeLifetimeDays = DefaultActivationCodeLifetimeDays
	}
}

// Validate checks one application declaration: id, roles and SSO settings.
func (a ApplicationConfig) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if strings.TrimSpace(a.ID) == "" || len(a.ID) > 100 || strings.ContainsAny(a.ID, " /?#%\t\r\n") {
		bad("id %q: want 1 to 100 characters without spaces or / ? # %%", a.ID)
	}
	for _, r := range a.Roles {
		if !contains(Roles, r) {
			bad("unknown role %q (want one of %s)", r, strings.Join(Roles, ", "))
		}
	}
	validateOAuth(a, bad)
	return errors.Join(errs...)
}

// validateOAuth checks the SSO settings of one application.
func validateOAuth(a ApplicationConfig, bad func(string, ...any)) {
	if a.OAuthSecret != "" && a.OAuthSecretHash != "" {
		bad("set oauth_secret or oauth_secret_hash, not both")
	}
	if a.OAuthSecretHash != "" && !IsSupportedHash(a.OAuthSecretHash) {
		bad("oauth_secret_hash is not a bcrypt ($2a$/$2b$/$2y$) or argon2id ($argon2id$) hash")
	}
	if a.LaunchURL != "" && !absHTTPURL(a.LaunchURL) {
		bad("launch_url %q: want an absolute http(s) URL", a.LaunchURL)
	}
	for j, u := range a.RedirectURIs {
		pu, err := url.Parse(u)
		if err != nil || pu.Scheme == "" || pu.Fragment != "" || (pu.Host == "" && (pu.Scheme == "http" || pu.Scheme == "https")) {
			bad("redirect_uris[%d] %q: want an absolute URL without fragment (RFC 6749 §3.1.2)", j, u)
		}
	}
	for j, o := range a.AllowedOrigins {
		pu, err := url.Parse(o)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" || (pu.Path != "" && pu.Path != "/") || pu.RawQuery != "" {
			bad("allowed_origins[%d] %q: want an origin scheme://host[:port] without path", j, o)
		}
	}
	if (a.LaunchURL != "" || len(a.RedirectURIs) > 0) && !a.PublicClient && a.OAuthSecret == "" && a.OAuthSecretHash == "" {
		bad("a launchable confidential client needs oauth_secret or oauth_secret_hash (or public_client: true)")
	}
	if a.TokenLifetime < 0 || a.CodeLifetime < 0 || a.LaunchLifetime < 0 || a.ActivationCodeLifetimeDays < 0 {
		bad("token_lifetime, code_lifetime, launch_lifetime and activation_code_lifetime_days must not be negative")
	}
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
	// DemoGamePath is where the server itself serves the demo game page; its
	// launch URL and redirect URI are DemoRoot+DemoGamePath (see WithDemoRoot).
	DemoGamePath = "/demo/game/"
	// DemoRoot is the root DemoConfig assumes: the default listen address.
	DemoRoot = "http://127.0.0.1:8080"
	// DemoActivity is the identifier of the demo game's ActivityDefinition.
	DemoActivity = "demo-game"
	// DemoPatient is the patient of the demo domain's CarePlan (posted by serve at start) and of the
	// launches the banner and the README show.
	DemoPatient = "https://portal.example/fhir/Koppeltaal/Patient/1"

	// The demo module is `koppelpoort testclient` (a simulated e-learning module, a confidential OAuth
	// client) listening on DemoModuleRoot: Launch sends the browser to its /launch, Authorize back to its
	// /callback.
	DemoModuleUser     = "module@demo"
	DemoModulePassword = "demo-module"
	DemoModuleClient   = "DemoModule"
	DemoModuleSecret   = "demo-module-secret"
	DemoModuleRoot     = "http://127.0.0.1:8090"
	DemoModuleActivity = "demo-module"
	// The legacy portal speaks api-version 1.3.3 (a hybrid domain, SPEC.md §7.5).
	DemoLegacyUser     = "legacy@demo"
	DemoLegacyPassword = "demo-legacy"
)

// WithDemoRoot points the demo game's launch URL and redirect URI at root
// (scheme://host:port of the running server) instead of DemoRoot.
func (c *Config) WithDemoRoot(root string) {
	root = strings.TrimSuffix(root, "/")
	for i := range c.Applications {
		a := &c.Applications[i]
		if a.LaunchURL == DemoRoot+DemoGamePath {
			a.LaunchURL = root + DemoGamePath
		}
		for j, u := range a.RedirectURIs {
			if u == DemoRoot+DemoGamePath {
				a.RedirectURIs[j] = root + DemoGamePath
			}
		}
	}
}

// DemoConfig is the configuration `koppelpoort serve` runs without a config
// file: one domain "Demo" with a practitioner/patient portal (the owner of care
// plans), a game, an EPD bridge, the demo module (`koppelpoort testclient`) and a
// portal on api-version 1.3.3, with the fixed, documented (and therefore
// insecure) demo passwords above. It has what `koppelpoort regress` needs: two
// subscribers of CreateOrUpdateCarePlan, a confidential and a public OAuth
// client, a 1.3.3 instance and activity definitions.
func DemoConfig() Config {
	c := Config{
		Domains: []DomainConfig{{Name: DemoDomain, DTAPPhase: store.DTAPTest}},
		Applications: []ApplicationConfig{
			{ID: "DemoPortal", Name: "Demo practitioner and patient portal", Roles: []string{"PractitionerPortal", "PatientPortal"}},
			{ID: "DemoGame", Name: "Demo game", Roles: []string{"Game"},
				// A browser game: public client, launched on the demo server's own /demo/game/ page.
				LaunchURL: DemoRoot + DemoGamePath, RedirectURIs: []string{DemoRoot + DemoGamePath},
				PublicClient: true, RefreshTokens: true},
			{ID: "DemoEPD", Name: "Demo EPD bridge"},
			{ID: DemoModuleClient, Name: "Demo module (koppelpoort testclient)", Roles: []string{"ELearning"},
				// A server-side module: confidential client with a secret; its pages run on DemoModuleRoot.
				OAuthSecret: DemoModuleSecret, LaunchURL: DemoModuleRoot + "/launch", RedirectURIs: []string{DemoModuleRoot + "/callback"},
				RefreshTokens: true, AllowedOrigins: []string{DemoModuleRoot}},
			{ID: "DemoLegacyPortal", Name: "Demo portal on the 1.3.3 API", Roles: []string{"PatientPortal"}},
		},
		Instances: []InstanceConfig{
			// The portal owns the care plans it sends: it keeps their versions from the Mailbox replies
			// instead of subscribing to its own CreateOrUpdateCarePlan messages.
			{Application: "DemoPortal", Domain: DemoDomain, Username: DemoPortalUser, Password: DemoPortalPassword,
				APIVersion: APIVersion135, Subscriptions: []string{"UpdateCarePlanActivityStatus",
					"CreateOrUpdateCarePlanActivityResult", "CreateOrUpdatePatient", "CreateOrUpdateUserMessage"}},
			{Application: "DemoGame", Domain: DemoDomain, Username: DemoGameUser, Password: DemoGamePassword,
				APIVersion: APIVersion135, Subscriptions: []string{"CreateOrUpdateCarePlan", "CreateOrUpdatePatient",
					"CreateOrUpdatePractitioner", "CreateOrUpdateUserMessage"}},
			{Application: "DemoEPD", Domain: DemoDomain, Username: DemoEPDUser, Password: DemoEPDPassword,
				APIVersion: APIVersion135, Subscriptions: []string{"CreateOrUpdateCarePlan", "UpdateCarePlanActivityStatus"}},
			{Application: DemoModuleClient, Domain: DemoDomain, Username: DemoModuleUser, Password: DemoModulePassword,
				APIVersion: APIVersion135, Subscriptions: []string{"CreateOrUpdateCarePlan", "CreateOrUpdateActivityDefinition"}},
			{Application: "DemoLegacyPortal", Domain: DemoDomain, Username: DemoLegacyUser, Password: DemoLegacyPassword,
				APIVersion: APIVersion133, Subscriptions: []string{"CreateOrUpdateCarePlan"}},
		},
		ActivityDefinitions: []ActivityDefinitionConfig{
			{Identifier: DemoActivity, Domain: DemoDomain, Application: "DemoGame", Name: "Demo game",
				Description: "A tiny game page served by Koppelpoort itself, to try the SSO launch.", Kind: "Game"},
			{Identifier: DemoModuleActivity, Domain: DemoDomain, Application: DemoModuleClient, Name: "Demo module",
				Description: "koppelpoort testclient: a simulated e-learning module that reports its progress.", Kind: "ELearning"},
		},
	}
	c.SetDefaults()
	return c
}

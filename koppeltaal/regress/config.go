package regress

import (
	_ "embed"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
)

// Config says which domain and accounts of the target the suite may use. Only Domain, Portal and one
// Subscriber are required; a case that needs something left out is skipped and says what to set.
type Config struct {
	// Target is the server root, e.g. https://kt.example.nl (the suite adds /FHIR/Koppeltaal and /OAuth2/Koppeltaal).
	Target string `yaml:"target"`
	// Domain is the Koppeltaal domain the accounts below are instances in.
	Domain string `yaml:"domain"`
	// Portal posts CarePlans and Patients and starts launches; it is subscribed to UpdateCarePlanActivityStatus.
	Portal Account `yaml:"portal"`
	// Subscribers are instances subscribed to CreateOrUpdateCarePlan (api-version 1.3.5). Two enable the
	// cases about several recipients.
	Subscribers []Account `yaml:"subscribers"`
	// Legacy is an instance on api-version 1.3.3 subscribed to CreateOrUpdateCarePlan (optional).
	Legacy *Account `yaml:"legacy"`
	// Module is a launchable application (an OAuth client) with an instance in the domain subscribed to
	// CreateOrUpdateCarePlan: the SSO and end-to-end cases act as it.
	Module *Module `yaml:"module"`
	// PublicClient is an application registered as a public OAuth client (a browser game) with an
	// instance in the domain: the token cases without client authentication use it (optional).
	PublicClient *OAuthClient `yaml:"public_client"`
	// CORSOrigin is a browser origin the target allows (allowed_origins); empty skips the CORS cases.
	CORSOrigin string `yaml:"cors_origin"`
	// ClaimTimeout is the target's claim timeout, when it is short enough to wait for (at most 1m):
	// it enables the time-out and MaximumRetriesExceeded cases. Zero skips them.
	ClaimTimeout time.Duration `yaml:"claim_timeout"`
	// SweepInterval is how long after the claim timeout the target may take to notice it. Default 10s.
	SweepInterval time.Duration `yaml:"sweep_interval"`
	// MaxRetries is the target's number of claims before MaximumRetriesExceeded. Default 5.
	MaxRetries int `yaml:"max_retries"`
	// Webhook names the instance whose webhook URL points at Listen, where the suite receives the calls.
	Webhook *Webhook `yaml:"webhook"`
	// DeliveryWait is how long a case waits for a posted message to show up in a mailbox. Default 5s.
	DeliveryWait time.Duration `yaml:"delivery_wait"`
	// RequestTimeout bounds one HTTP request. Default 30s.
	RequestTimeout time.Duration `yaml:"request_timeout"`
}

// Account is an application instance's HTTP Basic credentials.
type Account struct {
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// OAuthClient is an application as an OAuth client: its id (client_id), its secret (empty for a public
// client) and a redirect_uri registered for it.
type OAuthClient struct {
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	RedirectURI  string `yaml:"redirect_uri"`
}

// Module is a launchable application: its OAuth client and the credentials of its instance.
type Module struct {
	OAuthClient `yaml:",inline"`
	Account     `yaml:",inline"`
}

// Webhook is where the target calls the webhook of one instance.
type Webhook struct {
	// Username is the instance whose webhook the target is configured to call.
	Username string `yaml:"username"`
	// Listen is the host:port the suite listens on (the webhook URL's host and port; any path).
	Listen string `yaml:"listen"`
}

// ExampleConfig is the configuration file of the demo domain of `koppelpoort serve`, shown by --help.
//
//go:embed regress.example.yaml
var ExampleConfig string

// LoadConfig reads a configuration file strictly (unknown keys are errors with their line), substituting
// ${VAR} from the environment.
func LoadConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("read regress config: %w", err)
	}
	var c Config
	if err := strictyaml.Decode(path, raw, os.LookupEnv, &c); err != nil {
		return Config{}, err
	}
	return c, nil
}

// SetDefaults fills unset durations and counts.
func (c *Config) SetDefaults() {
	if c.SweepInterval <= 0 {
		c.SweepInterval = 10 * time.Second
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = 5
	}
	if c.DeliveryWait <= 0 {
		c.DeliveryWait = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 30 * time.Second
	}
}

// Validate checks what every case needs; each error names the setting.
func (c *Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if u, err := url.Parse(c.Target); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		bad("target %q: want the server root, e.g. https://kt.example.nl", c.Target)
	} else if strings.Trim(u.Path, "/") != "" {
		bad("target %q: give the server root without a path (clients drop any path prefix; the suite adds /FHIR/Koppeltaal)", c.Target)
	}
	if strings.TrimSpace(c.Domain) == "" {
		bad("domain is required")
	}
	if c.Portal.Username == "" {
		bad("portal.username is required")
	}
	if len(c.Subscribers) == 0 || c.Subscribers[0].Username == "" {
		bad("subscribers: at least one instance subscribed to CreateOrUpdateCarePlan is required")
	}
	if c.Module != nil && (c.Module.ClientID == "" || c.Module.RedirectURI == "" || c.Module.Username == "") {
		bad("module: client_id, redirect_uri and the instance's username and password are required")
	}
	if c.PublicClient != nil && (c.PublicClient.ClientID == "" || c.PublicClient.RedirectURI == "") {
		bad("public_client: client_id and redirect_uri are required")
	}
	if c.Webhook != nil && (c.Webhook.Username == "" || c.Webhook.Listen == "") {
		bad("webhook: username and listen are required")
	}
	if c.ClaimTimeout < 0 || c.ClaimTimeout > time.Minute {
		bad("claim_timeout %s: give the target's claim timeout only when it is at most 1m (0 skips the time-out cases)", c.ClaimTimeout)
	}
	return errors.Join(errs...)
}

// Package admin is who may administer Koppelpoort: administrator accounts with
// the old server's roles (system, domain and application administrator),
// console sessions in cookies with CSRF protection, API tokens for scripts, the
// scope each role sees, and the audit hook every administrative action goes
// through. The Support API (admin/supportapi) and the web console
// (admin/console) authenticate with it.
package admin

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/store"
)

// Config is the `admin:` section of the configuration file.
type Config struct {
	// Users are administrator accounts managed by the file (read-only in the console and the API).
	Users []UserConfig `yaml:"users"`
	// SessionIdle ends a console session after this long without a request. Default 30m.
	SessionIdle time.Duration `yaml:"session_idle"`
	// SessionMax ends a console session this long after login, active or not. Default 12h.
	SessionMax time.Duration `yaml:"session_max"`
	// TokenLifetime is the default lifetime of an API token. Default 90 days (2160h).
	TokenLifetime time.Duration `yaml:"token_lifetime"`
	// BcryptCost hashes administrator passwords (4..31). Default 10.
	BcryptCost int `yaml:"bcrypt_cost"`
}

// UserConfig declares one administrator.
type UserConfig struct {
	Username string `yaml:"username"`
	Name     string `yaml:"name"`
	Email    string `yaml:"email"`
	// Password is plain text (use ${VAR}); it is hashed when applied.
	Password string `yaml:"password"`
	// PasswordHash is a bcrypt or argon2id hash; alternative to Password.
	PasswordHash string `yaml:"password_hash"`
	// Role is system, domain or application.
	Role string `yaml:"role"`
	// Domains a domain administrator administers (domain names).
	Domains []string `yaml:"domains"`
	// Applications an application administrator administers (application ids).
	Applications []string `yaml:"applications"`
}

// Defaults of Config.
const (
	DefaultSessionIdle   = 30 * time.Minute
	DefaultSessionMax    = 12 * time.Hour
	DefaultTokenLifetime = 90 * 24 * time.Hour
	DefaultBcryptCost    = 10
	// MinPasswordLength is the shortest administrator password accepted.
	MinPasswordLength = 10
)

// Roles lists the role names in the order the console shows them.
var Roles = []string{RoleSystem, RoleDomain, RoleApplication}

// The role names (as stored).
const (
	RoleSystem      = store.RoleSystem
	RoleDomain      = store.RoleDomain
	RoleApplication = store.RoleApplication
)

// SetDefaults fills every unset setting with its documented default.
func (c *Config) SetDefaults() {
	if c.SessionIdle <= 0 {
		c.SessionIdle = DefaultSessionIdle
	}
	if c.SessionMax <= 0 {
		c.SessionMax = DefaultSessionMax
	}
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = DefaultTokenLifetime
	}
	if c.BcryptCost == 0 {
		c.BcryptCost = DefaultBcryptCost
	}
}

// Validate checks the section; every error names the entry (admin.users[1] (username "x")).
func (c *Config) Validate() error {
	var errs []error
	if c.BcryptCost != 0 && (c.BcryptCost < 4 || c.BcryptCost > 31) {
		errs = append(errs, fmt.Errorf("admin.bcrypt_cost %d: want 4..31 (default %d)", c.BcryptCost, DefaultBcryptCost))
	}
	seen := map[string]bool{}
	for i, u := range c.Users {
		where := fmt.Sprintf("admin.users[%d] (username %q)", i, u.Username)
		if seen[u.Username] {
			errs = append(errs, fmt.Errorf("%s: username is declared twice", where))
		}
		seen[u.Username] = true
		if err := checkUser(u.Username, u.Role, u.Domains, u.Applications); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
		}
		switch {
		case u.Password == "" && u.PasswordHash == "":
			errs = append(errs, fmt.Errorf("%s: set password or password_hash", where))
		case u.Password != "" && u.PasswordHash != "":
			errs = append(errs, fmt.Errorf("%s: set password or password_hash, not both", where))
		case u.Password != "":
			if err := CheckPasswordPolicy(u.Password); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", where, err))
			}
		}
	}
	return errors.Join(errs...)
}

// checkUser validates what every way of creating an administrator shares.
func checkUser(username, role string, domains, apps []string) error {
	switch {
	case strings.TrimSpace(username) == "" || strings.ContainsAny(username, " \t\r\n:"):
		return errors.New("username must be non-empty without spaces or ':'")
	case len(username) > 100:
		return errors.New("username is longer than 100 characters")
	}
	switch role {
	case RoleSystem:
		if len(domains)+len(apps) > 0 {
			return errors.New("a system administrator administers everything: leave domains and applications empty")
		}
	case RoleDomain:
		if len(domains) == 0 || len(apps) > 0 {
			return errors.New("a domain administrator needs domains (and no applications)")
		}
	case RoleApplication:
		if len(apps) == 0 || len(domains) > 0 {
			return errors.New("an application administrator needs applications (and no domains)")
		}
	default:
		return fmt.Errorf("role %q: want %s", role, strings.Join(Roles, ", "))
	}
	return nil
}

// CheckPasswordPolicy refuses passwords that are too short to be personal secrets.
func CheckPasswordPolicy(p string) error {
	if len([]rune(p)) < MinPasswordLength {
		return fmt.Errorf("password must have at least %d characters", MinPasswordLength)
	}
	return nil
}

// Demo administrator of DemoConfig, printed by `koppelpoort serve` without a configuration file.
const (
	DemoUser     = "admin"
	DemoPassword = "demo-admin"
)

// DemoConfig is the `admin:` section of the embedded demo setup: one system
// administrator with a fixed, documented (and therefore insecure) password.
func DemoConfig() Config {
	c := Config{Users: []UserConfig{{Username: DemoUser, Name: "Demo administrator", Password: DemoPassword, Role: RoleSystem}}}
	c.SetDefaults()
	return c
}

// GeneratePassword returns a random password (for accounts created without one, and password resets).
func GeneratePassword() string { return randomSecret()[:20] }

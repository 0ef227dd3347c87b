package koppeltaal

// Config is the `koppeltaal:` section of the Koppelpoort configuration file:
// the domains, applications and application instances this server serves.
// It is applied to the store idempotently at start.
type Config struct {
	// PublicURL is the base used in links the server writes. Empty: taken from the request.
	PublicURL    string              `yaml:"public_url"`
	Domains      []DomainConfig      `yaml:"domains"`
	Applications []ApplicationConfig `yaml:"applications"`
	Instances    []InstanceConfig    `yaml:"instances"`
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
	Application   string   `yaml:"application"`
	Domain        string   `yaml:"domain"`
	Username      string   `yaml:"username"`
	Password      string   `yaml:"password"`
	PasswordHash  string   `yaml:"password_hash"`
	APIVersion    string   `yaml:"api_version"`
	Subscriptions []string `yaml:"subscriptions"`
}

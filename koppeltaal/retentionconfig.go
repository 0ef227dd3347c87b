package koppeltaal

import (
	"errors"
	"fmt"
	"time"
)

// RetentionConfig is automatic data removal (`koppeltaal.retention`, SPEC.md §10).
// The per-domain and per-application exceptions are DomainConfig.MessageSettings
// and ApplicationConfig.MessageSettings.
type RetentionConfig struct {
	// MaxMessageAgeDays is the global maximum message age (global-maximum-message-age):
	// a message body older than this is removed whatever its status. Default 56.
	MaxMessageAgeDays int `yaml:"max_message_age_days"`
	// Interval is how often the removal job runs (it also runs at start, catching up). Default 1h.
	Interval time.Duration `yaml:"interval"`
	// BatchSize is how many messages one removal transaction handles (short transactions
	// leave the writer to the API between batches). Default 100.
	BatchSize int `yaml:"batch_size"`
}

// DomainMessageSettingConfig is DomainMessageSettings for one event of a domain.
type DomainMessageSettingConfig struct {
	Event string `yaml:"event"`
	// MaximumMessageAgeDays is a shorter maximum age for this event in this domain (0: the global one).
	MaximumMessageAgeDays int `yaml:"maximum_message_age_days"`
	// RetainOnSuccessfulRetrieval keeps the body after every recipient reported Success (until its age).
	RetainOnSuccessfulRetrieval bool `yaml:"retain_on_successful_retrieval"`
}

// ApplicationMessageSettingConfig is ApplicationMessageSettings for one event of an application.
type ApplicationMessageSettingConfig struct {
	Event string `yaml:"event"`
	// RetainmentRequired keeps every message of this event, in every domain the application has an
	// instance in, until it is removed by hand (the KickAss exception of SPEC.md §10.1).
	RetainmentRequired bool `yaml:"retainment_required"`
}

// Defaults of RetentionConfig.
const (
	DefaultMaxMessageAgeDays = 56
	DefaultRetentionInterval = time.Hour
	DefaultRetentionBatch    = 100
)

// SetDefaults fills every unset setting with its documented default.
func (c *RetentionConfig) SetDefaults() {
	if c.MaxMessageAgeDays <= 0 {
		c.MaxMessageAgeDays = DefaultMaxMessageAgeDays
	}
	if c.Interval <= 0 {
		c.Interval = DefaultRetentionInterval
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultRetentionBatch
	}
}

// MaxMessageAge is MaxMessageAgeDays as a duration.
func (c RetentionConfig) MaxMessageAge() time.Duration {
	return time.Duration(c.MaxMessageAgeDays) * 24 * time.Hour
}

// validateRetention checks the retention settings and the message settings of domains and applications.
func (c *Config) validateRetention(bad func(string, ...any)) {
	r := c.Retention
	if r.MaxMessageAgeDays < 0 || r.Interval < 0 || r.BatchSize < 0 {
		bad("koppeltaal.retention: max_message_age_days, interval and batch_size must not be negative")
	}
	if r.BatchSize > 10000 {
		bad("koppeltaal.retention.batch_size %d: at most 10000 (a batch is one transaction)", r.BatchSize)
	}
	global := r.MaxMessageAgeDays
	if global == 0 {
		global = DefaultMaxMessageAgeDays
	}
	for i, d := range c.Domains {
		checkDomainSettings(fmt.Sprintf("koppeltaal.domains[%d] (name %q).message_settings", i, d.Name), d.MessageSettings, global, bad)
	}
	for i, a := range c.Applications {
		checkApplicationSettings(fmt.Sprintf("koppeltaal.applications[%d] (id %q).message_settings", i, a.ID), a.MessageSettings, bad)
	}
}

func checkDomainSettings(where string, ms []DomainMessageSettingConfig, global int, bad func(string, ...any)) {
	seen := map[string]bool{}
	for j, m := range ms {
		w := fmt.Sprintf("%s[%d]", where, j)
		checkSettingEvent(w, m.Event, seen, bad)
		if m.MaximumMessageAgeDays < 0 || m.MaximumMessageAgeDays > global {
			bad("%s: maximum_message_age_days %d: want 1..%d (koppeltaal.retention.max_message_age_days), or 0 for the global maximum", w, m.MaximumMessageAgeDays, global)
		}
	}
}

func checkApplicationSettings(where string, ms []ApplicationMessageSettingConfig, bad func(string, ...any)) {
	seen := map[string]bool{}
	for j, m := range ms {
		checkSettingEvent(fmt.Sprintf("%s[%d]", where, j), m.Event, seen, bad)
	}
}

// ValidateDomainMessageSettings checks a domain's message settings as the configuration file's are
// checked (known events, one setting each, an age within the global maximum); where names them in the error.
func (c RetentionConfig) ValidateDomainMessageSettings(where string, ms []DomainMessageSettingConfig) error {
	c.SetDefaults()
	var errs []error
	checkDomainSettings(where, ms, c.MaxMessageAgeDays, func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) })
	return errors.Join(errs...)
}

// ValidateApplicationMessageSettings is ValidateDomainMessageSettings for an application's settings.
func ValidateApplicationMessageSettings(where string, ms []ApplicationMessageSettingConfig) error {
	var errs []error
	checkApplicationSettings(where, ms, func(f string, a ...any) { errs = append(errs, fmt.Errorf(f, a...)) })
	return errors.Join(errs...)
}

func checkSettingEvent(where, event string, seen map[string]bool, bad func(string, ...any)) {
	switch {
	case !KnownEvent(event):
		bad("%s: unknown event %q (want one of %v)", where, event, Events)
	case seen[event]:
		bad("%s: event %q has two settings", where, event)
	}
	seen[event] = true
}

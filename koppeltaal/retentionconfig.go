package koppeltaal

import (
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

// SettingProblem is one wrong message setting: which one (its index in the list), which of its keys
// (as the configuration file names it: event, maximum_message_age_days) and what is wrong with it.
type SettingProblem struct {
	Index   int
	Key     string
	Problem string
}

func reportSettings(where string, problems []SettingProblem, bad func(string, ...any)) {
	for _, p := range problems {
		bad("%s[%d].%s %s", where, p.Index, p.Key, p.Problem)
	}
}

func checkDomainSettings(where string, ms []DomainMessageSettingConfig, global int, bad func(string, ...any)) {
	reportSettings(where, domainSettingProblems(ms, global), bad)
}

func checkApplicationSettings(where string, ms []ApplicationMessageSettingConfig, bad func(string, ...any)) {
	reportSettings(where, ApplicationSettingProblems(ms), bad)
}

func domainSettingProblems(ms []DomainMessageSettingConfig, global int) []SettingProblem {
	var out []SettingProblem
	seen := map[string]bool{}
	for j, m := range ms {
		out = appendEventProblem(out, j, m.Event, seen)
		if m.MaximumMessageAgeDays < 0 || m.MaximumMessageAgeDays > global {
			out = append(out, SettingProblem{j, "maximum_message_age_days", fmt.Sprintf(
				"%d: want 1..%d (koppeltaal.retention.max_message_age_days), or 0 for the global maximum", m.MaximumMessageAgeDays, global)})
		}
	}
	return out
}

// DomainSettingProblems checks a domain's message settings as the configuration file's are checked
// (known events, one setting each, an age within the global maximum); none: nil.
func (c RetentionConfig) DomainSettingProblems(ms []DomainMessageSettingConfig) []SettingProblem {
	c.SetDefaults()
	return domainSettingProblems(ms, c.MaxMessageAgeDays)
}

// ApplicationSettingProblems is DomainSettingProblems for an application's settings.
func ApplicationSettingProblems(ms []ApplicationMessageSettingConfig) []SettingProblem {
	var out []SettingProblem
	seen := map[string]bool{}
	for j, m := range ms {
		out = appendEventProblem(out, j, m.Event, seen)
	}
	return out
}

func appendEventProblem(out []SettingProblem, index int, event string, seen map[string]bool) []SettingProblem {
	switch {
	case !KnownEvent(event):
		out = append(out, SettingProblem{index, "event", fmt.Sprintf("%q: not a message event (want one of %v)", event, Events)})
	case seen[event]:
		out = append(out, SettingProblem{index, "event", fmt.Sprintf("%q has two settings", event)})
	}
	seen[event] = true
	return out
}

package loadtest

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v4"

	"github.com/koppelpoort/koppelpoort/internal/strictyaml"
	"github.com/koppelpoort/koppelpoort/koppeltaal"
)

// Roles an application instance plays in the load mix.
const (
	RolePractitionerPortal  = "practitioner-portal"   // creates Patients and CarePlans, receives activity status
	RolePatientPortal       = "patient-portal"        // claims and acknowledges
	RoleRelatedPersonPortal = "related-person-portal" // claims and acknowledges
	RoleGame                = "game"                  // claims CarePlans, reports activity status
	RoleQuestionnaire       = "questionnaire"         // claims CarePlans, reports activity status
)

// Koppeltaal event codes the load mix uses.
const (
	EventPatient        = koppeltaal.EventCreateOrUpdatePatient
	EventCarePlan       = koppeltaal.EventCreateOrUpdateCarePlan
	EventActivityStatus = koppeltaal.EventUpdateCarePlanActivityStatus
)

var knownRoles = []string{RolePractitionerPortal, RolePatientPortal, RoleRelatedPersonPortal, RoleGame, RoleQuestionnaire}

// Scenario is everything a load run does; it is read from a YAML file
// (strictly: unknown keys are errors) and/or set by flags. Zero values get the
// defaults documented on each field (see Defaults).
type Scenario struct {
	// Target is the base URL of the Koppeltaal server (scheme://host:port), without /FHIR/Koppeltaal;
	// several separated by commas (processes of one server on one database) get the requests in turn.
	// Ignored with --self.
	Target string `yaml:"target" json:"target"`
	// AllowRemote permits a target that is not a loopback address.
	AllowRemote bool `yaml:"allow_remote" json:"allow_remote"`
	// Format of the messages and the Accept header: json (default), xml or mixed (per instance).
	Format string `yaml:"format" json:"format"`
	// Duration of the load phase. Default 30s.
	Duration time.Duration `yaml:"duration" json:"duration"`
	// Rate is the open-loop rate of messages posted by practitioner portals per
	// second (all domains together). 0 means closed loop (see Concurrency).
	Rate float64 `yaml:"rate" json:"rate"`
	// Concurrency is the number of posting workers: in closed loop each sends
	// back to back; in open loop it caps the requests in flight. Default 8 (open
	// loop: 64).
	Concurrency int `yaml:"concurrency" json:"concurrency"`
	// Domains is the number of Koppeltaal domains provisioned with --self. Default 2.
	Domains int `yaml:"domains" json:"domains"`
	// PatientsPerDomain is the patient population of each domain. Default 200.
	PatientsPerDomain int `yaml:"patients_per_domain" json:"patients_per_domain"`
	// SubscribersPerEvent is the number of instances per domain subscribed to
	// each event the practitioner portal sends (--self). Default 3.
	SubscribersPerEvent int `yaml:"subscribers_per_event" json:"subscribers_per_event"`
	// ConsumersPerInstance is the number of concurrent claim loops per
	// subscribed instance. Default 2.
	ConsumersPerInstance int `yaml:"consumers_per_instance" json:"consumers_per_instance"`
	// PollInterval is how long a consumer waits after an empty claim. Default 20ms.
	PollInterval time.Duration `yaml:"poll_interval" json:"poll_interval"`
	// Activities per CarePlan. Default 4.
	Activities int `yaml:"activities" json:"activities"`
	// CareTeams per CarePlan (Other CareTeam entries). Default 2.
	CareTeams int `yaml:"careteams" json:"careteams"`
	// MessageSize is a minimum CarePlan message size (e.g. 16KiB); activities
	// are added until it is reached. Default 0 (just Activities).
	MessageSize Size `yaml:"message_size" json:"message_size"`
	// Mix weighs the messages practitioner portals send.
	Mix Mix `yaml:"mix" json:"mix"`
	// StatusShare is the fraction of claimed CarePlan messages for which a
	// module (game, questionnaire) reports UpdateCarePlanActivityStatus. Default 0.3.
	StatusShare *float64 `yaml:"status_share" json:"status_share"`
	// AckFailedShare is the fraction of claims acknowledged Failed (with exception text). Default 0.02.
	AckFailedShare *float64 `yaml:"ack_failed_share" json:"ack_failed_share"`
	// AckNewShare is the fraction of first claims acknowledged New (to be delivered again). Default 0.02.
	AckNewShare *float64 `yaml:"ack_new_share" json:"ack_new_share"`
	// StaleVersionShare is the fraction of CarePlan updates deliberately sent
	// with an outdated version, expecting 409 and a retry. Default 0.02.
	StaleVersionShare *float64 `yaml:"stale_version_share" json:"stale_version_share"`
	// DrainTimeout bounds the wait for consumers to empty all queues after the load phase. Default 60s.
	DrainTimeout time.Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// RequestTimeout bounds one HTTP request. Default 30s.
	RequestTimeout time.Duration `yaml:"request_timeout" json:"request_timeout"`
	// Backlog is the number of new-patient messages per domain posted before
	// any consumer runs, so the load starts on deep queues; the report then
	// shows claim latency by queue depth. Default 0.
	Backlog int `yaml:"backlog" json:"backlog"`
	// Prefill is the number of new-patient messages per domain written
	// straight into the fresh database before the --self server starts, each
	// queued for every subscriber: deep queues in seconds instead of the half
	// hour a million POSTs take. --self only. Default 0.
	Prefill int `yaml:"prefill" json:"prefill"`
	// PrefillDue is the share (0..1) of the Prefill messages written old
	// enough for the removal job — created before the maximum message age
	// (56 days), their queue entries acknowledged Success long ago, bodies
	// kept — so that a removal run during the load has them to remove.
	// Default 0.
	PrefillDue float64 `yaml:"prefill_due" json:"prefill_due,omitempty"`
	// Instances are the credentials of an external target (without --self).
	Instances []InstanceSpec `yaml:"instances" json:"instances,omitempty"`
}

// Mix weighs the message kinds practitioner portals send; only ratios matter.
type Mix struct {
	// Patient weighs CreateOrUpdatePatient. Default 1.
	Patient float64 `yaml:"patient" json:"patient"`
	// CarePlan weighs CreateOrUpdateCarePlan (create while a patient has none, else a versioned update). Default 4.
	CarePlan float64 `yaml:"careplan" json:"careplan"`
}

// InstanceSpec is one application instance the load tool acts as.
type InstanceSpec struct {
	Domain        string   `yaml:"domain" json:"domain"`
	Application   string   `yaml:"application" json:"application"`
	Role          string   `yaml:"role" json:"role"`
	Username      string   `yaml:"username" json:"username"`
	Password      string   `yaml:"password" json:"-"`
	Subscriptions []string `yaml:"subscriptions" json:"subscriptions"`
	// Format overrides the scenario format for this instance (json or xml).
	Format string `yaml:"format" json:"format,omitempty"`
}

// Size is a byte count that YAML and flags may write with a unit (16KiB, 1MiB, 4KB).
type Size int64

// ParseSize parses "16KiB", "1MiB", "4000", "4KB".
func ParseSize(s string) (Size, error) {
	s = strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suf string
		m   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"KB", 1000}, {"MB", 1000 * 1000}, {"B", 1}} {
		if num, ok := strings.CutSuffix(s, u.suf); ok {
			s, mult = strings.TrimSpace(num), u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q: want a whole number with an optional unit (KiB, MiB, KB, MB)", s)
	}
	return Size(n * mult), nil
}

// UnmarshalYAML implements yaml.Unmarshaler.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	v, err := ParseSize(n.Value)
	if err != nil {
		return err // reported at the value's line and column
	}
	*s = v
	return nil
}

// String renders the size for flags.
func (s Size) String() string { return strconv.FormatInt(int64(s), 10) }

// Set implements pflag.Value.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// Type implements pflag.Value.
func (s *Size) Type() string { return "size" }

func ptr(f float64) *float64 { return &f }

// Defaults fills every zero field with its documented default.
func (s *Scenario) Defaults() {
	if s.Format == "" {
		s.Format = "json"
	}
	if s.Duration == 0 {
		s.Duration = 30 * time.Second
	}
	if s.Concurrency == 0 {
		s.Concurrency = 8
		if s.Rate > 0 {
			s.Concurrency = 64
		}
	}
	if s.Domains == 0 {
		s.Domains = 2
	}
	if s.PatientsPerDomain == 0 {
		s.PatientsPerDomain = 200
	}
	if s.SubscribersPerEvent == 0 {
		s.SubscribersPerEvent = 3
	}
	if s.ConsumersPerInstance == 0 {
		s.ConsumersPerInstance = 2
	}
	if s.PollInterval == 0 {
		s.PollInterval = 20 * time.Millisecond
	}
	if s.Activities == 0 {
		s.Activities = 4
	}
	if s.CareTeams == 0 {
		s.CareTeams = 2
	}
	if s.Mix.Patient == 0 && s.Mix.CarePlan == 0 {
		s.Mix = Mix{Patient: 1, CarePlan: 4}
	}
	if s.StatusShare == nil {
		s.StatusShare = ptr(0.3)
	}
	if s.AckFailedShare == nil {
		s.AckFailedShare = ptr(0.02)
	}
	if s.AckNewShare == nil {
		s.AckNewShare = ptr(0.02)
	}
	if s.StaleVersionShare == nil {
		s.StaleVersionShare = ptr(0.02)
	}
	if s.DrainTimeout == 0 {
		s.DrainTimeout = 60 * time.Second
	}
	if s.RequestTimeout == 0 {
		s.RequestTimeout = 30 * time.Second
	}
	for i := range s.Instances {
		if s.Instances[i].Format == "" {
			s.Instances[i].Format = s.Format
		}
	}
}

// Validate reports every invalid setting, naming the field. self tells
// whether the tool provisions its own server (then Target and Instances are
// not needed).
func (s *Scenario) Validate(self bool) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	switch s.Format {
	case "json", "xml", "mixed":
	default:
		bad("format: %q is not json, xml or mixed", s.Format)
	}
	if s.Duration < 0 || s.DrainTimeout < 0 || s.PollInterval < 0 || s.RequestTimeout < 0 {
		bad("duration, drain_timeout, poll_interval, request_timeout: must not be negative")
	}
	if s.Rate < 0 {
		bad("rate: %v must not be negative (0 = closed loop)", s.Rate)
	}
	if s.Concurrency < 1 || s.Concurrency > 4096 {
		bad("concurrency: %d is not within 1..4096", s.Concurrency)
	}
	if s.Domains < 1 || s.Domains > 1000 {
		bad("domains: %d is not within 1..1000", s.Domains)
	}
	if s.PatientsPerDomain < 1 || s.PatientsPerDomain > 10_000_000 {
		bad("patients_per_domain: %d is not within 1..10000000", s.PatientsPerDomain)
	}
	if s.SubscribersPerEvent < 1 || s.SubscribersPerEvent > 32 {
		bad("subscribers_per_event: %d is not within 1..32", s.SubscribersPerEvent)
	}
	if s.ConsumersPerInstance < 1 || s.ConsumersPerInstance > 64 {
		bad("consumers_per_instance: %d is not within 1..64", s.ConsumersPerInstance)
	}
	if s.Backlog < 0 || s.Backlog > 10_000_000 {
		bad("backlog: %d is not within 0..10000000", s.Backlog)
	}
	if s.Prefill < 0 || s.Prefill > 10_000_000 {
		bad("prefill: %d is not within 0..10000000", s.Prefill)
	} else if s.Prefill > 0 && !self {
		bad("prefill: %d needs --self: it writes the messages straight into the database of the server the tool starts itself (on another server use backlog, which posts them)", s.Prefill)
	}
	if s.PrefillDue < 0 || s.PrefillDue > 1 {
		bad("prefill_due: %g is not within 0..1 (a share of prefill)", s.PrefillDue)
	} else if s.PrefillDue > 0 && s.Prefill == 0 {
		bad("prefill_due: %g needs prefill: it is the share of the prefilled messages written due for removal", s.PrefillDue)
	}
	if s.Activities < 1 || s.Activities > 500 {
		bad("activities: %d is not within 1..500", s.Activities)
	}
	if s.CareTeams < 0 || s.CareTeams > 50 {
		bad("careteams: %d is not within 0..50", s.CareTeams)
	}
	if s.MessageSize < 0 || s.MessageSize > 8<<20 {
		bad("message_size: %d is not within 0..8MiB", s.MessageSize)
	}
	if s.Mix.Patient < 0 || s.Mix.CarePlan < 0 || s.Mix.Patient+s.Mix.CarePlan == 0 {
		bad("mix: weights must not be negative and not all zero")
	}
	for name, p := range map[string]*float64{"status_share": s.StatusShare, "ack_failed_share": s.AckFailedShare, "ack_new_share": s.AckNewShare, "stale_version_share": s.StaleVersionShare} {
		if p != nil && (*p < 0 || *p > 1) {
			bad("%s: %v is not a fraction within 0..1", name, *p)
		}
	}
	if s.AckFailedShare != nil && s.AckNewShare != nil && *s.AckFailedShare+*s.AckNewShare > 1 {
		bad("ack_failed_share + ack_new_share: %v exceeds 1", *s.AckFailedShare+*s.AckNewShare)
	}
	if !self {
		if s.Target == "" {
			bad("target: required without --self (e.g. http://127.0.0.1:8080); or pass --self to start a server of its own")
		} else if err := checkTarget(s.Target, s.AllowRemote); err != nil {
			bad("target: %v", err)
		}
		if len(s.Instances) == 0 {
			bad("instances: required without --self (the credentials of the application instances to act as)")
		}
		errs = append(errs, validateInstances(s.Instances)...)
	}
	return errors.Join(errs...)
}

func validateInstances(in []InstanceSpec) []error {
	var errs []error
	hasSender := false
	users := map[string]bool{}
	for i, x := range in {
		at := fmt.Sprintf("instances[%d]", i)
		if x.Domain == "" || x.Username == "" {
			errs = append(errs, fmt.Errorf("%s: domain and username are required", at))
		}
		if users[x.Username] {
			errs = append(errs, fmt.Errorf("%s: username %q appears twice", at, x.Username))
		}
		users[x.Username] = true
		found := false
		for _, r := range knownRoles {
			found = found || r == x.Role
		}
		if !found {
			errs = append(errs, fmt.Errorf("%s: role %q is not one of %s", at, x.Role, strings.Join(knownRoles, ", ")))
		}
		if x.Role == RolePractitionerPortal {
			hasSender = true
		}
		switch x.Format {
		case "", "json", "xml":
		default:
			errs = append(errs, fmt.Errorf("%s: format %q is not json or xml", at, x.Format))
		}
		for _, ev := range x.Subscriptions {
			if !koppeltaal.KnownEvent(ev) {
				errs = append(errs, fmt.Errorf("%s: subscription %q is not a Koppeltaal event (%s)", at, ev, strings.Join(koppeltaal.Events, ", ")))
			}
		}
	}
	if len(in) > 0 && !hasSender {
		errs = append(errs, errors.New("instances: at least one instance needs role practitioner-portal (it sends the messages)"))
	}
	return errs
}

// checkTarget refuses non-loopback targets unless allowed; target may list
// several, separated by commas.
func checkTarget(target string, allowRemote bool) error {
	if ts := strings.Split(target, ","); len(ts) > 1 {
		for _, t := range ts {
			if err := checkTarget(strings.TrimSpace(t), allowRemote); err != nil {
				return err
			}
		}
		return nil
	}
	u, err := url.Parse(target)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL like http://127.0.0.1:8080", target)
	}
	if allowRemote {
		return nil
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%s is not a loopback address; a load test can overload a shared server, pass --allow-remote (allow_remote: true) if you mean it", host)
}

// LoadScenario reads a scenario file strictly (see parseScenario).
func LoadScenario(path string) (*Scenario, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return parseScenario(path, raw) // errors name the file, line and column
}

func parseScenario(name string, raw []byte) (*Scenario, error) {
	var s Scenario
	if err := strictyaml.Decode(name, raw, os.LookupEnv, &s); err != nil {
		return nil, err
	}
	return &s, nil
}

// ParseInstanceFlag parses one --instance flag value:
// "role=game,domain=D,username=u,password=p,subscriptions=CreateOrUpdateCarePlan+CreateOrUpdatePatient[,application=a][,format=xml]".
// The password may be "${VAR}" to read it from the environment (strictyaml.Expand, as in scenario files).
func ParseInstanceFlag(v string) (InstanceSpec, error) {
	var in InstanceSpec
	for _, kvs := range strings.Split(v, ",") {
		k, val, ok := strings.Cut(strings.TrimSpace(kvs), "=")
		if !ok {
			return in, fmt.Errorf("--instance %q: %q is not key=value", v, kvs)
		}
		switch k {
		case "role":
			in.Role = val
		case "domain":
			in.Domain = val
		case "username", "user":
			in.Username = val
		case "password":
			pw, err := strictyaml.Expand(val, os.LookupEnv)
			if err != nil {
				return in, fmt.Errorf("--instance %q: password: %w", v, err)
			}
			in.Password = pw
		case "application", "app":
			in.Application = val
		case "format":
			in.Format = val
		case "subscriptions", "subscribe":
			if val != "" {
				in.Subscriptions = strings.Split(val, "+")
			}
		default:
			return in, fmt.Errorf("--instance %q: unknown key %q (want role, domain, username, password, subscriptions, application, format)", v, k)
		}
	}
	if errs := validateInstances([]InstanceSpec{in}); len(errs) > 0 && (in.Domain == "" || in.Username == "") {
		return in, fmt.Errorf("--instance %q: %w", v, errs[0])
	}
	return in, nil
}

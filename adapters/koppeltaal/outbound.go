// Package koppeltaal is the Koppeltaal adapter: outbound it publishes the messages that routes declare into
// a domain on a Koppeltaal server (this one or a remote one) as a configured application instance, keeping
// per resource the version the server issued so a second export of the same patient is a valid update;
// inbound it consumes an instance's mailbox (claim, route, acknowledge).
package koppeltaal

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
)

func init() {
	adapters.Register(adapters.Registration{ID: "outbound.koppeltaal", Spec: OutboundSpec, New: func() any { return new(Outbound) }})
	adapters.Register(adapters.Registration{ID: "inbound.koppeltaal", Spec: InboundSpec, New: func() any { return new(Inbound) }})
}

var connectionFields = []adapters.Field{
	{Name: "base_url", Type: adapters.TypeString, Required: true, Description: "Koppeltaal server root, e.g. http://127.0.0.1:8080 (the client adds /FHIR/Koppeltaal)."},
	{Name: "username", Type: adapters.TypeString, Required: true, Description: "Application-instance user name."},
	{Name: "password", Type: adapters.TypeSecret, Required: true, Description: "Application-instance password, usually ${ENV_VAR}."},
	{Name: "format", Type: adapters.TypeString, Default: "json", Enum: []string{"json", "xml"}, Description: "Wire format."},
	{Name: "timeout", Type: adapters.TypeDuration, Default: "30s", Description: "Timeout of one call."},
}

// OutboundSpec is the outbound Koppeltaal adapter's settings.
var OutboundSpec = adapters.Spec{
	Summary: "Publish the transform's koppeltaal message into a domain as an application instance. Versions issued by the server are remembered per resource and sent with updates; on a 409 the adapter refreshes and retries once.",
	Fields: append(append([]adapters.Field{}, connectionFields...),
		adapters.Field{Name: "domain", Type: adapters.TypeString, Required: true, Description: "Koppeltaal domain name (the instance's domain)."},
		adapters.Field{Name: "resource_base", Type: adapters.TypeString, Description: "Base URL of the sent resources (the sender's own URLs). Default: <base_url>/FHIR/Koppeltaal."},
		adapters.Field{Name: "source_name", Type: adapters.TypeString, Description: "MessageHeader.source.name. Default: the route name."},
	),
}

// Outbound publishes messages.
type Outbound struct {
	BaseURL      string `yaml:"base_url"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	Format       string `yaml:"format"`
	Timeout      string `yaml:"timeout"`
	Domain       string `yaml:"domain"`
	ResourceBase string `yaml:"resource_base"`
	SourceName   string `yaml:"source_name"`

	client   *client.Client
	versions *versionStore
	log      *slog.Logger
}

// Validate checks the URLs.
func (o *Outbound) Validate() error {
	if err := checkURL(o.BaseURL); err != nil {
		return fmt.Errorf("base_url: %w", err)
	}
	if o.ResourceBase != "" {
		if err := checkURL(o.ResourceBase); err != nil {
			return fmt.Errorf("resource_base: %w", err)
		}
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	return nil
}

func newClient(base, user, pass, format, timeout string) (*client.Client, error) {
	d, err := time.ParseDuration(timeout)
	if err != nil {
		return nil, fmt.Errorf("timeout: %w", err)
	}
	f := dstu1.FormatJSON
	if format == "xml" {
		f = dstu1.FormatXML
	}
	return &client.Client{BaseURL: base, Username: user, Password: pass, Format: f, HTTP: &http.Client{Timeout: d}}, nil
}

// Provision builds the client and opens the version bookkeeping in the store.
func (o *Outbound) Provision(_ context.Context, h adapters.Host) error {
	c, err := newClient(o.BaseURL, o.Username, o.Password, o.Format, o.Timeout)
	if err != nil {
		return err
	}
	o.client = c
	if o.ResourceBase == "" {
		o.ResourceBase = strings.TrimRight(o.BaseURL, "/") + client.Prefix
	}
	if o.SourceName == "" {
		o.SourceName = h.Route
	}
	o.log = h.Logger
	if o.log == nil {
		o.log = slog.Default()
	}
	if h.DB == nil {
		return errors.New("koppeltaal outbound: no database for version bookkeeping")
	}
	o.versions = &versionStore{db: h.DB, dialect: h.Dialect, scope: strings.TrimRight(o.BaseURL, "/") + "|" + o.Domain}
	return nil
}

// Deliver builds the message with the known versions and posts it; a 409 refreshes versions and retries once.
func (o *Outbound) Deliver(ctx context.Context, d adapters.Delivery) error {
	if d.Koppeltaal == nil {
		return errors.New("koppeltaal output: the transform declares no koppeltaal message")
	}
	m := client.Message{Event: d.Koppeltaal.Event, Patient: d.Koppeltaal.Patient}
	var urls []string
	for _, r := range d.Koppeltaal.Resources {
		m.Resources = append(m.Resources, client.Resource{Type: r.Type, ID: r.ID, Body: r.Body})
		urls = append(urls, client.ResourceURL(o.ResourceBase, r.Type, r.ID))
	}
	if m.Patient != "" {
		urls = append(urls, client.PatientURL(o.ResourceBase, m.Patient))
	}
	for attempt := 1; ; attempt++ {
		known, err := o.versions.get(ctx, urls)
		if err != nil {
			return adapters.Transient(err)
		}
		msg, err := client.BuildMessage(m, client.BuildOptions{Domain: o.Domain, ResourceBase: o.ResourceBase,
			SourceName: o.SourceName, MessageID: client.MessageIDFor(d.IdempotencyKey), Version: func(u string) string { return known[u] }})
		if err != nil {
			return err
		}
		reply, err := o.client.PostMessage(ctx, msg)
		if err == nil {
			if err := o.versions.put(ctx, client.IssuedVersions(reply)); err != nil {
				// The message is in; a lost version means the next update gets a 409 and a refresh.
				o.log.Warn("koppeltaal outbound: versions not recorded", "error", err)
			}
			return nil
		}
		var ce *client.Error
		if errors.Is(err, client.ErrVersionConflict) && attempt == 1 {
			refreshed, rerr := o.refresh(ctx, m, urls, known)
			if rerr != nil {
				return adapters.Transient(fmt.Errorf("%w; refreshing versions failed: %v", err, rerr))
			}
			if refreshed {
				continue
			}
			// Another route may be about to record the version (two exports touching one resource at once):
			// retry with backoff; if it stays unknown the delivery ends as a dead letter with this reason.
			return adapters.Transient(fmt.Errorf("%w (the server holds a version this instance cannot see; subscribe the instance to %s so the gateway can refresh versions)", err, m.Event))
		}
		if errors.As(err, &ce) && !ce.Temporary() {
			return err
		}
		return adapters.Transient(err)
	}
}

// refresh looks for newer versions of the message's resources: first in the bookkeeping (another route may
// have recorded one), then in the messages this instance can see (its mailbox, filtered by patient and
// event), and records them. It reports whether anything changed.
func (o *Outbound) refresh(ctx context.Context, m client.Message, urls []string, used map[string]string) (bool, error) {
	// Another route of this gateway may have recorded a newer version since this attempt read them.
	if current, err := o.versions.get(ctx, urls); err == nil {
		for u, v := range current {
			if used[u] != v {
				return true, nil
			}
		}
	}
	q := url.Values{"_summary": {"true"}, "_count": {"100"}, "event": {m.Event}}
	if m.Patient != "" {
		q.Set("Patient", client.PatientURL(o.ResourceBase, m.Patient))
	}
	res, err := o.client.Search(ctx, q)
	if err != nil {
		return false, err
	}
	want := map[string]bool{}
	for _, u := range urls {
		want[u] = true
	}
	found := map[string]string{}
	for _, e := range res.Entries {
		mh := dstu1.AsMessageHeader(e.Resource)
		if mh == nil {
			continue
		}
		for _, ref := range mh.Data() {
			base, v := dstu1.SplitHistory(ref)
			// Versions compare as strings (Koppeltaal clients rely on that); keep the highest.
			if want[base] && v > found[base] {
				found[base] = v
			}
		}
	}
	known, err := o.versions.get(ctx, urls)
	if err != nil {
		return false, err
	}
	changed := map[string]string{}
	for u, v := range found {
		if v != known[u] {
			changed[u] = v
		}
	}
	if len(changed) == 0 {
		return false, nil
	}
	return true, o.versions.put(ctx, changed)
}

// Interface guards.
var (
	_ adapters.Outbound    = (*Outbound)(nil)
	_ adapters.Provisioner = (*Outbound)(nil)
	_ adapters.Validator   = (*Outbound)(nil)
)

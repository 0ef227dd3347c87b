// Package koppeltaal is the Koppeltaal adapter. Outbound it publishes the messages that routes declare into
// a domain as an application instance; inbound it consumes an instance's mailbox and acknowledges each
// message with its outcome. With `instance:` it works on this process's own Koppeltaal server, in the
// store (local.go): an outbound message is accepted through the mailbox port in the transaction that
// routes the record, based on the store's current versions, and an inbound reads the instance's queue.
// With `base_url:` it talks to a remote Koppeltaal server over HTTP (koppeltaal/client), keeping per
// resource the version that server issued, so that a second export of the same patient is a valid update.
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
	"github.com/koppelpoort/koppelpoort/store"
)

func init() {
	adapters.Register(adapters.Registration{ID: "outbound.koppeltaal", Spec: OutboundSpec, New: func() any { return new(Outbound) }})
	adapters.Register(adapters.Registration{ID: "inbound.koppeltaal", Spec: InboundSpec, New: func() any { return new(Inbound) }})
}

var connectionFields = []adapters.Field{
	{Name: "instance", Type: adapters.TypeString, Description: "Local: the user name of an application instance of this Koppelpoort's own Koppeltaal server (no password, no HTTP; the domain is the instance's). Give instance or base_url."},
	{Name: "base_url", Type: adapters.TypeString, Description: "Remote: Koppeltaal server root, e.g. https://kt.example.nl (the client adds /FHIR/Koppeltaal). Give instance or base_url."},
	{Name: "username", Type: adapters.TypeString, Description: "Remote: application-instance user name."},
	{Name: "password", Type: adapters.TypeSecret, Description: "Remote: application-instance password, usually ${ENV_VAR}."},
	{Name: "format", Type: adapters.TypeString, Default: "json", Enum: []string{"json", "xml"}, Description: "Wire format."},
	{Name: "timeout", Type: adapters.TypeDuration, Default: "30s", Description: "Timeout of one call."},
}

// OutboundSpec is the outbound Koppeltaal adapter's settings.
var OutboundSpec = adapters.Spec{
	Summary: "Publish the transform's koppeltaal message into a domain as an application instance. Local (instance): accepted in the transaction that routes the record, updates based on the current versions. Remote (base_url): versions the server issued are remembered per resource and sent with updates; on a 409 the adapter refreshes and retries once.",
	Fields: append(append([]adapters.Field{}, connectionFields...),
		adapters.Field{Name: "domain", Type: adapters.TypeString, Description: "Remote: Koppeltaal domain name (the instance's domain)."},
		adapters.Field{Name: "resource_base", Type: adapters.TypeString, Description: "Base URL of the sent resources (the sender's own URLs). Default: <base_url>/FHIR/Koppeltaal; required with instance."},
		adapters.Field{Name: "source_name", Type: adapters.TypeString, Description: "MessageHeader.source.name. Default: the route name."},
	),
}

// Outbound publishes messages.
type Outbound struct {
	Instance     string `yaml:"instance"`
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
	local    *local
	log      *slog.Logger
}

// Validate checks that the output is local or remote, and its URLs.
func (o *Outbound) Validate() error {
	if err := checkTarget(o.Instance, o.BaseURL, o.Username, o.Password); err != nil {
		return err
	}
	if o.Instance != "" {
		if o.Domain != "" {
			return errors.New("domain: a local output publishes into its instance's domain; leave domain out")
		}
		if o.ResourceBase == "" {
			return errors.New("resource_base: a local output needs the base URL of the resources it sends (the source system's own URLs)")
		}
	} else if o.Domain == "" {
		return errors.New(`domain: a remote output needs the domain of its instance (missing required setting "domain")`)
	}
	if o.Instance == "" {
		if err := checkURL(o.BaseURL); err != nil {
			return fmt.Errorf("base_url: %w", err)
		}
	}
	if o.ResourceBase != "" {
		if err := checkURL(o.ResourceBase); err != nil {
			return fmt.Errorf("resource_base: %w", err)
		}
	}
	return nil
}

// checkTarget checks that a Koppeltaal adapter names a local instance or a remote server with credentials.
func checkTarget(instance, baseURL, username, password string) error {
	switch {
	case instance == "" && baseURL == "":
		return errors.New("give instance (an instance of this server) or base_url (a remote Koppeltaal server)")
	case instance != "" && (baseURL != "" || username != "" || password != ""):
		return errors.New("instance names a local instance: leave base_url, username and password out")
	case instance == "" && (username == "" || password == ""):
		return errors.New("a remote Koppeltaal server (base_url) needs username and password")
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

// Provision finds the local instance, or builds the client and the version bookkeeping of a remote server.
func (o *Outbound) Provision(ctx context.Context, h adapters.Host) error {
	if o.SourceName == "" {
		o.SourceName = h.Route
	}
	if o.Instance != "" {
		var err error
		o.local, err = newLocal(ctx, h, o.Instance)
		return err
	}
	c, err := newClient(o.BaseURL, o.Username, o.Password, o.Format, o.Timeout)
	if err != nil {
		return err
	}
	o.client = c
	if o.ResourceBase == "" {
		o.ResourceBase = strings.TrimRight(o.BaseURL, "/") + client.Prefix
	}
	o.log = h.Logger
	if o.log == nil {
		o.log = slog.Default()
	}
	if h.Store == nil {
		return errors.New("koppeltaal outbound: no store for version bookkeeping")
	}
	o.versions = &versionStore{st: h.Store, scope: strings.TrimRight(o.BaseURL, "/") + "|" + o.Domain}
	return nil
}

// message is the delivery's declared Koppeltaal message and the URLs of its resources (and patient).
func (o *Outbound) message(d adapters.Delivery) (client.Message, []string, error) {
	if d.Koppeltaal == nil {
		return client.Message{}, nil, errors.New("koppeltaal output: the transform declares no koppeltaal message")
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
	return m, urls, nil
}

// InTx: a local output delivers in the routing transaction.
func (o *Outbound) InTx() bool { return o.Instance != "" }

// DeliverTx accepts the message into the local domain on tx (see local.accept). The message is built from
// the resources the route parsed when it checked them (KoppeltaalResource.Parsed): no encode and parse of
// the resources on the way, the tree goes to the mailbox port as it is, which encodes the body once.
func (o *Outbound) DeliverTx(ctx context.Context, tx *store.Tx, d adapters.Delivery) error {
	m, _, err := o.message(d)
	if err != nil {
		return err
	}
	opts := client.BuildOptions{Domain: o.local.caller.DomainName, ResourceBase: o.ResourceBase,
		SourceName: o.SourceName, MessageID: client.MessageIDFor(d.IdempotencyKey)}
	var msg *dstu1.Bundle
	if parsed := parsedResources(d.Koppeltaal); parsed != nil {
		msg, err = client.BuildMessageFrom(m, parsed, opts)
	} else {
		msg, err = client.BuildMessage(m, opts)
	}
	if err != nil {
		return err
	}
	return o.local.accept(ctx, tx, msg)
}

// parsedResources are the trees of kt's resources the route parsed, or nil when one is missing (a
// delivery read back from the store).
func parsedResources(kt *adapters.KoppeltaalMessage) []*dstu1.Resource {
	out := make([]*dstu1.Resource, len(kt.Resources))
	for i, r := range kt.Resources {
		if r.Parsed == nil {
			return nil
		}
		out[i] = r.Parsed
	}
	return out
}

// Deliver posts the message to the remote server with the known versions; a 409 refreshes versions and
// retries once. A local output delivers in the routing transaction instead (DeliverTx).
func (o *Outbound) Deliver(ctx context.Context, d adapters.Delivery) error {
	if o.local != nil {
		return o.local.inOwnTx(ctx, func(tx *store.Tx) error { return o.DeliverTx(ctx, tx, d) })
	}
	m, urls, err := o.message(d)
	if err != nil {
		return err
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
	_ adapters.TxOutbound  = (*Outbound)(nil)
	_ adapters.Provisioner = (*Outbound)(nil)
	_ adapters.Validator   = (*Outbound)(nil)
)

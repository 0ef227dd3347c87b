package koppeltaal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/fhir/dstu1"
	"github.com/koppelpoort/koppelpoort/koppeltaal/client"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// InboundSpec is the inbound Koppeltaal adapter's settings.
var InboundSpec = adapters.Spec{
	Summary: "Consume an application instance's mailbox: take each new message, route it, then acknowledge Success once every delivery succeeded, or Failed with the reason when it was dead-lettered. Local (instance): taken from the queue in the transaction that puts it on the route. Remote (base_url): claimed over HTTP.",
	Fields: append(append([]adapters.Field{}, connectionFields...),
		adapters.Field{Name: "event", Type: adapters.TypeString, Description: "Only claim messages with this event."},
		adapters.Field{Name: "poll_interval", Type: adapters.TypeDuration, Default: "5s", Description: "Wait between claims when the mailbox is empty."},
	),
}

// Inbound consumes a mailbox.
type Inbound struct {
	Instance     string `yaml:"instance"`
	BaseURL      string `yaml:"base_url"`
	Username     string `yaml:"username"`
	Password     string `yaml:"password"`
	Format       string `yaml:"format"`
	Timeout      string `yaml:"timeout"`
	Event        string `yaml:"event"`
	PollInterval string `yaml:"poll_interval"`

	client *client.Client
	local  *local
	poll   time.Duration
	log    *slog.Logger
}

// RecordFields are the fields of a record made from a claimed message.
var RecordFields = []string{"event", "message_id", "timestamp", "patient", "source_name", "source_software",
	"focal_type", "focal_url", "focal_version", "focal", "resources"}

// Validate checks that the input is local or remote, and its URL.
func (in *Inbound) Validate() error {
	if err := checkTarget(in.Instance, in.BaseURL, in.Username, in.Password); err != nil {
		return err
	}
	if in.Instance != "" {
		return nil
	}
	if err := checkURL(in.BaseURL); err != nil {
		return fmt.Errorf("base_url: %w", err)
	}
	return nil
}

// Shape: the record fields are known.
func (in *Inbound) Shape() transforms.Shape { return transforms.Shape{Fields: RecordFields} }

// Provision finds the local instance or builds the client.
func (in *Inbound) Provision(ctx context.Context, h adapters.Host) error {
	var err error
	if in.poll, err = time.ParseDuration(in.PollInterval); err != nil {
		return fmt.Errorf("poll_interval: %w", err)
	}
	in.log = h.Logger
	if in.log == nil {
		in.log = slog.Default()
	}
	if in.Instance != "" {
		in.local, err = newLocal(ctx, h, in.Instance)
		return err
	}
	in.client, err = newClient(in.BaseURL, in.Username, in.Password, in.Format, in.Timeout)
	return err
}

// Run claims messages until ctx ends. A claimed message is accepted (durable) and left Claimed; the
// runtime reports its outcome through Outcome. If the process dies in between, the server's claim
// time-out returns the message to New and it is claimed again (deliveries are idempotent).
func (in *Inbound) Run(ctx context.Context, sink adapters.Sink) error {
	if in.local != nil {
		return in.local.run(ctx, sink, in.Event, func(ctx context.Context) { sleep(ctx, in.poll) }, in.log)
	}
	for ctx.Err() == nil {
		msg, err := in.client.Claim(ctx, client.ClaimFilter{Event: in.Event})
		if err != nil {
			if ctx.Err() == nil {
				in.log.Warn("koppeltaal inbound: claim failed", "error", err)
			}
			sleep(ctx, in.poll)
			continue
		}
		if msg == nil {
			sleep(ctx, in.poll)
			continue
		}
		rec, err := MessageRecord(msg)
		if err != nil {
			in.log.Warn("koppeltaal inbound: unreadable message; acknowledged Failed", "error", err)
			if err := in.client.Ack(ctx, msg, "Failed", err.Error()); err != nil {
				in.log.Warn("koppeltaal inbound: ack failed", "error", err)
			}
			continue
		}
		if err := sink.Accept(ctx, []adapters.Record{rec}); err != nil {
			// Not durable: give the message back so it is not lost until the claim times out.
			in.log.Warn("koppeltaal inbound: record not stored; message set back to New", "record", rec.Key, "error", err)
			if err := in.client.Ack(context.WithoutCancel(ctx), msg, "New", ""); err != nil {
				in.log.Warn("koppeltaal inbound: ack New failed", "error", err)
			}
			sleep(ctx, in.poll)
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// Outcome acknowledges the message a record came from.
func (in *Inbound) Outcome(ctx context.Context, rec adapters.Record, ok bool, reason string) error {
	status, exception := "Success", ""
	if !ok {
		status, exception = "Failed", reason
		if exception == "" {
			exception = "failed in the gateway"
		}
	}
	if in.local != nil {
		return in.local.outcome(ctx, rec.Meta["kt_ack_url"], status, exception)
	}
	// Written by Receive from a claimed message: read as it was.
	header, err := dstu1.Limits{SkipValueChecks: true}.ParseResource([]byte(rec.Meta["kt_header"]), dstu1.FormatJSON)
	if err != nil {
		return fmt.Errorf("koppeltaal inbound: stored header unreadable: %w", err)
	}
	err = in.client.AckHeader(ctx, rec.Meta["kt_ack_url"], header, status, exception)
	var ce *client.Error
	if errors.As(err, &ce) && ce.Status == 409 {
		// Already acknowledged (a re-claimed message whose first outcome went through): nothing to do.
		return nil
	}
	return err
}

// MessageRecord turns a claimed message bundle into a route record.
func MessageRecord(msg *dstu1.Bundle) (adapters.Record, error) {
	mh := msg.MessageHeader()
	if mh == nil {
		return adapters.Record{}, errors.New("message has no MessageHeader")
	}
	head := msg.Entries[0]
	ackURL := head.SelfLink()
	if ackURL == "" {
		ackURL = head.ID
	}
	toMap := func(r *dstu1.Resource) (map[string]any, error) {
		var m map[string]any
		if err := json.Unmarshal(r.JSON(), &m); err != nil {
			return nil, err
		}
		return m, nil
	}
	var resources []any
	fields := map[string]any{"event": mh.EventCode(), "message_id": mh.Identifier(), "timestamp": mh.Timestamp(),
		"patient": mh.Patient(), "source_name": mh.Source().Name, "source_software": mh.Source().Software}
	var focalRef string
	if d := mh.Data(); len(d) > 0 {
		focalRef = d[0]
	}
	focalBase, _ := dstu1.SplitHistory(focalRef)
	for _, e := range msg.Entries[1:] {
		if e.Resource == nil {
			continue
		}
		content, err := toMap(e.Resource)
		if err != nil {
			return adapters.Record{}, fmt.Errorf("entry %s: %w", e.ID, err)
		}
		base, version := dstu1.SplitHistory(e.SelfLink())
		if base == "" {
			base = e.ID
		}
		r := map[string]any{"type": e.ResourceType(), "url": base, "version": version, "content": content}
		resources = append(resources, r)
		if base == focalBase || (fields["focal"] == nil && focalBase == "") {
			fields["focal"], fields["focal_type"], fields["focal_url"], fields["focal_version"] = content, e.ResourceType(), base, version
		}
	}
	fields["resources"] = resources
	for _, k := range RecordFields {
		if _, ok := fields[k]; !ok {
			fields[k] = nil
		}
	}
	return adapters.Record{
		Key:    ackURL,
		Fields: fields,
		Meta: map[string]string{"adapter": "koppeltaal", "source_id": ackURL, "event": mh.EventCode(),
			"kt_ack_url": ackURL, "kt_header": string(head.Resource.JSON())},
	}, nil
}

// Interface guards.
var (
	_ adapters.Inbound      = (*Inbound)(nil)
	_ adapters.Provisioner  = (*Inbound)(nil)
	_ adapters.Validator    = (*Inbound)(nil)
	_ adapters.Shaper       = (*Inbound)(nil)
	_ adapters.Acknowledger = (*Inbound)(nil)
)

// DecodeFileLines reads a message bundle file (XML or JSON) into the record a claimed message would give,
// so route tests can feed real Koppeltaal messages.
func (in *Inbound) DecodeFileLines(name string, data []byte) ([]adapters.Record, []int, error) {
	b, err := dstu1.ParseBundle(data, dstu1.Sniff(data))
	if err != nil {
		return nil, nil, fmt.Errorf("%s: not a Koppeltaal message bundle: %w", name, err)
	}
	rec, err := MessageRecord(b)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	return []adapters.Record{rec}, nil, nil
}

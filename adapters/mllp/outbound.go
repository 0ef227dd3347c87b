package mllp

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/hl7v2"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// OutboundSpec is the outbound MLLP adapter's settings.
var OutboundSpec = adapters.Spec{
	Summary: "Send an HL7 v2 message (a field of the transformed record) over MLLP and wait for its ACK: AA is success, AE and no answer are retried with backoff, AR dead-letters at once. A message without MSH-10 gets a control id derived from the delivery, so a retry carries the same one.",
	Fields: []adapters.Field{
		{Name: "address", Type: adapters.TypeString, Required: true, Description: "host:port of the receiving interface engine."},
		{Name: "field", Type: adapters.TypeString, Default: "hl7", Description: "Field of the transformed record that holds the HL7 v2 message text."},
		{Name: "tls", Type: adapters.TypeBool, Default: false, Description: "Connect with TLS."},
		{Name: "tls_ca", Type: adapters.TypeString, Description: "PEM CA file to verify the receiver with (default: the system's roots)."},
		{Name: "tls_cert", Type: adapters.TypeString, Description: "PEM client certificate (mutual TLS), with tls_key."},
		{Name: "tls_key", Type: adapters.TypeSecret, Description: "PEM private key of tls_cert."},
		{Name: "timeout", Type: adapters.TypeDuration, Default: "30s", Description: "How long to wait for the connection and for the ACK."},
	},
}

// Outbound sends messages over one MLLP connection, reconnecting when it breaks.
type Outbound struct {
	Address string            `yaml:"address"`
	Field   string            `yaml:"field"`
	TLS     bool              `yaml:"tls"`
	TLSCA   string            `yaml:"tls_ca"`
	TLSCert string            `yaml:"tls_cert"`
	TLSKey  string            `yaml:"tls_key"`
	Timeout adapters.Duration `yaml:"timeout"`

	tlsConfig *tls.Config
	mu        sync.Mutex // one message at a time on the connection
	conn      net.Conn
	r         *bufio.Reader
}

// Validate checks the TLS settings.
func (o *Outbound) Validate() error {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together")
	}
	if !o.TLS && (o.TLSCA != "" || o.TLSCert != "") {
		return errors.New("tls_ca, tls_cert and tls_key need tls: true")
	}
	return nil
}

// Provision loads the TLS material; the connection is made at the first delivery.
func (o *Outbound) Provision(_ context.Context, h adapters.Host) error {
	if !o.TLS {
		return nil
	}
	host, _, _ := net.SplitHostPort(o.Address)
	cfg := &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	if o.TLSCA != "" {
		pool, err := loadPool(rel(h.Dir, o.TLSCA))
		if err != nil {
			return fmt.Errorf("mllp outbound: tls_ca: %w", err)
		}
		cfg.RootCAs = pool
	}
	if o.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(rel(h.Dir, o.TLSCert), rel(h.Dir, o.TLSKey))
		if err != nil {
			return fmt.Errorf("mllp outbound: tls_cert/tls_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	o.tlsConfig = cfg
	return nil
}

// Deliver sends the message and waits for its acknowledgement.
func (o *Outbound) Deliver(ctx context.Context, d adapters.Delivery) error {
	text := transforms.Text(d.Fields[o.Field])
	m, err := hl7v2.Parse([]byte(text))
	if err != nil {
		return fmt.Errorf("field %q is not an HL7 v2 message: %w", o.Field, err)
	}
	if m.ControlID() == "" {
		setControlID(m, d.IdempotencyKey[:min(20, len(d.IdempotencyKey))])
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	ack, err := o.roundTrip(ctx, m.Encode())
	if err != nil {
		o.drop()
		return adapters.Transient(err)
	}
	if got := ack.Value("MSA", 2, 1, 1); got != m.ControlID() {
		o.drop() // out of step with the receiver: start a fresh connection
		return adapters.Transient(fmt.Errorf("ACK for control id %q, want %q", got, m.ControlID()))
	}
	switch code, text := ack.AckCode(); code {
	case hl7v2.AA:
		return nil
	case hl7v2.AE:
		return adapters.Transient(fmt.Errorf("%s answered AE: %s", o.Address, text))
	case hl7v2.AR:
		return fmt.Errorf("%s answered AR (rejected): %s", o.Address, text)
	default:
		return adapters.Transient(fmt.Errorf("%s answered MSA-1 %q", o.Address, code))
	}
}

func setControlID(m *hl7v2.Message, id string) {
	for i, s := range m.Segments {
		if s.Name != "MSH" {
			continue
		}
		for len(s.Fields) <= 10 {
			s.Fields = append(s.Fields, hl7v2.Text(""))
		}
		s.Fields[10] = hl7v2.Text(id)
		m.Segments[i] = s
		return
	}
}

func (o *Outbound) roundTrip(ctx context.Context, msg []byte) (*hl7v2.Message, error) {
	if o.conn == nil {
		if err := o.dial(ctx); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(o.Timeout.Duration)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	o.conn.SetDeadline(deadline)
	if err := writeFrame(o.conn, msg); err != nil {
		return nil, fmt.Errorf("send to %s: %w", o.Address, err)
	}
	raw, err := readFrame(o.r, 10<<20)
	if err != nil {
		return nil, fmt.Errorf("no ACK from %s: %w", o.Address, err)
	}
	ack, err := hl7v2.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("unreadable ACK from %s: %w", o.Address, err)
	}
	return ack, nil
}

func (o *Outbound) dial(ctx context.Context) error {
	dialer := &net.Dialer{Timeout: o.Timeout.Duration, KeepAlive: 30 * time.Second}
	var c net.Conn
	var err error
	if o.tlsConfig != nil {
		c, err = (&tls.Dialer{NetDialer: dialer, Config: o.tlsConfig}).DialContext(ctx, "tcp", o.Address)
	} else {
		c, err = dialer.DialContext(ctx, "tcp", o.Address)
	}
	if err != nil {
		return fmt.Errorf("connect to %s: %w", o.Address, err)
	}
	o.conn, o.r = c, bufio.NewReader(c)
	return nil
}

func (o *Outbound) drop() {
	if o.conn != nil {
		o.conn.Close()
		o.conn, o.r = nil, nil
	}
}

// Close closes the connection (safe when never used).
func (o *Outbound) Close() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.drop()
	return nil
}

// Interface guards.
var (
	_ adapters.Outbound    = (*Outbound)(nil)
	_ adapters.Provisioner = (*Outbound)(nil)
	_ adapters.Validator   = (*Outbound)(nil)
)

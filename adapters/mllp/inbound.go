package mllp

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/hl7v2"
	"github.com/koppelpoort/koppelpoort/transforms"
)

// InboundSpec is the inbound MLLP adapter's settings.
var InboundSpec = adapters.Spec{
	Summary: "Listen for HL7 v2 messages over MLLP (TCP, TLS optional) and answer each with an ACK: AA only after the message is durable, AE with the route's reason when the route would dead-letter it (nothing is stored), AR when it is not readable HL7. Expressions see the message as msg (msg.PID[3][1]).",
	Fields: []adapters.Field{
		{Name: "listen", Type: adapters.TypeString, Required: true, Description: "Listen address, e.g. 0.0.0.0:2575."},
		{Name: "reply", Type: adapters.TypeString, Default: "checked", Enum: []string{"checked", "accepted"}, Description: "checked: the route's rules and transforms run before the ACK, and a message the route would dead-letter gets AE with the reason (nothing stored). accepted: AA once the message is stored, whatever the route then does."},
		{Name: "tls_cert", Type: adapters.TypeString, Description: "PEM certificate file (relative to the route file); with tls_key, the listener speaks TLS."},
		{Name: "tls_key", Type: adapters.TypeSecret, Description: "PEM private key file of tls_cert."},
		{Name: "tls_client_ca", Type: adapters.TypeString, Description: "PEM CA file: senders must present a client certificate it signed (mutual TLS)."},
		{Name: "max_message", Type: adapters.TypeInt, Default: 10 << 20, Description: "Largest accepted message in bytes."},
		{Name: "idle_timeout", Type: adapters.TypeDuration, Default: "10m", Description: "A connection with no message for this long is closed."},
	},
}

func init() {
	adapters.Register(adapters.Registration{ID: "inbound.mllp", Spec: InboundSpec, New: func() any { return &Inbound{} }})
	adapters.Register(adapters.Registration{ID: "outbound.mllp", Spec: OutboundSpec, New: func() any { return &Outbound{} }})
}

// Inbound receives HL7 v2 messages over MLLP.
type Inbound struct {
	Listen      string            `yaml:"listen"`
	Reply       string            `yaml:"reply"`
	TLSCert     string            `yaml:"tls_cert"`
	TLSKey      string            `yaml:"tls_key"`
	TLSClientCA string            `yaml:"tls_client_ca"`
	MaxMessage  int               `yaml:"max_message"`
	IdleTimeout adapters.Duration `yaml:"idle_timeout"`

	log   *slog.Logger
	route string
	ln    net.Listener
	conns sync.WaitGroup
}

// Record fields an MLLP record has besides the message itself (so expressions are checked at load).
var recordFields = []string{"hl7", "message_type", "trigger", "structure", "control_id", "version",
	"sending_application", "sending_facility", "processing_id"}

// Shape: the known fields, and the parsed message as msg.
func (in *Inbound) Shape() transforms.Shape {
	return transforms.Shape{Fields: recordFields, Views: map[string]func(map[string]any) (any, error){"msg": MessageView}}
}

// MessageView parses the record's hl7 text into the expression view (see hl7v2.Message.View).
func MessageView(record map[string]any) (any, error) {
	raw, _ := record["hl7"].(string)
	m, err := hl7v2.Parse([]byte(raw))
	if err != nil {
		return nil, err
	}
	return m.View(), nil
}

// Validate checks the TLS settings come in pairs.
func (in *Inbound) Validate() error {
	if (in.TLSCert == "") != (in.TLSKey == "") {
		return errors.New("tls_cert and tls_key go together")
	}
	if in.TLSClientCA != "" && in.TLSCert == "" {
		return errors.New("tls_client_ca needs tls_cert and tls_key")
	}
	return nil
}

// Provision opens the listener (so a busy port fails the start, not the first message).
func (in *Inbound) Provision(_ context.Context, h adapters.Host) error {
	in.log, in.route = h.Logger, h.Route
	if in.log == nil {
		in.log = slog.Default()
	}
	ln, err := net.Listen("tcp", in.Listen)
	if err != nil {
		return fmt.Errorf("mllp inbound: listen %s: %w", in.Listen, err)
	}
	if in.TLSCert != "" {
		cfg, err := serverTLS(h.Dir, in.TLSCert, in.TLSKey, in.TLSClientCA)
		if err != nil {
			ln.Close()
			return err
		}
		ln = tls.NewListener(ln, cfg)
	}
	in.ln = ln
	return nil
}

func serverTLS(dir, certFile, keyFile, clientCA string) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(rel(dir, certFile), rel(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("mllp inbound: tls_cert/tls_key: %w", err)
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if clientCA != "" {
		pool, err := loadPool(rel(dir, clientCA))
		if err != nil {
			return nil, fmt.Errorf("mllp inbound: tls_client_ca: %w", err)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

func loadPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

func rel(dir, p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(dir, p)
}

// Addr is the listener's address (tests listen on port 0).
func (in *Inbound) Addr() string {
	if in.ln == nil {
		return ""
	}
	return in.ln.Addr().String()
}

// Run accepts connections until ctx ends; each connection is served in its own goroutine, one message at a
// time (MLLP is a request-response protocol: the sender waits for the ACK before the next message).
func (in *Inbound) Run(ctx context.Context, sink adapters.Sink) error {
	if in.ln == nil {
		return errors.New("mllp inbound: not provisioned")
	}
	go func() {
		<-ctx.Done()
		in.ln.Close()
	}()
	for {
		c, err := in.ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				in.conns.Wait()
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return fmt.Errorf("mllp inbound: accept: %w", err)
		}
		in.conns.Add(1)
		go func() {
			defer in.conns.Done()
			in.serve(ctx, c, sink)
		}()
	}
}

// Close stops the listener (safe when never provisioned).
func (in *Inbound) Close() error {
	if in.ln != nil {
		return in.ln.Close()
	}
	return nil
}

func (in *Inbound) serve(ctx context.Context, c net.Conn, sink adapters.Sink) {
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetReadDeadline(time.Now()) })
	defer stop()
	r := bufio.NewReader(c)
	log := in.log.With("remote", c.RemoteAddr().String())
	for {
		c.SetReadDeadline(time.Now().Add(in.IdleTimeout.Duration))
		raw, err := readFrame(r, in.MaxMessage)
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil && !isTimeout(err) {
				log.Warn("mllp: connection dropped", "error", err)
			}
			return
		}
		ack := in.handle(ctx, raw, sink, log)
		c.SetWriteDeadline(time.Now().Add(30 * time.Second))
		if err := writeFrame(c, ack.Encode()); err != nil {
			log.Warn("mllp: could not send the ACK", "error", err)
			return
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// handle turns one message into its ACK: AR for what is not readable HL7, AE when the route would
// dead-letter it or it could not be stored, AA once it is durable.
func (in *Inbound) handle(ctx context.Context, raw []byte, sink adapters.Sink, log *slog.Logger) *hl7v2.Message {
	now := time.Now()
	m, err := hl7v2.Parse(raw)
	if err != nil {
		log.Warn("mllp: message rejected (AR)", "reason", err.Error())
		return hl7v2.ACK(&hl7v2.Message{Delims: hl7v2.DefaultDelimiters}, hl7v2.AR, "not a readable HL7 v2 message: "+err.Error(), ackID(), now)
	}
	typ, trigger, structure := m.Type()
	log = log.With("control_id", m.ControlID(), "message_type", typ+"^"+trigger)
	if m.ControlID() == "" || typ == "" {
		log.Warn("mllp: message rejected (AR)", "reason", "MSH-9 or MSH-10 missing")
		return hl7v2.ACK(m, hl7v2.AR, "MSH-9 (message type) and MSH-10 (message control id) are required", ackID(), now)
	}
	rec := in.record(m, string(raw), typ, trigger, structure)
	if in.Reply != "accepted" {
		if c, ok := sink.(adapters.Checker); ok {
			if v := c.Check(ctx, []adapters.Record{rec})[0]; v.Outcome == "dead_lettered" {
				log.Warn("mllp: message refused by the route (AE)", "reason", v.Reason)
				return hl7v2.ACK(m, hl7v2.AE, v.Reason, ackID(), now)
			}
		}
	}
	if err := sink.Accept(ctx, []adapters.Record{rec}); err != nil {
		log.Error("mllp: message not stored (AE)", "error", err)
		return hl7v2.ACK(m, hl7v2.AE, "the message could not be stored; send it again", ackID(), now)
	}
	log.Debug("mllp: message accepted (AA)")
	return hl7v2.ACK(m, hl7v2.AA, "", ackID(), now)
}

// record is the route record of a message: its text and the MSH facts rules look at. The key and the
// source id are the sender's application, facility and control id, so a message sent again (a lost ACK)
// gives the same deliveries, which the outputs make no-ops.
func (in *Inbound) record(m *hl7v2.Message, raw, typ, trigger, structure string) adapters.Record {
	app, facility := m.Value("MSH", 3, 1, 1), m.Value("MSH", 4, 1, 1)
	text, _ := decodedText(m)
	if text == "" {
		text = raw
	}
	return adapters.Record{
		Key: m.ControlID(),
		Fields: map[string]any{
			"hl7": text, "message_type": typ, "trigger": trigger, "structure": structure, "control_id": m.ControlID(),
			"version": m.Version(), "sending_application": app, "sending_facility": facility,
			"processing_id": m.Value("MSH", 11, 1, 1),
		},
		Meta: map[string]string{"adapter": "mllp", "source_id": strings.Join([]string{app, facility, m.ControlID()}, "|")},
	}
}

// decodedText is the message re-encoded as UTF-8 text (the route's record is JSON, so a Latin-1 message
// must not travel as raw bytes); MSH-18 then says UTF-8.
func decodedText(m *hl7v2.Message) (string, error) {
	if msh, ok := m.Segment("MSH"); ok && len(msh.Fields) > 18 {
		msh.Fields[18] = hl7v2.Text("UNICODE UTF-8")
	}
	return string(m.Encode()), nil
}

func ackID() string { return strings.ReplaceAll(uuid.NewString(), "-", "")[:20] }

// Interface guards.
var (
	_ adapters.Inbound     = (*Inbound)(nil)
	_ adapters.Provisioner = (*Inbound)(nil)
	_ adapters.Validator   = (*Inbound)(nil)
	_ adapters.Shaper      = (*Inbound)(nil)
)

package mllp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/koppelpoort/koppelpoort/adapters"
	"github.com/koppelpoort/koppelpoort/hl7v2"
)

const adtA04 = "MSH|^~\\&|EPD|GGZ|KP|GGZ|20261202101500||ADT^A04^ADT_A01|MSG1|P|2.5\rPID|1||123456782^^^NLMINBIZA^NNNLD||Berg^Jan||19800203|M\r"

// sink records what the inbound hands over; refuse makes Check dead-letter, fail makes Accept fail.
type sink struct {
	mu     sync.Mutex
	got    []adapters.Record
	refuse string
	fail   error
}

func (s *sink) Accept(_ context.Context, recs []adapters.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return s.fail
	}
	s.got = append(s.got, recs...)
	return nil
}

func (s *sink) Check(_ context.Context, recs []adapters.Record) []adapters.Verdict {
	out := make([]adapters.Verdict, len(recs))
	for i, r := range recs {
		out[i] = adapters.Verdict{Key: r.Key, Outcome: "routed"}
		if s.refuse != "" {
			out[i] = adapters.Verdict{Key: r.Key, Outcome: "dead_lettered", Reason: s.refuse}
		}
	}
	return out
}

func (s *sink) records() []adapters.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]adapters.Record(nil), s.got...)
}

func startInbound(t *testing.T, in *Inbound, s adapters.Sink) string {
	t.Helper()
	if in.Listen == "" {
		in.Listen = "127.0.0.1:0"
	}
	in.MaxMessage, in.IdleTimeout.Duration = 1<<20, time.Minute
	if err := in.Provision(context.Background(), adapters.Host{Dir: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- in.Run(ctx, s) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	return in.Addr()
}

// send writes one framed message on a fresh connection and reads the ACK.
func send(t *testing.T, addr, msg string) *hl7v2.Message {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return sendOn(t, c, msg)
}

func sendOn(t *testing.T, c net.Conn, msg string) *hl7v2.Message {
	t.Helper()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := writeFrame(c, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	raw, err := readFrame(bufio.NewReader(c), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := hl7v2.Parse(raw)
	if err != nil {
		t.Fatalf("ACK unreadable: %v\n%q", err, raw)
	}
	return ack
}

func TestInboundAcknowledges(t *testing.T) {
	s := &sink{}
	in := &Inbound{Reply: "checked"}
	addr := startInbound(t, in, s)

	ack := send(t, addr, adtA04)
	if code, text := ack.AckCode(); code != hl7v2.AA || ack.Value("MSA", 2, 1, 1) != "MSG1" {
		t.Fatalf("valid ADT: %s %q (MSA-2 %q)", code, text, ack.Value("MSA", 2, 1, 1))
	}
	if typ, trig, _ := ack.Type(); typ != "ACK" || trig != "A04" || ack.Value("MSH", 5, 1, 1) != "EPD" {
		t.Errorf("ACK header: %s %s to %s", typ, trig, ack.Value("MSH", 5, 1, 1))
	}
	recs := s.records()
	if len(recs) != 1 || recs[0].Key != "MSG1" || recs[0].Fields["trigger"] != "A04" || recs[0].Meta["source_id"] != "EPD|GGZ|MSG1" {
		t.Fatalf("records: %+v", recs)
	}
	view, err := MessageView(recs[0].Fields)
	if err != nil {
		t.Fatal(err)
	}
	if v, _ := hl7v2.ViewPath(view, "PID-3.1"); v != "123456782" {
		t.Errorf("the record's message reads PID-3.1 = %q", v)
	}

	// Not HL7: AR, nothing stored.
	if code, text := send(t, addr, "hello").AckCode(); code != hl7v2.AR || !strings.Contains(text, "MSH") {
		t.Errorf("garbage: %s %q", code, text)
	}
	// No control id: AR.
	if code, _ := send(t, addr, strings.Replace(adtA04, "|MSG1|", "||", 1)).AckCode(); code != hl7v2.AR {
		t.Errorf("no MSH-10: %s", code)
	}
	// The route would dead-letter it: AE with the route's reason, nothing stored.
	s.refuse = "invalid BSN"
	if code, text := send(t, addr, adtA04).AckCode(); code != hl7v2.AE || text != "invalid BSN" {
		t.Errorf("refused: %s %q", code, text)
	}
	// The store fails: AE, the sender sends it again.
	s.refuse, s.fail = "", errors.New("disk full")
	if code, text := send(t, addr, adtA04).AckCode(); code != hl7v2.AE || !strings.Contains(text, "send it again") {
		t.Errorf("store failure: %s %q", code, text)
	}
	if n := len(s.records()); n != 1 {
		t.Errorf("%d records stored, want only the first", n)
	}
}

// Several messages on one connection, each answered before the next (the MLLP conversation).
func TestInboundOneConnectionManyMessages(t *testing.T) {
	s := &sink{}
	addr := startInbound(t, &Inbound{Reply: "accepted"}, s)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for i, id := range []string{"A", "B", "C"} {
		ack := sendOn(t, c, strings.Replace(adtA04, "MSG1", id, 1))
		if code, _ := ack.AckCode(); code != hl7v2.AA || ack.Value("MSA", 2, 1, 1) != id {
			t.Fatalf("message %d: %s for %q", i, code, ack.Value("MSA", 2, 1, 1))
		}
	}
	if n := len(s.records()); n != 3 {
		t.Errorf("%d records", n)
	}
}

func TestFraming(t *testing.T) {
	r := bufio.NewReader(bytes.NewReader([]byte("\n\x0bMSH|x\x1c\r\x0bsecond\x1c\r")))
	for _, want := range []string{"MSH|x", "second"} {
		got, err := readFrame(r, 100)
		if err != nil || string(got) != want {
			t.Fatalf("frame %q %v, want %q", got, err, want)
		}
	}
	if _, err := readFrame(r, 100); !errors.Is(err, io.EOF) {
		t.Fatal("want EOF after the last frame")
	}
	for name, in := range map[string]string{"too large": "\x0b0123456789\x1c\r", "no CR": "\x0bab\x1cx", "cut": "\x0bab"} {
		if _, err := readFrame(bufio.NewReader(strings.NewReader(in)), 5); err == nil {
			t.Errorf("%s: want an error", name)
		}
	}
}

// receiver answers every message with code (and counts them).
func receiver(t *testing.T, code string, tlsCfg *tls.Config) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	t.Cleanup(func() { ln.Close() })
	n := new(atomic.Int32)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					raw, err := readFrame(r, 1<<20)
					if err != nil {
						return
					}
					n.Add(1)
					m, _ := hl7v2.Parse(raw)
					writeFrame(c, hl7v2.ACK(m, code, "receiver says "+code, "R1", time.Now()).Encode())
				}
			}()
		}
	}()
	return ln.Addr().String(), n
}

func TestOutbound(t *testing.T) {
	d := adapters.Delivery{IdempotencyKey: "0123456789abcdef0123456789", Fields: map[string]any{"hl7": strings.Replace(adtA04, "|MSG1|", "||", 1)}}
	for code, want := range map[string]string{hl7v2.AA: "", hl7v2.AE: "transient", hl7v2.AR: "rejected"} {
		addr, n := receiver(t, code, nil)
		o := &Outbound{Address: addr, Field: "hl7", Timeout: adapters.Duration{Duration: 5 * time.Second}}
		if err := o.Provision(context.Background(), adapters.Host{}); err != nil {
			t.Fatal(err)
		}
		err := o.Deliver(context.Background(), d)
		switch {
		case want == "" && err != nil:
			t.Errorf("AA: %v", err)
		case want == "transient" && !errors.Is(err, adapters.ErrTransient):
			t.Errorf("AE must be retried: %v", err)
		case want == "rejected" && (err == nil || errors.Is(err, adapters.ErrTransient)):
			t.Errorf("AR must dead-letter at once: %v", err)
		}
		// A second delivery reuses the connection.
		o.Deliver(context.Background(), d)
		if n.Load() != 2 {
			t.Errorf("%s: receiver saw %d messages", code, n.Load())
		}
		o.Close()
	}
	// Nobody listening: transient.
	o := &Outbound{Address: "127.0.0.1:1", Field: "hl7", Timeout: adapters.Duration{Duration: time.Second}}
	if err := o.Deliver(context.Background(), d); !errors.Is(err, adapters.ErrTransient) {
		t.Errorf("connection refused: %v", err)
	}
	// Not HL7: dead-letters at once.
	if err := o.Deliver(context.Background(), adapters.Delivery{Fields: map[string]any{"hl7": "nope"}}); err == nil || errors.Is(err, adapters.ErrTransient) {
		t.Errorf("not HL7: %v", err)
	}
}

// TLS both ways: the inbound with a certificate, the outbound verifying it against the CA file.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := writeSelfSigned(t, dir)
	s := &sink{}
	in := &Inbound{Reply: "checked", TLSCert: certFile, TLSKey: keyFile}
	in.Listen = "127.0.0.1:0"
	in.MaxMessage, in.IdleTimeout.Duration = 1<<20, time.Minute
	if err := in.Provision(context.Background(), adapters.Host{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go in.Run(ctx, s)
	o := &Outbound{Address: in.Addr(), Field: "hl7", TLS: true, TLSCA: certFile, Timeout: adapters.Duration{Duration: 5 * time.Second}}
	if err := o.Provision(context.Background(), adapters.Host{Dir: dir}); err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	if err := o.Deliver(context.Background(), adapters.Delivery{IdempotencyKey: "k", Fields: map[string]any{"hl7": adtA04}}); err != nil {
		t.Fatalf("over TLS: %v", err)
	}
	if len(s.records()) != 1 {
		t.Fatal("not received")
	}
	// A plain-TCP sender gets no ACK from a TLS listener.
	c, err := net.Dial("tcp", in.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	writeFrame(c, []byte(adtA04))
	if _, err := readFrame(bufio.NewReader(c), 1<<20); err == nil {
		t.Error("a plain-TCP message was acknowledged by the TLS listener")
	}
}

func writeSelfSigned(t *testing.T, dir string) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600)
	return certFile, keyFile
}
